"""Traces tests: a server configured for /v1/traces, traces built by the real OTel SDK (GenAI
conventions) or by hand (OTLP protobuf), spans as three real instrumentations emit them, and
checks that planted personal data is stored nowhere."""
from __future__ import annotations

import json
import time

import httpx
import psycopg
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource as ProtoResource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span
from opentelemetry.proto.trace.v1.trace_pb2 import Status as SpanStatus
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode

from config.server import ServerSettings
from tests.helpers import wait_until  # noqa: F401 (the traces tests wait with it)

SECRET = "traces-test-secret-" + "s" * 32
NAME, EMAIL, PHONE = "Annalisa Rossetti", "annalisa.rossetti@example.com", "+39 347 555 0199"


def trace_settings(**overrides) -> ServerSettings:
    values = dict(_env_file=None, flusso_session_secret="test-secret-" + "x" * 32, flusso_pii_hash_key=SECRET,
                  flusso_trace_quiet_seconds=0.3, flusso_trace_assembly_seconds=0.2,
                  flusso_trace_max_age_seconds=30, flusso_trace_late_window_seconds=30,
                  flusso_rollup_refresh_seconds=0)
    values.update(overrides)
    return ServerSettings(**values)


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


# --- hand-built OTLP/protobuf requests -------------------------------------------------------

PB = {"Content-Type": "application/x-protobuf"}


def attr(key, value):
    v = AnyValue(int_value=value) if isinstance(value, int) else AnyValue(string_value=str(value))
    return KeyValue(key=key, value=v)


def span(trace: bytes, sid: int, parent: int | None, name: str, start_ms: int, end_ms: int, error=False, **attrs):
    base = time.time_ns() - 60 * 10**9
    s = Span(trace_id=trace, span_id=sid.to_bytes(8, "big"), name=name,
             start_time_unix_nano=base + start_ms * 10**6, end_time_unix_nano=base + end_ms * 10**6,
             attributes=[attr(k.replace("__", "."), v) for k, v in attrs.items()])
    if parent:
        s.parent_span_id = parent.to_bytes(8, "big")
    if error:
        s.status.CopyFrom(SpanStatus(code=SpanStatus.STATUS_CODE_ERROR, message="boom"))
    return s


def request(*spans, resource=None) -> bytes:
    res = ProtoResource(attributes=[attr(k, v) for k, v in (resource or {"service.name": "agent"}).items()])
    return ExportTraceServiceRequest(resource_spans=[ResourceSpans(
        resource=res, scope_spans=[ScopeSpans(spans=list(spans))])]).SerializeToString()


def post(server, key, body, headers=PB):
    return httpx.post(f"{server.url}/v1/traces", content=body, headers={**headers, "X-API-Key": key}, timeout=10)


def agent_trace(trace: bytes, *, tool_error=False, root_error=False, ticket="T-9", **root_attrs):
    return [
        span(trace, 2, 1, "chat", 10, 100, gen_ai__operation__name="chat", gen_ai__request__model="gpt-4o",
             gen_ai__usage__input_tokens=1000, gen_ai__usage__output_tokens=10),
        span(trace, 3, 1, "execute_tool lookup", 100, 150, error=tool_error, gen_ai__operation__name="execute_tool",
             gen_ai__tool__name="lookup"),
        span(trace, 1, None, "invoke_agent", 0, 200, error=root_error, gen_ai__operation__name="invoke_agent",
             flusso__ticket_id=ticket, **root_attrs),
    ]


# --- one tool-using agent as three instrumentations emit it ----------------------------------
# One tool-using support agent (chat that asks for a tool, the tool, a retrieval, a second chat)
# as the real instrumentations emit it: openinference-instrumentation-openai (OpenInference),
# opentelemetry-instrumentation-openai-v2 (OTel GenAI) and Traceloop's traceloop-sdk +
# opentelemetry-instrumentation-openai (OpenLLMetry), attribute names as in their sources. Planted
# PII sits in messages, tool I/O, documents and person-naming attributes.

