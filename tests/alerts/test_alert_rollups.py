"""The alert job's minute and hour rollups: a refresh recomputes only the tenants whose logs changed,
and what it keeps equals a rebuild from the raw logs."""
from datetime import UTC, datetime, timedelta

import psycopg

from collector_api.store.alerts import rollups as alert_rollups
from collector_api.store.core.db import create_pool
from tests.helpers import run_async

NOW = datetime.now(UTC).replace(second=30, microsecond=0) - timedelta(minutes=5)


def refresh(dsn: str) -> int:
    async def run():
        async with create_pool(dsn, max_size=2) as pool:
            return await alert_rollups.refresh_alert_rollups(pool)
    return run_async(run())


def insert(dsn: str, rows: list[tuple[str, str, float, str, float]]) -> None:
    """(tenant, ticket, minutes ago, status, execution seconds) rows."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        for client, ticket, minutes_ago, status, secs in rows:
            conn.execute("INSERT INTO workflow_logs (client_id, ticket_id, status, executed_at, trace_id, log_data,"
                         " hallucination_risk, cost_usd, execution_time_seconds)"
                         " VALUES (%s, %s, %s, %s, %s, '{}', 0.25, 0.01, %s)",
                         (client, ticket, status, NOW - timedelta(minutes=minutes_ago), ticket, secs))


def rows(dsn: str) -> dict:
    with psycopg.connect(dsn) as conn:
        return {table: sorted(tuple(round(v, 9) if isinstance(v, float) else v for v in r)
                              for r in conn.execute(f"SELECT * FROM {table}").fetchall())
                for table in ("alert_rollup", "alert_rollup_duration")}


def test_only_the_tenants_with_new_logs_are_recomputed_and_the_rollups_equal_a_rebuild(db_dsn, monkeypatch):
    monkeypatch.setattr(alert_rollups, "LATE_COMMIT_SLACK", "0 seconds")
    insert(db_dsn, [("acme", "A-1", 0, "SUCCESS", 2.0), ("globex", "G-1", 0, "FAILED", 3.0),
                    ("globex", "G-2", 90, "PARTIAL", 1.0)])
    assert refresh(db_dsn) > 0
    minute = NOW.replace(second=0)
    with psycopg.connect(db_dsn, autocommit=True) as conn:  # a marker in globex's row of the minute acme touches
        conn.execute("UPDATE alert_rollup SET partial = 4242 WHERE client_id = 'globex' AND grain = 'm'"
                     " AND start = %s", (minute,))
    insert(db_dsn, [("acme", "A-2", 0, "PARTIAL", 9.0)])
    assert refresh(db_dsn) == 2  # acme's minute and hour
    with psycopg.connect(db_dsn) as conn:
        got = dict(conn.execute("SELECT client_id, partial FROM alert_rollup WHERE grain = 'm' AND start = %s",
                                (minute,)).fetchall())
    assert got == {"acme": 1, "globex": 4242}  # globex stored nothing: its row was not rewritten
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        conn.execute("UPDATE alert_rollup SET partial = 0 WHERE client_id = 'globex' AND start = %s", (minute,))
    insert(db_dsn, [("globex", "G-3", 90, "SUCCESS", 4.0), ("initech", "I-1", 200, "FAILED", 0.4),
                    ("acme", "A-3", 61, "SUCCESS", 7.5)])
    refresh(db_dsn)
    incremental = rows(db_dsn)
    assert len(incremental["alert_rollup"]) >= 8
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        conn.execute("DELETE FROM alert_rollup")
        conn.execute("DELETE FROM alert_rollup_duration")
        conn.execute("UPDATE alert_rollup_state SET watermark = NULL")
    refresh(db_dsn)
    assert incremental == rows(db_dsn)
