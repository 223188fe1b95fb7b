"""The rollup writer: incremental, durable cursor, and no log missed when it commits mid-refresh."""
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

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


def test_a_log_committed_during_a_refresh_is_rolled_up_by_the_next(db_dsn):
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


def test_the_queue_is_durable_so_a_restart_recomputes_nothing(db_dsn):
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
    # The alert rollups' refresh (one job for all tenants too) sums risk and cost by minute.
    from collector_api.store.alerts.rollups import refresh_alert_rollups

    async def alerts():
        async with create_pool(db_dsn) as pool:
            return await refresh_alert_rollups(pool)
    assert run_async(alerts()) >= 1
    with psycopg.connect(db_dsn) as conn:
        rolled = dict(conn.execute("SELECT client_id, total FROM alert_rollup WHERE grain = 'h'").fetchall())
    assert rolled == {"evil": 2, "acme": 1}


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
        conn.execute("DELETE FROM viewer_rollup_pending")
    refresh(dsn)
    return rollup_rows(dsn)


def sessions_log(client: str, ticket: str, days_ago: float, session: str, resolution: str = "resolved") -> dict:
    from tests.viewer.helpers import make_log

    doc = make_log(client, ticket, days_ago=days_ago, resolution=resolution)
    doc["trace"]["ticket"]["conversation_id"] = f"conv-{session}"
    return doc


def test_a_refresh_recomputes_only_the_tenants_whose_logs_changed_and_stays_exact(db_dsn):
    """Tenants share days; each refresh after the first recomputes only the (tenant, day) pairs of
    new logs. The rows of a tenant that stored nothing are not rewritten (a marker put in one
    survives), and after logs of several tenants on old and new days, late tickets that recontact
    an earlier one, every rollup table equals a rebuild from nothing."""
    from tests.viewer.helpers import store_logs

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


# The additive refresh (migration 0025): the queue, its triggers and one snapshot per refresh.

def pending(dsn: str) -> list[tuple]:
    with psycopg.connect(dsn) as conn:
        return conn.execute("SELECT client_id, day, log_id IS NOT NULL FROM viewer_rollup_pending"
                            " ORDER BY 1, 2, 3").fetchall()


def recompute_days(dsn: str, days: list, client: str) -> None:
    async def run():
        async with create_pool(dsn) as pool:
            await rollups.recompute_days(pool, days, client)
    run_async(run())


def test_a_log_committing_after_a_refresh_aggregated_is_not_consumed_unseen(db_dsn, monkeypatch):
    """B commits after the refresh aggregated the queue and before it deletes what it consumed: the
    refresh's one snapshot (REPEATABLE READ) neither counts B nor deletes its queue row, so the next
    refresh counts it. In READ COMMITTED the delete would see B's row and B would never count."""
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        insert(conn, "A")
    refresh(db_dsn)  # the day is rolled up: from now on its new logs are added, not recomputed
    add = rollups._add_deltas
    with psycopg.connect(db_dsn) as slow:
        insert(slow, "B")

        async def add_then_commit_b(conn, *args):
            got = await add(conn, *args)
            slow.commit()
            return got
        monkeypatch.setattr(rollups, "_add_deltas", add_then_commit_b)
        refresh(db_dsn)
    monkeypatch.setattr(rollups, "_add_deltas", add)
    assert rolled_success(db_dsn) == 1
    assert [p[0] for p in pending(db_dsn) if p[1] == YESTERDAY.date()] == ["acme"]  # B's row waits
    refresh(db_dsn)
    assert rolled_success(db_dsn) == 2
    assert pending(db_dsn) == []


def _advisory_waiters(dsn: str) -> int:
    with psycopg.connect(dsn) as conn:
        return conn.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted").fetchone()[0]


