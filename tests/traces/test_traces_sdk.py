"""/v1/traces end to end: the real Python OTel SDK and its stock OTLPSpanExporter against a live
server on 127.0.0.1, real PostgreSQL, the assembly job running in the server."""
from __future__ import annotations

import psycopg

from .helpers import EMAIL, NAME, PHONE, sdk_provider, support_trace, wait_for_logs


def test_genai_trace_becomes_one_workflow_log(traces_server, acme_ingest, db_dsn):
    provider = sdk_provider(traces_server.url, acme_ingest)
    trace_id = support_trace(provider, "T-100")
    provider.shutdown()
    [row] = wait_for_logs(db_dsn, 1)
    log = row["log"]
    assert row["trace_id"] == trace_id and row["ticket_id"] == "T-100" and row["client_id"] == "acme"
    assert row["status"] == "SUCCESS" and row["complete"] is True
    assert log["identification"]["source"] == "otlp-traces"
    assert log["identification"]["service_name"] == "support-agent"
    m = log["metrics"]
    assert m["llm_calls"] == 2 and m["tool_calls"] == 1 and m["span_count"] == 5
    assert (m["input_tokens"], m["output_tokens"], m["total_tokens"]) == (2000, 300, 2300)
    # gpt-4o-mini: 0.15 / 0.60 USD per 1M tokens
    assert abs(m["cost_usd"] - (2000 * 0.15 + 300 * 0.60) / 1e6) < 1e-9
    assert m["react_iterations"] == 2 and m["models"] == ["gpt-4o-mini"]
    assert m["retrieval_top_score"] == 0.8
    for absent in ("overall_confidence", "evidence_items", "decisions"):
        assert absent not in m
    draft = log["trace"]["output"]["draft"]  # the last LLM reply, the customer's first name replaced
    assert draft.startswith("Dear [name:") and draft.endswith(", your order ships tomorrow.")
    assert m["draft_length_chars"] == len(draft)
    assert log["trace"]["ticket"]["ticket_id"] == "T-100"


def test_planted_pii_appears_nowhere_in_the_database(traces_server, acme_ingest, db_dsn):
    provider = sdk_provider(traces_server.url, acme_ingest)
    support_trace(provider, "T-PII")
    provider.shutdown()
    [row] = wait_for_logs(db_dsn, 1)
    planted = [NAME, NAME.split()[0], NAME.split()[1], EMAIL, PHONE, "347 555 0199"]
    with psycopg.connect(db_dsn) as conn:
        texts = [r[0] for t in ("trace_spans", "trace_state", "workflow_logs")
                 for r in conn.execute(f"SELECT t::text FROM {t} t").fetchall()]
        blobs = [bytes(r[0]) for r in conn.execute("SELECT payload FROM trace_spans").fetchall()]
    assert len(blobs) == 5 and len(texts) >= 7
    for value in planted:
        for text in texts:
            assert value.lower() not in text.lower()
        for blob in blobs:
            assert value.encode() not in blob and value.lower().encode() not in blob.lower()
    text = str(row["log"])
    assert "[email:" in text and "[name:" in text