USER_ID = "cust-88213"
SYSTEM = "You are the support agent of an online shop."
ASK = f"Hi, I am {NAME} ({USER_ID}). Where is my order? Call me at {PHONE} or write to {EMAIL}."
ARGS = json.dumps({"email": EMAIL})
RESULT = json.dumps({"order": "A-1", "status": "shipped", "phone": PHONE})
DOC = f"Order A-1 for {EMAIL} ships from the Milan warehouse."
ANSWER = f"Dear {NAME.split()[0]}, your order A-1 has shipped."
MODEL, RESPONSE_MODEL = "gpt-4o-mini", "gpt-4o-mini-2024-07-18"
# gpt-4o-mini in config/prices.yaml: 0.15 input, 0.075 cache_read, 0.60 output (USD per 1M tokens)
PRICE_IN, PRICE_CACHE, PRICE_OUT = 0.15, 0.075, 0.60


def price(inp: int, out: int, cache_read: int = 0) -> float:
    return ((inp - cache_read) * PRICE_IN + cache_read * PRICE_CACHE + out * PRICE_OUT) / 1e6


def _trace_id(span) -> str:
    return format(span.get_span_context().trace_id, "032x")


# --- OpenInference ---------------------------------------------------------------------------

def _oi_messages(prefix: str, messages: list[dict]) -> dict:
    out = {}
    for i, m in enumerate(messages):
        for key, value in m.items():
            out[f"{prefix}.{i}.message.{key}"] = value
    return out


OI_COST_2 = 0.00123  # llm.cost.total on the second call: wins over the price table
# using_metadata(...) of openinference-instrumentation: the app's pairs as one JSON attribute
METADATA = json.dumps({"customer_name": NAME, "channel": "email"})


def openinference_trace(provider: TracerProvider, session: str = "sess-oi-1") -> str:
    tracer = provider.get_tracer("openinference.instrumentation.openai")
    with tracer.start_as_current_span("support-agent") as root:
        root.set_attributes({"openinference.span.kind": "AGENT", "input.value": ASK, "input.mime_type": "text/plain",
                             "session.id": session, "user.id": USER_ID, "agent.name": "support",
                             "metadata": METADATA})
        with tracer.start_as_current_span("ChatCompletion", kind=SpanKind.CLIENT) as llm:
            llm.set_attributes({
                "openinference.span.kind": "LLM", "llm.system": "openai", "llm.provider": "openai",
                "llm.model_name": RESPONSE_MODEL, "llm.invocation_parameters": json.dumps({"model": MODEL}),
                "input.value": json.dumps({"model": MODEL, "messages": [{"role": "user", "content": ASK}]}),
                "input.mime_type": "application/json",
                **_oi_messages("llm.input_messages", [{"role": "system", "content": SYSTEM},
                                                      {"role": "user", "content": ASK}]),
                "llm.tools.0.tool.json_schema": json.dumps({"type": "function", "function": {"name": "order_lookup"}}),
                "output.value": json.dumps({"choices": [{"message": {"tool_calls": [{"id": "call_1"}]}}]}),
                "output.mime_type": "application/json",
                "llm.output_messages.0.message.role": "assistant",
                "llm.output_messages.0.message.tool_calls.0.tool_call.id": "call_1",
                "llm.output_messages.0.message.tool_calls.0.tool_call.function.name": "order_lookup",
                "llm.output_messages.0.message.tool_calls.0.tool_call.function.arguments": ARGS,
                "llm.token_count.prompt": 1200, "llm.token_count.completion": 40, "llm.token_count.total": 1240,
                "llm.token_count.prompt_details.cache_read": 1024})
        with tracer.start_as_current_span("order_lookup") as tool:
            tool.set_attributes({"openinference.span.kind": "TOOL", "tool.name": "order_lookup", "tool.id": "call_1",
                                 "tool.description": "Looks an order up by the customer's email",
                                 "tool.parameters": json.dumps({"type": "object", "properties": {"email": {}}}),
                                 "input.value": ARGS, "output.value": RESULT})
        with tracer.start_as_current_span("kb_search") as ret:
            ret.set_attributes({"openinference.span.kind": "RETRIEVER", "input.value": f"order status {EMAIL}",
                                "retrieval.documents.0.document.id": "kb-7",
                                "retrieval.documents.0.document.score": 0.82,
                                "retrieval.documents.0.document.content": DOC,
                                "retrieval.documents.0.document.metadata": json.dumps({"source": "kb"}),
                                "retrieval.documents.1.document.id": "kb-9",
                                "retrieval.documents.1.document.score": 0.61,
                                "retrieval.documents.1.document.content": "Shipping takes two days."})
        with tracer.start_as_current_span("ChatCompletion", kind=SpanKind.CLIENT) as llm:
            llm.set_attributes({
                "openinference.span.kind": "LLM", "llm.system": "openai", "llm.provider": "openai",
                "llm.model_name": RESPONSE_MODEL,
                **_oi_messages("llm.input_messages", [{"role": "user", "content": ASK},
                                                      {"role": "tool", "content": RESULT, "tool_call_id": "call_1"}]),
                "llm.output_messages.0.message.role": "assistant", "llm.output_messages.0.message.content": ANSWER,
                "output.value": ANSWER, "llm.token_count.prompt": 1500, "llm.token_count.completion": 200,
                "llm.token_count.total": 1700, "llm.cost.prompt": 0.001, "llm.cost.completion": 0.00023,
                "llm.cost.total": OI_COST_2})
        root.set_attribute("output.value", ANSWER)
        return _trace_id(root)


