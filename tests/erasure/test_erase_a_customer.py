"""Done when: after erasing a customer by email, nothing of theirs is left in ANY table (every text,
jsonb, text[] and bytea column of every table is scanned), their rollup counts are gone, the
receipt verifies, and another tenant's data with the same email is untouched. The logs are shipped
by the real bridge (a separate process, its own PII_HASH_KEY) to a real server."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psycopg
import pytest

from collector_api.contract.receipts import verify
from collector_api.contract.review_text import Scrubber
from collector_api.store.core.db import create_pool
from collector_api.store.logs.rollups import refresh_rollups
from otel_bridge import erasure_tokens
from tests.helpers import LiveServer, make_key, run_async
from viewer.app import review_hash_key

from .helpers import PII_KEY, RECEIPT_KEY, calibration_rollup, erase_settings, request_id, scan_everything

ANN = {"email": "ann.rossi@example.com", "name": "Ann Rossi", "phone": "+39 333 123 4567"}
BOB = {"email": "bob.verdi@example.org", "name": "Bob Verdi", "phone": "+39 347 765 4321"}
CLIENT = (Path(__file__).parent / "bridge_client.py.txt").read_text()
# Where an erasure keeps what it was asked (tokens and ids, never a raw value): the proof, and
# what refuses a late log. Every other table must hold nothing of the customer.
ASKED_TABLES = {"erasure_log", "erasure_tombstones"}


def ship(server, key: str, tickets: list[dict], tmp_path: Path) -> subprocess.CompletedProcess:
    script = tmp_path / "client.py"
    script.write_text(CLIENT)
    env = {**os.environ, "LOG_COLLECTOR_URL": server.url, "LOG_COLLECTOR_API_KEY": key, "PII_HASH_KEY": PII_KEY,
           "ENVIRONMENT": "production", "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    return subprocess.run([sys.executable, str(script), json.dumps(tickets)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)


def delivered(out: subprocess.CompletedProcess) -> None:
    assert out.returncode == 0 and out.stdout.strip() == "delivered", out.stderr[-2000:]


def wait_logs(dsn: str, n: int) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with psycopg.connect(dsn) as conn:
            if conn.execute("SELECT count(*) FROM workflow_logs").fetchone()[0] >= n:
                return
        time.sleep(0.1)
    raise AssertionError("logs did not arrive")


def log_id(dsn: str, client: str, ticket: str) -> int:
    with psycopg.connect(dsn) as conn:
        return conn.execute("SELECT id FROM workflow_logs WHERE client_id = %s AND ticket_id = %s",
                            (client, ticket)).fetchone()[0]


async def _refresh(dsn: str) -> None:
    async with create_pool(dsn) as pool:
        await refresh_rollups(pool)


def rollup_tickets(dsn: str, client: str) -> int:
    with psycopg.connect(dsn) as conn:
        return conn.execute("SELECT coalesce(sum(success + partial + failed), 0) FROM viewer_daily_rollup"
                            " WHERE client_id = %s", (client,)).fetchone()[0]


@pytest.fixture()
def server(db_dsn):
    live = LiveServer(db_dsn, erase_settings()).start()
    try:
        yield live
    finally:
        live.stop()


def _seed(server, dsn: str, tmp_path: Path) -> None:
    """acme: two tickets of Ann, one of Bob; globex: one of Ann (the same email, the same bridge key)."""
    delivered(ship(server, make_key(dsn, "acme"), [{"id": "A-1", **ANN}, {"id": "A-2", **ANN}, {"id": "B-1", **BOB}],
                   tmp_path))
    delivered(ship(server, make_key(dsn, "globex"), [{"id": "G-1", **ANN}], tmp_path))
    wait_logs(dsn, 4)
    review = {"X-API-Key": make_key(dsn, "acme", "review")}
    for ticket, note in (("A-1", f"{ANN['email']} was happy"), ("B-1", f"Bob, not {ANN['email']}")):
        r = httpx.post(f"{server.url}/api/v1/tickets/{log_id(dsn, 'acme', ticket)}/reviews", headers=review,
                       json={"verdict": "correct", "note": note}, timeout=30)
        assert r.status_code == 201, r.text
    with psycopg.connect(dsn) as conn:  # a notification that cites Ann's ticket
        conn.execute("INSERT INTO alert_deliveries (id, rule_name, client_id, state, body, next_attempt_at)"
                     " VALUES (gen_random_uuid(), 'r', 'acme', 'firing', convert_to('{\"ticket\": \"A-2\"}', 'UTF8'),"
                     " now())")
    run_async(_refresh(dsn))
    assert rollup_tickets(dsn, "acme") == 3 and rollup_tickets(dsn, "globex") == 1


def test_erase_a_customer_by_email_leaves_no_trace_in_any_table(server, db_dsn, tmp_path):
    _seed(server, db_dsn, tmp_path)
    tokens = erasure_tokens(email=ANN["email"], name=ANN["name"], phone=ANN["phone"], key=PII_KEY)
    note_token = Scrubber(review_hash_key(server.settings, server.settings.flusso_session_secret.get_secret_value())
                          ).token("email", ANN["email"])
    needles = [*tokens, note_token, ANN["email"], ANN["name"], "A-1", "A-2"]
    with psycopg.connect(db_dsn) as conn:  # erasure_tokens gives exactly what the bridge wrote, in both logs
        for token in tokens:
            assert conn.execute("SELECT count(*) FROM workflow_logs WHERE client_id = 'acme'"
                                " AND strpos(log_data::text, %s) > 0", (token,)).fetchone()[0] == 2, token
    before = {t for t, _, c in scan_everything(db_dsn, needles) if c == "acme"}
    assert {"ticket_reviews", "alert_deliveries"} <= before, before
    assert any(t.startswith("workflow_logs") for t in before), before  # the scan sees what it looks for
    assert sum(r[3] for r in calibration_rollup(db_dsn) if r[0] == "acme") == 2  # A-1 and B-1 reviewed

    r = httpx.post(f"{server.url}/api/v1/erasures", timeout=60,
                   headers={"X-API-Key": make_key(db_dsn, "acme", "erase")},
                   json={"request_id": request_id(), "tokens": tokens, "identifiers": {"email": [ANN["email"]]}})
    assert r.status_code == 200, r.text
    receipt = r.json()
    assert verify(receipt, RECEIPT_KEY)
    counts = receipt["counts"]
    assert counts["workflow_logs"] == 2 and counts["reviews"] == 1 and counts["reviews_citing"] == 1, counts
    assert counts["alert_deliveries"] == 1, counts
    text = json.dumps(receipt)
    assert ANN["email"] not in text and ANN["name"] not in text  # tokens only, never the raw value

    after = scan_everything(db_dsn, needles)
    left = [(t, col, c) for t, col, c in after if t not in ASKED_TABLES and c != "globex"]
    assert not left, f"traces of the erased customer remain: {left}"
    raw = scan_everything(db_dsn, [ANN["email"], ANN["name"], ANN["phone"]])
    assert all(c == "globex" for _, _, c in raw) or not raw, raw
    # globex's Ann is untouched: her log, its tokens, its rollup.
    assert any(c == "globex" for _, _, c in after)
    with psycopg.connect(db_dsn) as conn:
        left_tickets = conn.execute("SELECT client_id, ticket_id FROM workflow_logs ORDER BY 1, 2").fetchall()
    assert left_tickets == [("acme", "B-1"), ("globex", "G-1")]
    assert rollup_tickets(db_dsn, "acme") == 1 and rollup_tickets(db_dsn, "globex") == 1
    assert sum(r[3] for r in calibration_rollup(db_dsn) if r[0] == "acme") == 1  # B-1's review only
    # A new ticket of Ann's at acme, after the erasure: refused by her tokens' tombstones (named, not
    # retried), never stored.
    late = ship(server, make_key(db_dsn, "acme"), [{"id": "A-3", **ANN}], tmp_path)
    assert late.stdout.strip() == "not delivered" and "was erased" in late.stderr, late.stderr[-2000:]
    with psycopg.connect(db_dsn) as conn:
        assert conn.execute("SELECT count(*) FROM workflow_logs WHERE ticket_id = 'A-3'").fetchone()[0] == 0