def test_a_recompute_waiting_for_a_refresh_takes_its_snapshot_after_it(db_dsn, monkeypatch):
    """recompute_days (after an erasure) waits for a refresh in progress; its snapshot must follow
    the refresh's commit. With the lock taken inside the transaction, its snapshot would predate
    the refresh's writes and its rewrite of the same rows fail (could not serialize access)."""
    import threading
    import time

    from tests.viewer.helpers import make_log, store_logs

    store_logs(db_dsn, [make_log("acme", "A-1", days_ago=1)])
    refresh(db_dsn)
    store_logs(db_dsn, [make_log("acme", "A-2", days_ago=1), make_log("acme", "A-3", days_ago=1)])
    add, errors = rollups._add_deltas, []

    def erasure_recompute():
        try:
            recompute_days(db_dsn, [YESTERDAY.date()], "acme")
        except Exception as exc:  # noqa: BLE001 (reported below)
            errors.append(exc)
    waiter = threading.Thread(target=erasure_recompute)

    async def add_while_a_recompute_waits(conn, *args):
        got = await add(conn, *args)
        waiter.start()
        for _ in range(200):
            if _advisory_waiters(db_dsn):
                break
            time.sleep(0.05)
        assert _advisory_waiters(db_dsn) == 1
        return got
    monkeypatch.setattr(rollups, "_add_deltas", add_while_a_recompute_waits)
    refresh(db_dsn)
    waiter.join(30)
    assert errors == []
    assert rolled_success(db_dsn) == 3
    assert pending(db_dsn) == [("acme", YESTERDAY.date(), False)]  # recomputed whole: again by the next refresh


def test_a_log_replaced_in_place_counts_once_with_its_new_values(db_dsn):
    """A re-assembled trace replaces its log in place (store.traces.assembly: same id, new figures,
    maybe another day or month): its old and new (tenant, day) are recomputed whole, so it counts
    once, with its new values, whether its first version was rolled up already or not."""
    from tests.viewer.helpers import make_log, store_logs

    first, second = store_logs(db_dsn, [make_log("acme", "A-1", days_ago=2), make_log("globex", "G-1", days_ago=2)])
    refresh(db_dsn)
    late = store_logs(db_dsn, [make_log("acme", "A-2", days_ago=2)])[0]  # queued, replaced before any refresh

    async def replace(log_id: int, client: str, days_ago: int, status: str) -> None:
        from collector_api.store.core.db import Scope, scoped_transaction

        async with create_pool(db_dsn) as pool, scoped_transaction(pool, Scope.tenant(client)) as conn:
            await conn.execute("UPDATE workflow_logs SET status = %s, execution_time_seconds = 77,"
                               " executed_at = executed_at - make_interval(days => %s)"
                               " WHERE client_id = %s AND id = %s", (status, days_ago, client, log_id))
    run_async(replace(first, "acme", 35, "FAILED"))  # into another month's partition
    run_async(replace(late, "acme", 0, "PARTIAL"))
    refresh(db_dsn)
    rows = rollup_rows(db_dsn)
    acme = {k[0]: (v["success"], v["partial"], v["failed"]) for k, v in rows["viewer_daily_rollup"].items()
            if k[1] == "acme"}
    two, old = (datetime.now(UTC) - timedelta(days=2)).date(), (datetime.now(UTC) - timedelta(days=37)).date()
    assert acme == {two: (0, 1, 0), old: (0, 0, 1)}
    assert pending(db_dsn) == []
    assert second and rows == rebuilt_rows(db_dsn)


