"""Interop: third-party instrumentation -> stock OTLP/HTTP exporter -> /v1/traces -> one workflow log.

Each agent runs in its own process with its own pinned versions (see conftest.py), drives the
real `openai` client (Python) or fetch (Node) through one tool-using loop against the fake
OpenAI-compatible server, and exports to a live collector on 127.0.0.1 with real PostgreSQL.
The stored log must carry the model, the token totals the fake server returned (summed over
both calls), 2 LLM calls and 1 tool call; the planted PII must be nowhere in the database.
INTEROP_DUMP_DIR=tests/interop/fixtures rewrites the span dumps of the Python instrumentations.
"""
from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest

from tests.traces.conftest import wait_for_logs

from .conftest import assert_no_planted_pii, interop_python, node_command, run_agent
from .fake_openai import FakeOpenAI

MODEL = "gpt-4o-mini"
LOG_TIMEOUT_S = 30


def assert_stored_log(dsn: str, fake: FakeOpenAI, trace_id: str) -> None:
    assert len(fake.usages) == 2, f"the agent made {len(fake.usages)} chat calls, not 2"
    rows = wait_for_logs(dsn, 1, timeout=LOG_TIMEOUT_S)
    assert len(rows) == 1, f"{len(rows)} workflow logs stored, expected 1"
    row = rows[0]
    log, metrics = row["log"], row["log"]["metrics"]
    assert row["trace_id"] == trace_id and row["client_id"] == "acme"
    assert log["identification"]["source"] == "otlp-traces"
    assert_no_planted_pii(dsn)  # first: privacy holds whatever the mapping knows
    assert metrics.get("models") == [MODEL], metrics
    inp, out = fake.totals()
    tokens = (metrics.get("input_tokens"), metrics.get("output_tokens"), metrics.get("total_tokens"))
    assert tokens == (inp, out, inp + out), metrics
    assert metrics.get("llm_calls") == 2, metrics
    assert metrics.get("tool_calls") == 1, metrics
    assert row["status"] == "SUCCESS"
    draft = log["trace"]["output"]["draft"]  # the agent's final answer, the first name replaced
    assert draft.startswith("Dear [name:") and draft.endswith("order A-77 shipped; it arrives in two days."), draft
    assert metrics.get("draft_length_chars") == len(draft)


@pytest.mark.parametrize("convention", ["genai", "openinference", "traceloop"])
def test_python_instrumentation(convention, fake_openai, traces_server, acme_ingest, db_dsn):
    """openai-v2 (OTel GenAI, content capture on), OpenInference, Traceloop (OpenLLMetry)."""
    python = interop_python(convention)
    dump = Path(os.environ["INTEROP_DUMP_DIR"]) / f"{convention}.json" if os.environ.get("INTEROP_DUMP_DIR") else None
    summary = run_agent([str(python), "tests/interop/python/agent.py", "--convention", convention],
                        fake_openai, traces_server.url, acme_ingest, dump=dump)
    assert "order A-77 shipped" in summary["answer"]
    assert_stored_log(db_dsn, fake_openai, summary["trace_id"])


def test_node_sdk_agent(fake_openai, traces_server, acme_ingest, db_dsn):
    """The official OpenTelemetry JS SDK, GenAI attributes set by hand, plain fetch."""
    summary = run_agent(node_command(), fake_openai, traces_server.url, acme_ingest)
    assert "order A-77 shipped" in summary["answer"]
    assert_stored_log(db_dsn, fake_openai, summary["trace_id"])


def test_node_sdk_agent_over_grpc(fake_openai, db_dsn, acme_ingest):
    """The same agent with the stock @opentelemetry/exporter-trace-otlp-grpc to the gRPC port; the key
    travels as gRPC metadata from OTEL_EXPORTER_OTLP_HEADERS."""
    from tests.grpc.live import GrpcLiveServer
    from tests.traces.conftest import trace_settings

    command = node_command()
    server = GrpcLiveServer(db_dsn, trace_settings()).start()
    try:
        grpc_env = {"FLUSSO_OTLP_GRPC_URL": f"http://{server.target}",
                    "OTEL_EXPORTER_OTLP_HEADERS": f"x-api-key={acme_ingest}"}
        summary = run_agent(command, fake_openai, server.url, acme_ingest, env_extra=grpc_env)
        assert "order A-77 shipped" in summary["answer"]
        assert_stored_log(db_dsn, fake_openai, summary["trace_id"])
        metrics = httpx.get(server.url + "/metrics", timeout=10).text
        assert 'flusso_logs_received_total{endpoint="traces_grpc"} 4.0' in metrics  # 4 spans, over gRPC
    finally:
        server.stop()
