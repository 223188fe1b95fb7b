"""The ingest counters' store side: additive upserts from many processes, nothing lost when a
flush fails, retention; and the per-process job kind that flushes them."""
import asyncio
from datetime import UTC, datetime, timedelta

import psycopg

from collector_api.store.core.db import create_pool
from collector_api.store.core.jobs import Job, maintenance_loop
from collector_api.store.ingest_health.counts import delete_counts_before
from collector_api.telemetry.counters import IngestCounters, flush_counters
from tests.helpers import run_async

T0 = datetime(2026, 12, 1, 10, 0, 30, tzinfo=UTC).timestamp()


class Clock:
    def __init__(self, t: float):
        self.t = t

    def __call__(self) -> float:
        return self.t


def rows(dsn: str) -> list[tuple]:
    with psycopg.connect(dsn) as conn:
        return conn.execute("SELECT client_id, minute, reason, count, last_at FROM ingest_counts"
                            " ORDER BY 1, 2, 3").fetchall()


def test_two_processes_add_into_the_same_rows(db_dsn):
    clock_a, clock_b = Clock(T0), Clock(T0 + 10)
    a, b = IngestCounters(clock_a), IngestCounters(clock_b)
    a.count("acme", "stored", 3)
    b.count("acme", "stored", 2)
    b.count("acme", "invalid")
    clock_a.t = T0 + 40  # the next minute
    a.count("acme", "stored")
    a.count("", "missing_key", 0)  # nothing: no row

    async def go():
        async with create_pool(db_dsn, max_size=2) as pool:
            await asyncio.gather(flush_counters(a, pool), flush_counters(b, pool))
            b.count("acme", "stored", 5)
            await flush_counters(b, pool)  # a later flush adds to the row already there
            assert a.pending() == b.pending() == 0
    run_async(go())
    minute = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
    assert rows(db_dsn) == [
        ("acme", minute, "invalid", 1, datetime.fromtimestamp(T0 + 10, UTC)),
        ("acme", minute, "stored", 10, datetime.fromtimestamp(T0 + 10, UTC)),
        ("acme", minute + timedelta(minutes=1), "stored", 1, datetime.fromtimestamp(T0 + 40, UTC)),
    ]


def test_a_failed_flush_keeps_the_counts_for_the_next(db_dsn, tmp_path):
    counters = IngestCounters(Clock(T0))
    counters.count("acme", "stored", 4)

    async def go():
        down = create_pool(f"postgresql://nobody@/nowhere?host={tmp_path}", max_size=1, timeout=0.5)
        await down.open(wait=False)
        try:
            await flush_counters(counters, down)
        except Exception:  # noqa: BLE001 - the database is away: StoreUnavailable
            pass
        else:
            raise AssertionError("flush to an unreachable database succeeded")
        finally:
            await down.close()
        assert counters.pending() == 1
        counters.count("acme", "stored", 1)
        async with create_pool(db_dsn, max_size=1) as pool:
            await flush_counters(counters, pool)
    run_async(go())
    assert [r[3] for r in rows(db_dsn)] == [5]


def test_key_last_used_only_moves_forward_and_retention_drops_old_minutes(db_dsn):
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        conn.execute("INSERT INTO tenants (client_id) VALUES ('acme')")
        conn.execute("INSERT INTO api_keys (key_id, client_id, key_hash, scope) VALUES ('k1', 'acme', 'x', 'ingest')")
    late, early = IngestCounters(Clock(T0 + 100)), IngestCounters(Clock(T0))
    late.key_used("k1")
    early.key_used("k1")
    early.count("acme", "stored")
    late.count("acme", "stored")

    async def go():
        async with create_pool(db_dsn, max_size=1) as pool:
            await flush_counters(late, pool)
            await flush_counters(early, pool)
    run_async(go())
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        used = conn.execute("SELECT last_used_at FROM api_keys WHERE key_id = 'k1'").fetchone()[0]
        assert used == datetime.fromtimestamp(T0 + 100, UTC)
        assert delete_counts_before(conn, datetime(2026, 12, 1, 10, 1, tzinfo=UTC)) == 1
        assert delete_counts_before(conn, datetime(2026, 12, 1, 10, 1, tzinfo=UTC)) == 0
    assert [(r[1].minute, r[3]) for r in rows(db_dsn)] == [(2, 1)]  # 10:02:10


def test_a_per_process_job_runs_in_every_loop_even_without_the_database(tmp_path):
    """Two loops (two processes) each run it every interval, and so does one whose database is gone."""
    runs: dict[int, int] = {0: 0, 1: 0}

    def job(n: int) -> Job:
        async def run():
            runs[n] += 1
        return Job("ingest-counters", 0.1, 0, run, per_process=True)

    async def scenario():
        dsn = f"postgresql://nobody@/nowhere?host={tmp_path}&connect_timeout=1"
        loops = [asyncio.create_task(maintenance_loop(dsn, [job(n)], tick_s=0.02)) for n in (0, 1)]
        await asyncio.sleep(0.75)
        for loop in loops:
            loop.cancel()
        await asyncio.gather(*loops, return_exceptions=True)

    run_async(scenario())
    assert all(4 <= n <= 9 for n in runs.values()), runs
