"""A live server with /v1/traces configured, and GenAI-convention traces from the real OTel SDK."""
from __future__ import annotations

import json
import time

import psycopg
import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import Status, StatusCode

from config.server import ServerSettings
from tests.collector.conftest import make_key
from tests.conftest import LiveServer

SECRET = "traces-test-secret-" + "s" * 32
NAME, EMAIL, PHONE = "Annalisa Rossetti", "annalisa.rossetti@example.com", "+39 347 555 0199"


def trace_settings(**overrides) -> ServerSettings:
    values = dict(_env_file=None, flusso_session_secret="test-secret-" + "x" * 32, flusso_pii_hash_key=SECRET,
                  flusso_trace_quiet_seconds=0.3, flusso_trace_assembly_seconds=0.2,
                  flusso_trace_max_age_seconds=30, flusso_trace_late_window_seconds=30,
                  flusso_rollup_refresh_seconds=0)
    values.update(overrides)
    return ServerSettings(**values)


@pytest.fixture()
def traces_server(db_dsn):
    server = LiveServer(db_dsn, trace_settings()).start()
    yield server
    server.stop()


@pytest.fixture()
def acme_ingest(db_dsn):
    return make_key(db_dsn, "acme")


def sdk_provider(url: str, key: str, service: str = "support-agent") -> TracerProvider:
    """The stock exporter, one request per finished span (children before their parents)."""
    provider = TracerProvider(resource=Resource.create({"service.name": service,
                                                        "deployment.environment.name": "test"}))
    exporter = OTLPSpanExporter(endpoint=f"{url}/v1/traces", headers={"X-API-Key": key}, timeout=10)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider


def support_trace(provider: TracerProvider, ticket: str = "T-100", *, fail_tool: bool = False,
                  root_error: bool = False) -> str:
    """agent -> chat, tool, retrieval, chat (GenAI conventions), with planted PII. Returns the trace id."""
    tracer = provider.get_tracer("test-agent")
    with tracer.start_as_current_span("invoke_agent support") as root:
        root.set_attribute("gen_ai.operation.name", "invoke_agent")
        root.set_attribute("gen_ai.agent.name", "support")
        root.set_attribute("flusso.ticket_id", ticket)
        root.set_attribute("user.email", EMAIL)
        root.set_attribute("user.full_name", NAME)
        with tracer.start_as_current_span("chat gpt-4o-mini") as chat:
            chat.set_attribute("gen_ai.operation.name", "chat")
            chat.set_attribute("gen_ai.request.model", "gpt-4o-mini")
            chat.set_attribute("gen_ai.usage.input_tokens", 1200)
            chat.set_attribute("gen_ai.usage.output_tokens", 100)
            chat.set_attribute("gen_ai.input.messages", json.dumps(
                [{"role": "user", "content": f"Hi, I am {NAME}, call me at {PHONE} or {EMAIL}"}]))
        with tracer.start_as_current_span("execute_tool order_lookup") as tool:
            tool.set_attribute("gen_ai.operation.name", "execute_tool")
            tool.set_attribute("gen_ai.tool.name", "order_lookup")
            tool.set_attribute("gen_ai.tool.call.arguments", json.dumps({"customer": NAME}))
            if fail_tool:
                tool.set_status(Status(StatusCode.ERROR, "lookup timed out"))
        with tracer.start_as_current_span("retrieval kb") as ret:
            ret.set_attribute("gen_ai.operation.name", "retrieval")
            ret.set_attribute("gen_ai.data_source.id", "kb")
            ret.set_attribute("gen_ai.retrieval.documents", json.dumps([{"id": "kb-7", "score": 0.8},
                                                                        {"id": "kb-9", "score": 0.6}]))
        with tracer.start_as_current_span("chat gpt-4o-mini") as chat:
            chat.set_attribute("gen_ai.operation.name", "chat")
            chat.set_attribute("gen_ai.request.model", "gpt-4o-mini")
            chat.set_attribute("gen_ai.usage.input_tokens", 800)
            chat.set_attribute("gen_ai.usage.output_tokens", 200)
            chat.set_attribute("gen_ai.output.messages", json.dumps(
                [{"role": "assistant", "content": f"Dear {NAME.split()[0]}, your order ships tomorrow."}]))
        if root_error:
            root.set_status(Status(StatusCode.ERROR, "agent crashed"))
        return format(root.get_span_context().trace_id, "032x")


def wait_for_logs(dsn: str, count: int, timeout: float = 20.0, where: str = "true") -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        with psycopg.connect(dsn) as conn:
            rows = conn.execute(f"SELECT id, client_id, trace_id, ticket_id, status, complete, log_data, created_at"
                                f" FROM workflow_logs WHERE {where} ORDER BY id").fetchall()
        if len(rows) >= count or time.monotonic() > deadline:
            keys = ("id", "client_id", "trace_id", "ticket_id", "status", "complete", "log", "created_at")
            return [dict(zip(keys, r, strict=True)) for r in rows]
        time.sleep(0.1)


def wait_until(predicate, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False
