"""Each convention as its instrumentation emits it, through the real OTel SDK and the stock
OTLPSpanExporter (one request per finished span: children before parents) to a live server;
the stored log's model, tokens, cost, call counts and documents, and no planted PII anywhere."""
from __future__ import annotations

import pytest

from .helpers import (
    EMAIL,
    NAME,
    OI_COST_2,
    PHONE,
    RESPONSE_MODEL,
    USER_ID,
    assert_nowhere,
    genai_trace,
    openinference_trace,
    openllmetry_trace,
    price,
    sdk_provider,
    wait_for_logs,
)

PLANTED = [NAME, NAME.split()[0], NAME.split()[1], EMAIL, PHONE, "347 555 0199", USER_ID]
# (emit, session, spans, expected cost of the two calls)
CASES = {
    "openinference": (openinference_trace, "sess-oi-1", 5, price(1200, 40, 1024) + OI_COST_2),
    "genai": (genai_trace, "conv-genai-1", 5, price(1200, 40, 1024) + price(1500, 200)),
    "openllmetry": (openllmetry_trace, "sess-tl-1", 6, price(1200, 40, 1024) + price(1500, 200)),
}


@pytest.mark.parametrize("convention", list(CASES))
def test_convention_trace_becomes_one_log_without_pii(convention, traces_server, acme_ingest, db_dsn):
    emit, session, spans, cost = CASES[convention]
    provider = sdk_provider(traces_server.url, acme_ingest)
    trace_id = emit(provider)
    provider.shutdown()
    [row] = wait_for_logs(db_dsn, 1)
    log, m = row["log"], row["log"]["metrics"]
    assert row["trace_id"] == trace_id and row["ticket_id"] == session and row["status"] == "SUCCESS"
    assert m["span_count"] == spans and m["llm_calls"] == 2 and m["tool_calls"] == 1
    assert (m["input_tokens"], m["output_tokens"], m["total_tokens"]) == (2700, 240, 2940)
    assert m["cost_usd"] == pytest.approx(cost, abs=1e-9)
    assert m["models"] == [RESPONSE_MODEL] and m["react_iterations"] == 2
    assert m["retrieval_calls"] == 1 and m["retrieval_top_score"] == 0.82
    docs = log["trace"]["retrieval"]["text"]["results"]
    assert [d["id"] for d in docs] == ["kb-7", "kb-9"]
    calls = log["trace"]["llm_calls"]
    assert calls[0]["cache_read_input_tokens"] == 1024 and calls[0]["provider"] == "openai"
    tools = [s for s in log["trace"]["spans"] if s["kind"] == "tool"]
    assert tools[0]["attributes"]["gen_ai.tool.name"] == "order_lookup"
    assert log["trace"]["ticket"]["user_id"].startswith("[user:")
    assert_nowhere(db_dsn, PLANTED, min_blobs=spans)
    text = str(log)
    assert "[email:" in text and "[phone:" in text and "[user:" in text
