"""The alert job's minute and hour rollups, additive (migration 0030): a refresh adds the queued new
logs, recomputes whole only the buckets changed in place or erased, counts each log exactly once
whatever commits around it, and what it keeps equals a live aggregation of the raw logs."""
import asyncio
import threading
import time
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from collector_api.store.alerts import rollups as alert_rollups
from collector_api.store.core.db import create_pool
from tests.helpers import run_async

NOW = datetime.now(UTC).replace(second=30, microsecond=0) - timedelta(minutes=5)
_INSERT = ("INSERT INTO workflow_logs (client_id, ticket_id, status, executed_at, trace_id, log_data,"
           " hallucination_risk, cost_usd, execution_time_seconds) VALUES (%s, %s, %s, %s, %s, '{}', 0.25, 0.01, %s)")


def refresh(dsn: str) -> int:
    async def run():
        async with create_pool(dsn, max_size=2) as pool:
            return await alert_rollups.refresh_alert_rollups(pool)
    return run_async(run())


def erase_recompute(dsn: str, client: str, minutes: list[datetime]) -> None:
    async def run():
        async with create_pool(dsn, max_size=1) as pool:
            await alert_rollups.recompute_alert_minutes(pool, client, minutes)
    run_async(run())


def insert(dsn: str, rows: list[tuple[str, str, float, str, float]]) -> None:
    """(tenant, ticket, minutes ago, status, execution seconds) rows."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        for row in rows:
            insert_one(conn, *row)


def insert_one(conn, client: str, ticket: str, minutes_ago: float, status: str = "SUCCESS", secs: float = 1.0):
    conn.execute(_INSERT, (client, ticket, status, NOW - timedelta(minutes=minutes_ago), ticket, secs))


# Each grain's buckets compared: in reach, less a margin (the refresh's and the test's clocks differ:
# a bucket at the edge of the reach may be dropped by one and not the other).
_SETTLED = ("(VALUES ('m', 'minute', now() - interval '2 days' + interval '10 minutes'),"
            " ('h', 'hour', now() - interval '8 days' + interval '2 hours')) AS g(grain, unit, reach)")


def rows(dsn: str) -> dict:
    with psycopg.connect(dsn) as conn:
        return {table: sorted(tuple(round(v, 9) if isinstance(v, float) else v for v in r)
                              for r in conn.execute(f"SELECT t.* FROM {table} t JOIN {_SETTLED} ON g.grain = t.grain"
                                                    " WHERE t.start >= g.reach").fetchall())
                for table in ("alert_rollup", "alert_rollup_duration")}


def live_rows(dsn: str) -> dict:
    """What the rollups must hold: each grain's buckets in reach, aggregated from the raw logs now
    (written independently of the product's SQL)."""
    bucket = "date_trunc(g.unit, executed_at, 'UTC')"
    with psycopg.connect(dsn) as conn:
        totals = conn.execute(
            f"SELECT g.grain, client_id, {bucket} AS start, count(*), count(*) FILTER (WHERE status = 'PARTIAL'),"
            " count(*) FILTER (WHERE status = 'FAILED'), COALESCE(sum(hallucination_risk), 0),"
            f" count(hallucination_risk), COALESCE(sum(cost_usd), 0) FROM workflow_logs, {_SETTLED}"
            f" WHERE {bucket} >= g.reach GROUP BY 1, 2, 3").fetchall()
        durations = conn.execute(
            f"SELECT g.grain, client_id, {bucket} AS start, width_bucket(execution_time_seconds, %s::float8[]),"
            f" count(*) FROM workflow_logs, {_SETTLED} WHERE {bucket} >= g.reach"
            " AND execution_time_seconds IS NOT NULL GROUP BY 1, 2, 3, 4", (alert_rollups.FINE_EDGES,)).fetchall()
    return {table: sorted(tuple(round(v, 9) if isinstance(v, float) else v for v in r) for r in got)
            for table, got in (("alert_rollup", totals), ("alert_rollup_duration", durations))}


def expired(dsn: str) -> int:
    """Rollup rows of buckets past their reach (pruned by every refresh)."""
    with psycopg.connect(dsn) as conn:
        return sum(conn.execute(f"SELECT count(*) FROM {table} WHERE start < now() - CASE grain WHEN 'm'"
                                " THEN interval '2 days' ELSE interval '8 days' END").fetchone()[0]
                   for table in ("alert_rollup", "alert_rollup_duration"))


def pending(dsn: str) -> list[tuple]:
    with psycopg.connect(dsn) as conn:
        return conn.execute("SELECT client_id, minute, log_id IS NOT NULL FROM alert_rollup_pending"
                            " ORDER BY 1, 2, 3").fetchall()


def total(dsn: str, grain: str = "m") -> int:
    with psycopg.connect(dsn) as conn:
        return conn.execute("SELECT coalesce(sum(total), 0) FROM alert_rollup WHERE grain = %s", (grain,)).fetchone()[0]


def test_only_the_buckets_of_new_logs_change_and_the_rollups_equal_a_live_aggregation(db_dsn):
    insert(db_dsn, [("acme", "A-1", 0, "SUCCESS", 2.0), ("globex", "G-1", 0, "FAILED", 3.0),
                    ("globex", "G-2", 90, "PARTIAL", 1.0)])
    assert refresh(db_dsn) > 0
    minute = NOW.replace(second=0)
    with psycopg.connect(db_dsn, autocommit=True) as conn:  # markers in acme's and globex's rows of the minute
        conn.execute("UPDATE alert_rollup SET partial = partial + 4242 WHERE grain = 'm' AND start = %s", (minute,))
    insert(db_dsn, [("acme", "A-2", 0, "PARTIAL", 9.0)])
    assert refresh(db_dsn) == 2  # acme's minute and hour
    with psycopg.connect(db_dsn) as conn:
        got = dict(conn.execute("SELECT client_id, partial FROM alert_rollup WHERE grain = 'm' AND start = %s",
                                (minute,)).fetchall())
    assert got == {"acme": 4243, "globex": 4242}  # added to, not recomputed (which would erase the marker)
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        conn.execute("UPDATE alert_rollup SET partial = partial - 4242 WHERE start = %s", (minute,))
    insert(db_dsn, [("globex", "G-3", 90, "SUCCESS", 4.0), ("initech", "I-1", 200, "FAILED", 0.4),
                    ("acme", "A-3", 61, "SUCCESS", 7.5)])
    refresh(db_dsn)
    assert len(rows(db_dsn)["alert_rollup"]) >= 8
    assert rows(db_dsn) == live_rows(db_dsn)
    assert pending(db_dsn) == []
    assert refresh(db_dsn) == 0  # nothing stored since: nothing read, nothing changed


def test_a_mixed_workload_over_days_equals_a_live_aggregation(db_dsn):
    """Logs of three tenants over many minutes and hours of the last 8 days (and older ones, which
    no bucket keeps), refreshed in rounds, with a re-assembly's replace in place (status, cost,
    execution time, another minute) and an erasure between them."""
    gen = ("INSERT INTO workflow_logs (client_id, ticket_id, status, executed_at, trace_id, log_data,"
           " hallucination_risk, cost_usd, execution_time_seconds)"
           " SELECT (ARRAY['acme','globex','initech'])[1 + g %% 3], %s || g,"
           " (ARRAY['SUCCESS','PARTIAL','FAILED','SUCCESS'])[1 + g %% 4], now() - make_interval(secs => %s * g),"
           " %s || g, '{}', CASE WHEN g %% 5 = 0 THEN NULL ELSE (g %% 7) / 7.0 END, (g %% 11) * 0.01,"
           " CASE WHEN g %% 6 = 0 THEN NULL ELSE (g %% 13) * 1.7 END FROM generate_series(1, %s) g")
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        conn.execute(gen, ("A-", 1799.0, "ta-", 480))  # every 30 min over 10 days
        old = conn.execute("SELECT count(*) FROM workflow_logs WHERE executed_at < now() - interval '8 days'"
                           ).fetchone()[0]
    assert old > 0 and len(pending(db_dsn)) == 480 - old  # a log beyond the hours' reach queues nothing
    refresh(db_dsn)
    assert rows(db_dsn) == live_rows(db_dsn)
    assert expired(db_dsn) == 0 and len(rows(db_dsn)["alert_rollup"]) > 400
    for round_, spread in enumerate((37.0, 613.0, 7001.0)):
        with psycopg.connect(db_dsn, autocommit=True) as conn:
            conn.execute(gen, (f"B{round_}-", spread, f"tb{round_}-", 90))
            # The trace re-assembly's replace: same id, new figures, maybe another minute.
            conn.execute("UPDATE workflow_logs SET status = 'FAILED', cost_usd = cost_usd + 1,"
                         " execution_time_seconds = 99, executed_at = executed_at - interval '7 minutes'"
                         " WHERE ticket_id IN (%s, %s, %s)", (f"B{round_}-3", f"B{round_}-4", f"A-{40 + round_}"))
            erased = conn.execute("DELETE FROM workflow_logs WHERE client_id = 'globex' AND ticket_id IN (%s, %s)"
                                  " RETURNING executed_at", (f"B{round_}-5", f"A-{62 + 3 * round_}")).fetchall()
        erase_recompute(db_dsn, "globex", [r[0] for r in erased])
        refresh(db_dsn)
        assert rows(db_dsn) == live_rows(db_dsn), f"round {round_}"
    assert pending(db_dsn) == [] and expired(db_dsn) == 0


def test_a_log_committing_after_the_refresh_aggregated_is_not_consumed_unseen(db_dsn, monkeypatch):
    """B began before the refresh and commits after it aggregated the queue, before it deletes what
    it consumed: the refresh's one snapshot neither counts B nor deletes its queue row, so the next
    refresh counts it, once. In READ COMMITTED the delete would see B's row and B would never count."""
    insert(db_dsn, [("acme", "A", 1)])
    refresh(db_dsn)
    apply = alert_rollups._apply_queue
    with psycopg.connect(db_dsn) as slow:
        insert_one(slow, "acme", "B", 1)

        async def apply_then_commit_b(conn, params):
            got = await apply(conn, params)
            slow.commit()
            return got
        monkeypatch.setattr(alert_rollups, "_apply_queue", apply_then_commit_b)
        refresh(db_dsn)
    monkeypatch.setattr(alert_rollups, "_apply_queue", apply)
    assert total(db_dsn) == 1
    assert [p[0] for p in pending(db_dsn)] == ["acme"]  # B's row waits
    assert refresh(db_dsn) == 2
    assert total(db_dsn) == 2 and total(db_dsn, "h") == 2
    assert refresh(db_dsn) == 0 and total(db_dsn) == 2
    assert rows(db_dsn) == live_rows(db_dsn)


def test_a_transaction_open_across_a_refresh_is_counted_by_the_next_without_lag(db_dsn):
    """No cursor and no late-commit slack any more: a log is in the rollups after the first refresh
    that follows its commit, however long its transaction was open before."""
    with psycopg.connect(db_dsn) as slow:
        insert_one(slow, "acme", "A", 0)
        refresh(db_dsn)
        assert total(db_dsn) == 0
        slow.commit()
    refresh(db_dsn)
    assert total(db_dsn) == 1
    refresh(db_dsn)
    assert total(db_dsn) == 1


def test_a_refresh_while_another_runs_skips_and_nothing_is_counted_twice(db_dsn, monkeypatch):
    """A second refresh (another replica's alert job) while one holds the lock returns at once,
    consuming nothing; every log is counted once."""
    insert(db_dsn, [("acme", "A-1", 1), ("acme", "A-2", 2), ("globex", "G-1", 3)])
    apply, inner = alert_rollups._apply_queue, []

    async def apply_with_a_second_refresh(conn, params):
        got = await apply(conn, params)
        async with create_pool(db_dsn, max_size=1) as other:
            try:  # without the lock it would wait on this refresh's uncommitted rows: forever, here
                inner.append(await asyncio.wait_for(alert_rollups.refresh_alert_rollups(other), 10))
            except TimeoutError:
                inner.append("waited on the first refresh's rows")
        return got
    monkeypatch.setattr(alert_rollups, "_apply_queue", apply_with_a_second_refresh)
    assert refresh(db_dsn) >= 5  # 3 minutes, at least 2 hours
    assert inner == [0]  # the lock is held: the second returns at once
    monkeypatch.setattr(alert_rollups, "_apply_queue", apply)
    assert refresh(db_dsn) == 0
    assert total(db_dsn) == 3
    assert rows(db_dsn) == live_rows(db_dsn)


def test_an_erasure_while_logs_are_queued_counts_nothing_twice(db_dsn):
    """The erasure queues its minutes (recompute_alert_minutes) rather than recomputing them now:
    a recompute now would count the tenant's queued logs, and the next refresh add them again."""
    insert(db_dsn, [("acme", "A-1", 1), ("acme", "A-2", 1)])
    refresh(db_dsn)
    insert(db_dsn, [("acme", "A-3", 1), ("acme", "A-4", 1)])  # queued
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        gone = conn.execute("DELETE FROM workflow_logs WHERE ticket_id = 'A-1' RETURNING executed_at").fetchone()[0]
    erase_recompute(db_dsn, "acme", [gone])
    refresh(db_dsn)
    assert total(db_dsn) == 3 and total(db_dsn, "h") == 3
    assert rows(db_dsn) == live_rows(db_dsn)
    erase_recompute(db_dsn, "acme", [NOW - timedelta(days=9)])  # beyond reach: nothing to redo
    assert pending(db_dsn) == []


def test_the_queue_is_filled_only_for_what_the_alert_rollups_read(db_dsn):
    """COPY queues its rows; a log beyond the hours' reach nothing; an update of a column the alert
    rollups do not read (the session backfill's, the overview's confidence) dirties no minute."""
    insert(db_dsn, [("acme", "A-1", 1), ("acme", "A-old", 8 * 1440 + 30)])
    with psycopg.connect(db_dsn) as conn:  # COPY refuses RLS: the owner lifts FORCE, as bench_viewer's loader
        conn.execute("ALTER TABLE workflow_logs NO FORCE ROW LEVEL SECURITY")
        with conn.cursor().copy("COPY workflow_logs (client_id, ticket_id, status, executed_at, trace_id, log_data)"
                                " FROM STDIN") as copy:
            copy.write_row(("globex", "G-1", "SUCCESS", NOW, "t-g1", "{}"))
        conn.execute("ALTER TABLE workflow_logs FORCE ROW LEVEL SECURITY")
        conn.execute("UPDATE workflow_logs SET session_done = NULL, overall_confidence = 0.5")
        conn.execute("UPDATE workflow_logs SET status = status")
    assert [(c, log) for c, _, log in pending(db_dsn)] == [("acme", True), ("globex", True)]
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        conn.execute("UPDATE workflow_logs SET cost_usd = 2 WHERE client_id = 'globex'")
    assert ("globex", NOW.replace(second=0), False) in pending(db_dsn)


def test_no_tenant_nor_the_provider_scope_reads_or_writes_the_queue(db_dsn):
    from collector_api.store.core.db import Scope, scoped_transaction

    insert(db_dsn, [("acme", "A-1", 1), ("globex", "G-1", 1)])

    async def as_(scope: Scope, query: str, params=()) -> list:
        async with create_pool(db_dsn, max_size=1) as pool, scoped_transaction(pool, scope) as conn:
            cur = await conn.execute(query, params)
            return await cur.fetchall() if cur.description else []
    for scope in (Scope.tenant("globex"), Scope.provider()):
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            run_async(as_(scope, "SELECT * FROM alert_rollup_pending"))
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            run_async(as_(scope, "INSERT INTO alert_rollup_pending (client_id, minute) VALUES ('acme', now())"))
    assert len(pending(db_dsn)) == 2


def test_an_older_collector_s_refresh_beside_is_not_counted_twice(db_dsn):
    """During an upgrade a collector of the previous version may refresh too: it recomputes whole
    the buckets of logs stored since its watermark, queued ones included, and moves the watermark
    back. The next refresh then recomputes the queued logs' buckets whole instead of adding them."""
    insert(db_dsn, [("acme", "A-1", 1)])
    refresh(db_dsn)
    insert(db_dsn, [("acme", "A-2", 1)])  # queued
    with psycopg.connect(db_dsn, autocommit=True) as conn:  # what the older refresh wrote
        conn.execute("DELETE FROM alert_rollup")
        conn.execute("DELETE FROM alert_rollup_duration")
        conn.execute("INSERT INTO alert_rollup SELECT g, client_id, date_trunc(u, executed_at, 'UTC'), count(*),"
                     " 0, 0, sum(hallucination_risk), count(hallucination_risk), sum(cost_usd) FROM workflow_logs,"
                     " (VALUES ('m', 'minute'), ('h', 'hour')) AS v(g, u) GROUP BY 1, 2, 3")
        conn.execute("INSERT INTO alert_rollup_duration SELECT g, client_id, date_trunc(u, executed_at, 'UTC'),"
                     " width_bucket(execution_time_seconds, %s::float8[]), count(*) FROM workflow_logs,"
                     " (VALUES ('m', 'minute'), ('h', 'hour')) AS v(g, u) GROUP BY 1, 2, 3, 4",
                     (alert_rollups.FINE_EDGES,))
        conn.execute("UPDATE alert_rollup_state SET watermark = now()")
    refresh(db_dsn)
    assert total(db_dsn) == 2
    assert rows(db_dsn) == live_rows(db_dsn)
    with psycopg.connect(db_dsn) as conn:
        assert conn.execute("SELECT watermark = %s::timestamptz FROM alert_rollup_state",
                            (alert_rollups.RETIRED_WATERMARK,)).fetchone()[0]


def test_a_refresh_under_steady_ingest_stays_exact(db_dsn):
    """Writers commit while refreshes run back to back: every log is counted once."""
    stop, errors = threading.Event(), []

    def write(client: str) -> None:
        try:
            with psycopg.connect(db_dsn, autocommit=True) as conn:
                i = 0
                while not stop.is_set():
                    with conn.transaction():
                        for _ in range(3):
                            insert_one(conn, client, f"{client}-{i}", i % 90)
                            i += 1
        except Exception as exc:  # noqa: BLE001 (reported below)
            errors.append(exc)
    writers = [threading.Thread(target=write, args=(c,)) for c in ("acme", "globex")]
    for w in writers:
        w.start()
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        refresh(db_dsn)
    stop.set()
    for w in writers:
        w.join(10)
    assert errors == []
    refresh(db_dsn)
    assert total(db_dsn) > 20
    assert rows(db_dsn) == live_rows(db_dsn)


def test_0030_queues_what_the_retired_cursor_had_not_reached_and_the_first_refresh_is_exact(empty_db):
    """An existing database at the switch: rollups built by the old refresh up to its watermark, and
    logs stored since (or within its 2-minute overlap) not rolled up yet. 0030 queues their (tenant,
    minute) whole, so the first additive refresh loses none of them and counts none twice."""
    from collector_api.store.core.migrate import apply_migrations, list_migrations

    dsn, _ = empty_db
    apply_migrations(dsn, [m for m in list_migrations() if m.version < 30])
    with psycopg.connect(dsn, autocommit=True) as conn:
        for client, ticket, minutes_ago, age in (("acme", "A-1", 3, "1 hour"), ("acme", "A-2", 3, "1 minute"),
                                                 ("globex", "G-1", 600, "10 minutes"), ("globex", "G-2", 601, "0"),
                                                 ("acme", "A-old", 9 * 1440, "0")):
            conn.execute("INSERT INTO workflow_logs (client_id, ticket_id, status, executed_at, created_at, trace_id,"
                         " log_data, cost_usd, execution_time_seconds) VALUES (%s, %s, 'SUCCESS', %s,"
                         " now() - %s::interval, %s, '{}', 0.5, 2.0)",
                         (client, ticket, NOW - timedelta(minutes=minutes_ago), age, ticket))
        # What the old refresh left: A-1 and G-1 rolled up (stored before its cursor), the others not.
        conn.execute("INSERT INTO alert_rollup SELECT g, client_id, date_trunc(u, executed_at, 'UTC'), count(*), 0, 0,"
                     " 0, 0, sum(cost_usd) FROM workflow_logs, (VALUES ('m', 'minute'), ('h', 'hour')) AS v(g, u)"
                     " WHERE ticket_id IN ('A-1', 'G-1') GROUP BY 1, 2, 3")
        conn.execute("UPDATE alert_rollup_state SET watermark = now() - interval '5 minutes'")
    assert apply_migrations(dsn) == ["0030_alert_rollup_pending.sql"]
    queued = pending(dsn)
    assert {(c, log) for c, _, log in queued} == {("acme", False), ("globex", False)}  # A-2 and G-2's minutes
    assert len(queued) == 2
    refresh(dsn)
    with psycopg.connect(dsn) as conn:
        assert dict(conn.execute("SELECT client_id, sum(total) FROM alert_rollup WHERE grain = 'h'"
                                 " GROUP BY 1").fetchall()) == {"acme": 2, "globex": 2}
