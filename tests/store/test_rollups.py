"""The rollup writer: incremental, durable cursor, and no log missed when it commits mid-refresh."""
from datetime import UTC, datetime, timedelta

import psycopg

from collector_api.store.core.db import create_pool
from collector_api.store.logs import rollups
from tests.helpers import run_async

YESTERDAY = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0) - timedelta(days=1)


def refresh(dsn: str) -> int:
    async def run():
        async with create_pool(dsn) as pool:
            return await rollups.refresh_rollups(pool)
    return run_async(run())


def insert(conn, ticket: str) -> None:
    conn.execute("INSERT INTO workflow_logs (client_id, ticket_id, status, executed_at, trace_id, log_data)"
                 " VALUES ('acme', %s, 'SUCCESS', %s, %s, '{}')", (ticket, YESTERDAY, ticket))


def rolled_success(dsn: str) -> int:
    with psycopg.connect(dsn) as conn:
        return conn.execute("SELECT coalesce(sum(success), 0) FROM viewer_daily_rollup WHERE day = %s",
                            (YESTERDAY.date(),)).fetchone()[0]


def test_a_log_committed_during_a_refresh_is_rolled_up_by_the_next(db_dsn, monkeypatch):
    monkeypatch.setattr(rollups, "LATE_COMMIT_SLACK", "0 seconds")  # only the in-flight guard protects it
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        insert(conn, "A")
    assert refresh(db_dsn) >= 1
    assert rolled_success(db_dsn) == 1
    with psycopg.connect(db_dsn) as slow:  # began before the refresh, commits after it
        insert(slow, "B")
        refresh(db_dsn)
        slow.commit()
    assert rolled_success(db_dsn) == 1
    refresh(db_dsn)
    assert rolled_success(db_dsn) == 2


def test_the_cursor_is_durable_so_a_restart_recomputes_nothing(db_dsn, monkeypatch):
    monkeypatch.setattr(rollups, "LATE_COMMIT_SLACK", "0 seconds")
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        insert(conn, "A")
    assert refresh(db_dsn) == 2  # yesterday and today, never rolled up
    assert refresh(db_dsn) == 0  # a new pool, as after a restart: nothing touched since
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        insert(conn, "B")
    assert refresh(db_dsn) == 1  # only the day the new log touched
    assert rolled_success(db_dsn) == 2


def test_a_hostile_tenant_s_huge_figures_do_not_stop_the_rollups_of_everyone(db_dsn):
    """Two logs of one tenant each claiming 2**62 input tokens (the most the column keeps) and
    absurd node durations: their day's token sum exceeds bigint. The refresh is one job for all
    tenants: before, it failed on that cast every run and no tenant's overview moved again."""
    from tests.viewer.helpers import make_log, store_logs

    evil = [make_log("evil", f"E-{i}") for i in range(2)]
    for doc in evil:
        doc["metrics"].update(input_tokens=2**62, output_tokens=2**62, cost_usd=1.7e308, execution_time_seconds=1e308)
        doc["ticket_info"]["execution_time_seconds"] = 1e308
        doc["metrics"]["node_durations_ms"] = {"planner": 1e300, "agent": 1.7e308, "draft": 250}
        doc["trace"]["llm_calls"] = [{"model": "m", "input_tokens": 2**62, "output_tokens": 1, "cost_usd": 1.7e308}] * 3
    store_logs(db_dsn, [*evil, make_log("acme", "A-1")])
    assert refresh(db_dsn) >= 1
    with psycopg.connect(db_dsn) as conn:
        rows = {r[0]: r[1:] for r in conn.execute(
            "SELECT client_id, input_tokens, cost_usd, exec_sum FROM viewer_daily_rollup").fetchall()}
        nodes = dict(conn.execute("SELECT node, ms_sum FROM viewer_daily_node_rollup d JOIN (SELECT 1) x ON true"
                                  " WHERE d.client_id = 'evil'").fetchall())
        usage = conn.execute("SELECT input_tokens, cost_usd FROM viewer_daily_usage_rollup"
                             " WHERE client_id = 'evil'").fetchone()
    assert rows["evil"] == (0, 0, 0)  # figures beyond 1e12 are not summed (the documents keep them)
    assert nodes == {"draft": 500}
    assert tuple(usage) == (0, 0)
    assert "acme" in rows and rows["acme"][0] > 0
