"""`flusso-obs demo --backfill-days N`: tickets spread over the last N days, repeat customers
(sessions with several tickets, recontacts), every time inside the collector's window; a re-run
stores nothing twice."""
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import psycopg

from tests.helpers import make_key


def _demo(url: str, key: str) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "flusso_obs.cli", "demo", "--tickets", "0", "--backfill-days", "10", "--quiet",
         "--collector", url], capture_output=True, text=True, timeout=180,
        env={**os.environ, "ENVIRONMENT": "test", "LOG_COLLECTOR_API_KEY": key})
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


def test_backfill_spreads_tickets_with_repeat_customers_and_reruns_add_nothing(live_server, db_dsn):
    key = make_key(db_dsn, "acme")
    first = _demo(live_server.url, key)
    assert "backfilled" in first
    with psycopg.connect(db_dsn) as conn:
        rows = conn.execute("SELECT executed_at, session_key, resolution_status, log_data->'trace'->'ticket'"
                            " FROM workflow_logs").fetchall()
    now = datetime.now(UTC)
    days = {r[0].astimezone(UTC).date() for r in rows}
    assert len(rows) >= 40 and len(days) >= 9  # 4-12 a day, today only up to now
    assert all(now - timedelta(days=10) < r[0] <= now for r in rows)
    sessions: dict[str, int] = {}
    for r in rows:
        sessions[r[1]] = sessions.get(r[1], 0) + 1
    assert None not in sessions and max(sessions.values()) >= 4  # the regulars come back
    assert all("@" not in str(r[3]) for r in rows)  # the real bridge redacted them
    second = _demo(live_server.url, key)
    assert "backfilled" in second
    with psycopg.connect(db_dsn) as conn:
        again = conn.execute("SELECT count(*) FROM workflow_logs").fetchone()[0]
    assert len(rows) <= again <= len(rows) + 1  # duplicates stored once (one may have come due meanwhile)