def test_a_log_erased_before_the_refresh_is_not_counted(db_dsn):
    """An erasure (or retention) deletes a queued log before the refresh: its queue row joins
    nothing. recompute_days (the erasure's) counts the tenant's queued logs of the days it
    recomputes and has the next refresh recompute those days whole, never add them a second time."""
    from tests.viewer.helpers import make_log, store_logs

    store_logs(db_dsn, [make_log("acme", "A-1"), make_log("acme", "A-2")])
    refresh(db_dsn)
    gone = store_logs(db_dsn, [make_log("acme", "A-3"), make_log("acme", "A-4")])
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        conn.execute("DELETE FROM workflow_logs WHERE id = %s", (gone[0],))
    refresh(db_dsn)
    assert rolled_success(db_dsn) == 3
    store_logs(db_dsn, [make_log("acme", "A-5")])
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        conn.execute("DELETE FROM workflow_logs WHERE id = %s", (gone[1],))
    recompute_days(db_dsn, [YESTERDAY.date()], "acme")
    assert rolled_success(db_dsn) == 3  # and A-5 (recomputed whole)
    assert ("acme", YESTERDAY.date(), False) in pending(db_dsn)  # the refresh recomputes it whole too
    refresh(db_dsn)
    assert pending(db_dsn) == []
    assert rolled_success(db_dsn) == 3
    assert rollup_rows(db_dsn) == rebuilt_rows(db_dsn)


def test_retention_s_dropped_days_leave_no_rollup_and_no_queue(db_dsn):
    """Retention deletes a tenant's old logs (a whole month's partition, or row by row): queue rows
    of days before the first stored log go, their logs joining nothing, and so do their rollups."""
    from tests.viewer.helpers import make_log, store_logs

    store_logs(db_dsn, [make_log("acme", "A-old", days_ago=40), make_log("acme", "A-new", days_ago=1)])
    refresh(db_dsn)
    store_logs(db_dsn, [make_log("acme", "A-old-2", days_ago=40), make_log("globex", "G-old", days_ago=40.2)])
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        conn.execute("DELETE FROM workflow_logs WHERE executed_at < now() - interval '30 days'")
    assert len(pending(db_dsn)) == 2
    refresh(db_dsn)
    assert pending(db_dsn) == []
    old = (datetime.now(UTC) - timedelta(days=40)).date()
    assert all(k[0] > old for rows in rollup_rows(db_dsn).values() for k in rows)
    assert rollup_rows(db_dsn) == rebuilt_rows(db_dsn)


def test_a_tenant_s_past_days_are_added_to_not_recomputed(db_dsn):
    """Logs of a tenant's past days (a backfill) are added to its rollup rows: a marker in the
    stored rows survives the refresh (a recompute of the day would have erased it), and once the
    marker is taken out every table equals a rebuild from nothing."""
    from tests.viewer.helpers import NOW, make_log, store_logs

    since_midnight = (NOW - NOW.replace(hour=0, minute=0, second=0)).total_seconds() / 86400

    def at(days: int, hour: float) -> float:
        """`days_ago` of `hour` o'clock (UTC) `days` days back: every log of a day stays in that day
        whatever the time the test runs (run at 00:30, "1.1 days ago" was the day before)."""
        return days + since_midnight - hour / 24

    store_logs(db_dsn, [make_log("acme", f"A-{d}-{i}", days_ago=at(d, 8 + 2 * i), status=("SUCCESS", "FAILED")[i % 2],
                                 duration_s=1.5 * i + d, cost=0.01 * i) for d in range(1, 6) for i in range(3)])
    refresh(db_dsn)
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        conn.execute("UPDATE viewer_daily_rollup SET partial = partial + 1000 WHERE client_id = 'acme'")
    for round_ in range(2):
        store_logs(db_dsn, [make_log("acme", f"B-{round_}-{d}", days_ago=at(d, 9), status="PARTIAL",
                                     confidence=0.3 + 0.1 * d, duration_s=40.0 * d, cost=0.5)
                            for d in range(1, 6)] + [make_log("globex", f"G-{round_}", days_ago=3)])
        assert refresh(db_dsn) == 5
    with psycopg.connect(db_dsn) as conn:
        partial = dict(conn.execute("SELECT day, partial FROM viewer_daily_rollup WHERE client_id = 'acme'"
                                    " AND partial > 0").fetchall())
    assert len(partial) == 5 and set(partial.values()) == {1002}  # the marker + 2 new logs, each day
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        conn.execute("UPDATE viewer_daily_rollup SET partial = partial - 1000 WHERE client_id = 'acme'")
    assert rollup_rows(db_dsn) == rebuilt_rows(db_dsn)


