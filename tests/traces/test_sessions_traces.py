"""/v1/traces: traces carrying the same `gen_ai.conversation.id` (or `session.id`) group into one
session; another conversation is another session; the conversation id is never stored raw in
the key."""
import psycopg

from collector_api.contract.sessions import SESSION_KEY_RE, derive_session_key

from .helpers import genai_trace, sdk_provider, wait_for_logs


def test_traces_with_one_conversation_id_form_one_session(traces_server, acme_ingest, db_dsn):
    provider = sdk_provider(traces_server.url, acme_ingest)
    genai_trace(provider, session="conv-A")
    genai_trace(provider, session="conv-A")
    genai_trace(provider, session="conv-B")
    provider.shutdown()
    rows = wait_for_logs(db_dsn, 3)
    assert len(rows) == 3
    with psycopg.connect(db_dsn) as conn:
        keys = [r[0] for r in conn.execute("SELECT session_key FROM workflow_logs ORDER BY id").fetchall()]
    assert all(SESSION_KEY_RE.match(k) for k in keys)
    assert keys[0] == keys[1] != keys[2]
    assert keys[0].startswith("conv-") and "conv-A" not in keys[0]
    # The key is derived from the redacted log's conversation id, per tenant.
    assert rows[0]["log"]["trace"]["ticket"]["conversation_id"] == "conv-A"
    assert keys[0] == derive_session_key("acme", "conv", "conv-A")
    assert derive_session_key("globex", "conv", "conv-A") != keys[0]
