"""A /v1/traces log is erased by the customer's raw email (hashed by the collector under the
tenant's key, never stored); its staged spans and trace state go too, and late spans of the
erased trace are not assembled into a log again."""
from __future__ import annotations

import json

import httpx
import psycopg

from tests.helpers import LiveServer, make_key
from tests.traces.helpers import EMAIL, SECRET, agent_trace, post, request, wait_for_logs, wait_until

from .helpers import erase_settings, scan_everything


def test_a_traces_log_is_erased_by_raw_email_with_its_staged_spans(db_dsn):
    settings = erase_settings(flusso_pii_hash_key=SECRET, flusso_trace_quiet_seconds=0.3,
                              flusso_trace_assembly_seconds=0.2, flusso_trace_max_age_seconds=30,
                              flusso_trace_late_window_seconds=30)
    server = LiveServer(db_dsn, settings).start()
    try:
        key = make_key(db_dsn, "acme")
        trace = bytes.fromhex("ab" * 16)
        assert post(server, key, request(*agent_trace(trace, ticket="TR-1", user__email=EMAIL))).status_code == 200
        other = bytes.fromhex("cd" * 16)  # another customer's trace stays
        assert post(server, key, request(*agent_trace(other, ticket="TR-2"))).status_code == 200
        logs = wait_for_logs(db_dsn, 2)
        assert len(logs) == 2 and EMAIL not in json.dumps([r["log"] for r in logs])
        r = httpx.post(f"{server.url}/api/v1/erasures", timeout=60, headers={"X-API-Key": make_key(db_dsn, "acme",
                                                                                                     "erase")},
                       json={"request_id": "traces-1", "identifiers": {"email": [EMAIL]}})
        assert r.status_code == 200, r.text
        counts = r.json()["counts"]
        assert counts["workflow_logs"] == 1 and counts["staged_spans"] == 3 and counts["trace_states"] == 1, counts
        assert EMAIL not in r.text
        with psycopg.connect(db_dsn) as conn:
            assert conn.execute("SELECT ticket_id FROM workflow_logs").fetchall() == [("TR-2",)]
            assert conn.execute("SELECT count(*) FROM trace_spans WHERE trace_id = %s", ("ab" * 16,)).fetchone()[0] == 0
        # A late span of the erased trace: staged, then its assembly is refused and its spans deleted.
        late = agent_trace(trace, ticket="TR-1")[-1]  # its root again, without the email this time
        assert post(server, key, request(late)).status_code == 200
        assert wait_until(lambda: _spans(db_dsn, "ab" * 16) == 0 and _state(db_dsn, "ab" * 16), timeout=20)
        assert [r["ticket_id"] for r in wait_for_logs(db_dsn, 1)] == ["TR-2"]
        assert not [h for h in scan_everything(db_dsn, [EMAIL]) if h[0] != "erasure_log"]
    finally:
        server.stop()


def _spans(dsn: str, trace: str) -> int:
    with psycopg.connect(dsn) as conn:
        return conn.execute("SELECT count(*) FROM trace_spans WHERE trace_id = %s", (trace,)).fetchone()[0]


def _state(dsn: str, trace: str) -> bool:
    """The late trace was assembled (and its log refused): no longer open."""
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT state FROM trace_state WHERE trace_id = %s", (trace,)).fetchone()
    return row is not None and row[0] != "open"
