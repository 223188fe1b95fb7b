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


# The per-tenant refresh: each rollup table's rows, as a full rebuild from the raw logs writes them.
TABLES = {"viewer_daily_rollup": 2, "viewer_daily_duration_rollup": 3, "viewer_daily_node_rollup": 3,
          "viewer_daily_usage_rollup": 3, "viewer_daily_critical_rollup": 3, "viewer_daily_recontact_rollup": 2}


def rollup_rows(dsn: str) -> dict[str, dict]:
    """Every rollup row, keyed by (day, client_id[, bucket/node/model]); floats rounded for comparison."""
    out = {}
    with psycopg.connect(dsn) as conn:
        for table, keys in TABLES.items():
            cur = conn.execute(f"SELECT * FROM {table}")
            names = [c.name for c in cur.description]
            rows = {}
            for r in cur.fetchall():
                row = dict(zip(names, r, strict=True))
                key = tuple(row.pop(k) for k in ("day", "client_id", "bucket", "node", "model")[:keys + 1] if k in row)
                rows[key] = {k: round(float(v), 6) if isinstance(v, float) else v for k, v in row.items()}
            out[table] = rows
    return out


def rebuilt_rows(dsn: str) -> dict[str, dict]:
    """The rollups as a refresh from nothing computes them (every day, every tenant)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        for table in (*TABLES, "viewer_rollup_days"):
            conn.execute(f"DELETE FROM {table}")
        conn.execute("UPDATE viewer_rollup_state SET watermark = NULL")
    refresh(dsn)
    return rollup_rows(dsn)


def sessions_log(client: str, ticket: str, days_ago: float, session: str, resolution: str = "resolved") -> dict:
    from tests.viewer.helpers import make_log

    doc = make_log(client, ticket, days_ago=days_ago, resolution=resolution)
    doc["trace"]["ticket"]["conversation_id"] = f"conv-{session}"
    return doc


def test_a_refresh_recomputes_only_the_tenants_whose_logs_changed_and_stays_exact(db_dsn, monkeypatch):
    """Tenants share days; each refresh after the first recomputes only the (tenant, day) pairs of
    new logs. The rows of a tenant that stored nothing are not rewritten (a marker put in one
    survives), and after logs of several tenants on old and new days, late tickets that recontact
    an earlier one, every rollup table equals a rebuild from nothing."""
    from tests.viewer.helpers import store_logs

    monkeypatch.setattr(rollups, "LATE_COMMIT_SLACK", "0 seconds")
    store_logs(db_dsn, [sessions_log("acme", "A-1", 2, "ann"), sessions_log("globex", "G-1", 2, "gus"),
                        sessions_log("acme", "A-2", 5, "bob"), sessions_log("globex", "G-2", 1, "gus")])
    refresh(db_dsn)
    day = (datetime.now(UTC) - timedelta(days=2)).date()
    with psycopg.connect(db_dsn, autocommit=True) as conn:  # a marker in globex's row of a day acme will touch
        conn.execute("UPDATE viewer_daily_rollup SET partial = 4242 WHERE client_id = 'globex' AND day = %s", (day,))
    store_logs(db_dsn, [sessions_log("acme", "A-3", 2, "ann", "escalated"), sessions_log("acme", "A-4", 1, "bob")])
    assert refresh(db_dsn) == 2  # acme's two days
    with psycopg.connect(db_dsn) as conn:
        marker = conn.execute("SELECT partial FROM viewer_daily_rollup WHERE client_id = 'globex' AND day = %s",
                              (day,)).fetchone()[0]
        acme = conn.execute("SELECT success FROM viewer_daily_rollup WHERE client_id = 'acme' AND day = %s",
                            (day,)).fetchone()[0]
    assert marker == 4242  # not recomputed: globex stored nothing
    assert acme == 2  # A-1 and the new A-3
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        conn.execute("UPDATE viewer_daily_rollup SET partial = 0 WHERE client_id = 'globex' AND day = %s", (day,))
    # More rounds: late logs of both tenants, one of them three days before its session's others.
    store_logs(db_dsn, [sessions_log("globex", "G-3", 3.5, "gus"), sessions_log("acme", "A-5", 0, "ann")])
    refresh(db_dsn)
    store_logs(db_dsn, [sessions_log("acme", "A-6", 6, "ann", "resolved"), sessions_log("initech", "I-1", 2, "ivy")])
    refresh(db_dsn)
    incremental = rollup_rows(db_dsn)
    assert incremental["viewer_daily_recontact_rollup"], "the seed has resolved tickets with sessions"
    assert sum(r["recontacted"] for r in incremental["viewer_daily_recontact_rollup"].values()) >= 2
    assert incremental == rebuilt_rows(db_dsn)