def test_the_queue_is_filled_by_every_way_logs_are_written_and_only_for_what_rollups_read(db_dsn):
    """A duplicate (ON CONFLICT DO NOTHING) queues nothing; COPY queues its rows; an update of a
    column no rollup reads (the session backfill's session_done) dirties no day."""
    from tests.viewer.helpers import make_log, store_logs

    doc = make_log("acme", "A-1")
    store_logs(db_dsn, [doc])
    store_logs(db_dsn, [doc])  # the same trace and time again: not stored, not queued
    assert pending(db_dsn) == [("acme", YESTERDAY.date(), True)]
    with psycopg.connect(db_dsn) as conn:  # COPY refuses RLS: the owner lifts FORCE, as bench_viewer's loader
        conn.execute("ALTER TABLE workflow_logs NO FORCE ROW LEVEL SECURITY")
        with conn.cursor().copy("COPY workflow_logs (client_id, ticket_id, status, executed_at, trace_id, log_data)"
                                " FROM STDIN") as copy:
            copy.write_row(("globex", "G-1", "SUCCESS", YESTERDAY, "t-g1", "{}"))
        conn.execute("ALTER TABLE workflow_logs FORCE ROW LEVEL SECURITY")
        conn.execute("UPDATE workflow_logs SET session_done = NULL")
        conn.execute("UPDATE workflow_logs SET status = status")
    assert pending(db_dsn) == [("acme", YESTERDAY.date(), True), ("globex", YESTERDAY.date(), True)]
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        conn.execute("UPDATE workflow_logs SET session_key = 'other' WHERE client_id = 'globex'")
    assert ("globex", YESTERDAY.date(), False) in pending(db_dsn)


def test_a_tenant_can_neither_read_nor_write_the_queue(db_dsn):
    """The queue is written by the triggers only (owner's rights): a tenant's own log is queued,
    yet the tenant reads no queue row (its own or another's), and cannot add or delete one (it
    could make every refresh recompute another tenant's days); the provider reads them all."""
    from collector_api.store.core.db import Scope, scoped_transaction
    from tests.viewer.helpers import make_log, store_logs

    store_logs(db_dsn, [make_log("acme", "A-1"), make_log("globex", "G-1")])

    async def as_(scope: Scope, query: str, params=()) -> list:
        async with create_pool(db_dsn, max_size=1) as pool, scoped_transaction(pool, scope) as conn:
            cur = await conn.execute(query, params)
            return await cur.fetchall() if cur.description else []
    assert run_async(as_(Scope.tenant("globex"), "SELECT * FROM viewer_rollup_pending")) == []
    rows = run_async(as_(Scope.provider(), "SELECT client_id FROM viewer_rollup_pending ORDER BY 1"))
    assert [r["client_id"] for r in rows] == ["acme", "globex"]
    for client in ("acme", "globex"):
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            run_async(as_(Scope.tenant("globex"), "INSERT INTO viewer_rollup_pending (client_id, day)"
                                                  " VALUES (%s, current_date)", (client,)))
    run_async(as_(Scope.tenant("globex"), "DELETE FROM viewer_rollup_pending"))  # sees nothing to delete
    assert len(pending(db_dsn)) == 2
    refresh(db_dsn)
    # The additive refresh's UPDATE grant on the rollup tables: no tenant policy lets one write there.
    run_async(as_(Scope.tenant("globex"), "UPDATE viewer_daily_rollup SET success = 99"))
    assert rolled_success(db_dsn) == 2