# --- OTel GenAI (opentelemetry-instrumentation-openai-v2, latest experimental) ----------------

def genai_trace(provider: TracerProvider, session: str = "conv-genai-1") -> str:
    tracer = provider.get_tracer("opentelemetry.instrumentation.openai_v2")
    with tracer.start_as_current_span("invoke_agent support") as root:
        root.set_attributes({"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "support",
                             "gen_ai.provider.name": "openai", "gen_ai.conversation.id": session,
                             "user.id": USER_ID, "user.full_name": NAME})
        with tracer.start_as_current_span(f"chat {MODEL}", kind=SpanKind.CLIENT) as chat:
            chat.set_attributes({
                "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": MODEL,
                "gen_ai.response.model": RESPONSE_MODEL, "gen_ai.response.id": "chatcmpl-1",
                "gen_ai.response.finish_reasons": ("tool_calls",), "server.address": "api.openai.com",
                "server.port": 443, "gen_ai.usage.input_tokens": 1200, "gen_ai.usage.output_tokens": 40,
                "gen_ai.usage.cache_read.input_tokens": 1024,
                "gen_ai.system_instructions": json.dumps([{"type": "text", "content": SYSTEM}]),
                "gen_ai.input.messages": json.dumps([{"role": "user", "parts": [{"type": "text", "content": ASK}]}]),
                "gen_ai.output.messages": json.dumps([{"role": "assistant", "parts": [
                    {"type": "tool_call", "id": "call_1", "name": "order_lookup", "arguments": {"email": EMAIL}}]}])})
        with tracer.start_as_current_span("execute_tool order_lookup") as tool:
            tool.set_attributes({"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "order_lookup",
                                 "gen_ai.tool.call.id": "call_1", "gen_ai.tool.type": "function",
                                 "gen_ai.tool.call.arguments": ARGS, "gen_ai.tool.call.result": RESULT})
        with tracer.start_as_current_span("retrieval kb") as ret:
            ret.set_attributes({"gen_ai.operation.name": "retrieval", "gen_ai.data_source.id": "kb",
                                "gen_ai.retrieval.query.text": f"order status {EMAIL}",
                                "gen_ai.retrieval.documents": json.dumps([{"id": "kb-7", "score": 0.82},
                                                                          {"id": "kb-9", "score": 0.61}])})
        with tracer.start_as_current_span(f"chat {MODEL}", kind=SpanKind.CLIENT) as chat:
            chat.set_attributes({
                "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": MODEL,
                "gen_ai.response.model": RESPONSE_MODEL, "gen_ai.usage.input_tokens": 1500,
                "gen_ai.usage.output_tokens": 200,
                "gen_ai.output.messages": json.dumps([{"role": "assistant", "parts": [
                    {"type": "text", "content": ANSWER}]}])})
        return _trace_id(root)


# --- OpenLLMetry (traceloop-sdk decorators + opentelemetry-instrumentation-openai) ------------

def _association(session: str) -> dict:
    # traceloop-sdk copies the association properties onto every span of the context
    return {"traceloop.association.properties.user_id": USER_ID,
            "traceloop.association.properties.session_id": session,
            "traceloop.association.properties.customer_name": NAME}


def openllmetry_trace(provider: TracerProvider, session: str = "sess-tl-1") -> str:
    tracer = provider.get_tracer("traceloop.tracer")
    assoc = _association(session)
    with tracer.start_as_current_span("support_agent.workflow") as root:
        root.set_attributes({"traceloop.span.kind": "workflow", "traceloop.workflow.name": "support_agent",
                             "traceloop.entity.name": "support_agent", "traceloop.entity.path": "",
                             "traceloop.entity.input": json.dumps({"args": [ASK], "kwargs": {}}), **assoc})
        with tracer.start_as_current_span("triage.agent") as agent:
            agent.set_attributes({"traceloop.span.kind": "agent", "traceloop.entity.name": "triage",
                                  "traceloop.workflow.name": "support_agent", **assoc})
            _openllmetry_agent_body(tracer, assoc)
        root.set_attribute("traceloop.entity.output", json.dumps(ANSWER))
        return _trace_id(root)