def test_late_tickets_of_a_session_change_the_recontact_rollup_additively_and_exactly(db_dsn):
    """The recontact rollup is added to as well: a late ticket makes the latest earlier ticket of its
    session recontacted if no counted ticket did, never one already recontacted, and is itself
    recontacted if a later ticket exists; ties and tickets of one refresh each other's later
    contacts included. After each round the rows equal a rebuild from nothing."""
    from tests.viewer.helpers import store_logs

    store_logs(db_dsn, [sessions_log("acme", "T1", 6, "ann"), sessions_log("acme", "T2", 5.5, "ann"),
                        sessions_log("acme", "U1", 20, "bob"), sessions_log("globex", "G1", 3, "ann")])
    refresh(db_dsn)
    rounds = [
        [sessions_log("acme", "L1", 5.8, "ann")],  # between T1 and T2: T1 is recontacted already
        [sessions_log("acme", "L2", 5, "ann"), sessions_log("acme", "L3", 4.9, "ann", "escalated")],  # T2 flips
        [sessions_log("acme", "U2", 14, "bob"), sessions_log("acme", "U3", 13.5, "bob")],  # 6 days after U1: no
        [sessions_log("acme", "L4", 9, "ann"), sessions_log("acme", "L5", 2, "ann")],
    ]
    for docs in rounds:
        store_logs(db_dsn, docs)
        refresh(db_dsn)
        incremental = rollup_rows(db_dsn)
        assert incremental == rebuilt_rows(db_dsn)
    rows = incremental["viewer_daily_recontact_rollup"]
    assert sum(r["recontacted"] for r in rows.values()) >= 5


def test_a_refresh_cancelled_midway_holds_no_lock_after(db_dsn, monkeypatch):
    """The job runner cancels a refresh past its deadline: the rollups' session lock must not stay
    with the pooled connection (every later refresh would skip, the erasure's recompute wait)."""
    import asyncio

    with psycopg.connect(db_dsn, autocommit=True) as conn:
        insert(conn, "A")
    add = rollups._add_deltas

    async def stuck(conn, *args):
        await asyncio.sleep(30)
    monkeypatch.setattr(rollups, "_add_deltas", stuck)

    async def run():
        async with create_pool(db_dsn, max_size=2) as pool:
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(rollups.refresh_rollups(pool), 0.5)
            with psycopg.connect(db_dsn) as other:
                held = other.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'").fetchone()[0]
            monkeypatch.setattr(rollups, "_add_deltas", add)
            return held, await rollups.refresh_rollups(pool)
    held, done = run_async(run())
    assert held == 0
    assert done >= 1 and rolled_success(db_dsn) == 1


def test_an_erasure_s_recompute_and_a_queued_late_ticket_count_its_recontact_once(db_dsn):
    """After an erasure recompute_days recomputes a day's recontact whole, seeing a late ticket
    still queued for the refresh (it makes an earlier ticket of its session recontacted). The
    refresh must not add that ticket's effect on the recomputed day a second time."""
    from tests.viewer.helpers import store_logs

    store_logs(db_dsn, [sessions_log("acme", "T1", 3, "ann"), sessions_log("acme", "T2", 3, "bob")])
    refresh(db_dsn)
    erased = store_logs(db_dsn, [sessions_log("acme", "L1", 1, "ann")])  # queued: T1 is now recontacted
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        conn.execute("DELETE FROM workflow_logs WHERE ticket_id = 'T2'")
    recompute_days(db_dsn, [(datetime.now(UTC) - timedelta(days=3)).date()], "acme")
    refresh(db_dsn)
    rows = rollup_rows(db_dsn)
    assert erased and sum(r["recontacted"] for r in rows["viewer_daily_recontact_rollup"].values()) == 1
    assert rows == rebuilt_rows(db_dsn)


def _plan_nodes(plan: dict):
    yield plan
    for child in plan.get("Plans", []):
        yield from _plan_nodes(child)


def test_the_delta_reads_each_queued_log_once_whatever_the_queue_s_statistics(db_dsn):
    """The copy of the queued logs (rollups._DELTA) probes one log per queue row and reads the queue
    once. Before, PostgreSQL misjudged the join with the logs (three equal columns: "1 row") and
    anti-joined each queued row with a scan of the whole queue: a 220,000-row queue at 2M logs took
    over 10 minutes, past the job's deadline, every refresh after. Plain statistics, a fresh ANALYZE."""
    queued = 3000
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        conn.execute("INSERT INTO workflow_logs (client_id, ticket_id, status, executed_at, trace_id, log_data)"
                     " SELECT 'acme', 'T-' || i, 'SUCCESS', %s + i * interval '1 second', 'tr-' || i, '{}'"
                     " FROM generate_series(1, %s) AS i", (YESTERDAY, queued))
        conn.execute("INSERT INTO viewer_rollup_pending (client_id, day) VALUES ('acme', %s)",  # a dirty day too
                     (YESTERDAY.date() - timedelta(days=1),))
        conn.execute("ANALYZE workflow_logs")
        conn.execute("ANALYZE viewer_rollup_pending")
        query = rollups._DELTA.split(" AS", 1)[1]  # the SELECT of the CREATE TABLE AS
        plan = conn.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + query, {
            "first": YESTERDAY.date() - timedelta(days=3), "stop": YESTERDAY.date() + timedelta(days=2),
            "fresh": []}).fetchone()[0][0]["Plan"]
    assert plan["Actual Rows"] == queued
    nodes = list(_plan_nodes(plan))
    read = {}
    for node in nodes:
        relation = node.get("Relation Name", "")
        table = "queue" if relation == "viewer_rollup_pending" else "logs" if relation.startswith("workflow_logs") \
            else None
        if table:
            read[table] = read.get(table, 0) + (node["Actual Rows"] + node.get("Rows Removed by Filter", 0)) \
                * node["Actual Loops"]
    assert read["queue"] <= queued + 1  # one pass over the queue
    assert read["logs"] <= queued  # one index probe per queued log, never the table


def test_the_recontact_delta_stops_at_the_first_counted_ticket_after_each_candidate(db_dsn):
    """A counted ticket followed by a new one is checked for a later counted ticket in its window
    (rollups._RECONTACT_DELTA, `flipped`): a walk along the session that stops at the first one.
    PostgreSQL had turned that check into a hash anti-join that read every later ticket of the
    session for each candidate: at 10M logs a refresh of a 40,000-ticket session took 39.8 s
    (with 500 new tickets among 40,000: 770 ms, now 20 ms). Here: 3,000 tickets of one session a
    minute apart, every sixth one new."""
    total, every = 3000, 6
    with psycopg.connect(db_dsn) as conn:
        conn.execute("INSERT INTO workflow_logs (client_id, ticket_id, status, executed_at, trace_id, log_data,"
                     " session_key, resolution_status)"
                     " SELECT 'acme', 'T-' || i, 'SUCCESS', %s + i * interval '1 minute', 'tr-' || i, '{}', 'one',"
                     " 'resolved' FROM generate_series(1, %s) AS i", (YESTERDAY - timedelta(days=2), total))
        conn.execute("CREATE TEMP TABLE rollup_delta AS SELECT * FROM workflow_logs"
                     " WHERE substr(ticket_id, 3)::int %% %s = 0", (every,))
        conn.execute("CREATE INDEX ON rollup_delta (id)")
        conn.execute("ANALYZE rollup_delta")
        conn.execute(rollups._SESSION_LOGS, {"w": 7})
        conn.execute("CREATE INDEX ON session_logs (client_id, session_key, executed_at)")
        conn.execute("ANALYZE session_logs")
        plan = conn.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + rollups._RECONTACT_DELTA, {
            "w": 7, "everyone": [], "clients": [], "days": []}).fetchone()[0][0]["Plan"]
        conn.rollback()
    read = sum((n["Actual Rows"] + n.get("Rows Removed by Filter", 0)) * n["Actual Loops"]
               for n in _plan_nodes(plan) if n.get("Relation Name") == "session_logs")
    assert read <= 4 * total  # a few probes per ticket; the hash anti-join read ~1,500 per candidate