def _openllmetry_agent_body(tracer, assoc: dict) -> None:
    with tracer.start_as_current_span("openai.chat", kind=SpanKind.CLIENT) as chat:  # 0.4x names
        chat.set_attributes({
            "llm.request.type": "chat", "gen_ai.system": "openai", "gen_ai.request.model": MODEL,
            "gen_ai.response.model": RESPONSE_MODEL, "llm.is_streaming": False,
            "gen_ai.openai.api_base": "https://api.openai.com/v1/",
            "gen_ai.prompt.0.role": "system", "gen_ai.prompt.0.content": SYSTEM,
            "gen_ai.prompt.1.role": "user", "gen_ai.prompt.1.content": ASK,
            "llm.request.functions.0.name": "order_lookup",
            "gen_ai.completion.0.role": "assistant", "gen_ai.completion.0.finish_reason": "tool_calls",
            "gen_ai.completion.0.tool_calls.0.id": "call_1", "gen_ai.completion.0.tool_calls.0.name": "order_lookup",
            "gen_ai.completion.0.tool_calls.0.arguments": ARGS,
            "gen_ai.usage.prompt_tokens": 1200, "gen_ai.usage.completion_tokens": 40, "llm.usage.total_tokens": 1240,
            "gen_ai.usage.cache_read_input_tokens": 1024, **assoc})
    with tracer.start_as_current_span("order_lookup.tool") as tool:
        tool.set_attributes({"traceloop.span.kind": "tool", "traceloop.entity.name": "order_lookup",
                             "traceloop.entity.input": json.dumps({"args": [], "kwargs": {"email": EMAIL}}),
                             "traceloop.entity.output": RESULT, **assoc})
    with tracer.start_as_current_span("pinecone.query", kind=SpanKind.CLIENT) as ret:
        ret.set_attributes({"db.system": "pinecone", "db.operation": "query", "pinecone.query.top_k": 2, **assoc})
        for doc_id, score, text in (("kb-7", 0.82, DOC), ("kb-9", 0.61, "Shipping takes two days.")):
            ret.add_event("db.query.result", {"db.query.result.id": doc_id, "db.query.result.score": score,
                                              "db.query.result.document": text})
    with tracer.start_as_current_span(f"chat {MODEL}", kind=SpanKind.CLIENT) as chat:  # 0.5x: GenAI names
        chat.set_attributes({
            "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": MODEL,
            "gen_ai.response.model": RESPONSE_MODEL, "gen_ai.usage.input_tokens": 1500,
            "gen_ai.usage.output_tokens": 200, "llm.usage.total_tokens": 1700,
            "gen_ai.prompt.0.role": "user", "gen_ai.prompt.0.content": ASK,
            "gen_ai.completion.0.role": "assistant", "gen_ai.completion.0.content": ANSWER, **assoc})


# Sealed span payloads are ciphertext, i.e. random bytes: a 3-byte value matches case-insensitively
# once per ~2 MB of them ((2/256)^3 per position; "Doe" failed CI once). From 6 bytes a chance
# match is ~1 in 10^12 per position; shorter values are still checked in every text column.
MIN_BLOB_NEEDLE = 6


def assert_nowhere(dsn: str, planted: list[str], *, min_blobs: int = 1) -> None:
    with psycopg.connect(dsn) as conn:
        texts = [r[0] for t in ("trace_spans", "trace_state", "workflow_logs")
                 for r in conn.execute(f"SELECT t::text FROM {t} t").fetchall()]
        blobs = [bytes(r[0]) for r in conn.execute("SELECT payload FROM trace_spans").fetchall()]
    assert len(blobs) >= min_blobs and texts
    for value in planted:
        for text in texts:
            assert value.lower() not in text.lower(), f"{value!r} found in the database"
        if len(value.encode()) < MIN_BLOB_NEEDLE:
            continue  # sealed payloads are ciphertext: random bytes hold a short value by chance
        for blob in blobs:
            assert value.encode() not in blob and value.lower().encode() not in blob.lower(), \
                f"{value!r} found in a sealed span payload"
