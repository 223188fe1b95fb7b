"""Jobs in isolation: each job its own task and deadline. A job that hangs never delays another;
an overrun is cancelled (a thread: abandoned, its lock held until it ends) and recorded as
failed; every process learns each job's last success (its lag) from job_runs."""
import asyncio
import threading
import time

import psycopg

from collector_api.store.core import locks
from collector_api.store.core.job_status import JobBoard
from collector_api.store.core.jobs import InThread, Job, check_job, maintenance_loop
from collector_api.telemetry.metrics import CollectorMetrics
from tests.helpers import run_async


def job_row(dsn: str, name: str):
    with psycopg.connect(dsn) as conn:
        return conn.execute("SELECT last_run_at, last_ok_at, last_error FROM job_runs WHERE name = %s",
                            (name,)).fetchone()


async def until(predicate, timeout_s: float, step_s: float = 0.02):
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(step_s)


def test_a_hanging_job_never_delays_another_and_is_recorded_failed_at_its_deadline(db_dsn):
    hang_started, hang_cancelled = [], []
    fast_runs: list[float] = []

    async def hang():
        hang_started.append(time.monotonic())
        try:
            await asyncio.Event().wait()  # never set
        except asyncio.CancelledError:
            hang_cancelled.append(time.monotonic())
            raise

    async def fast():
        fast_runs.append(time.monotonic())

    jobs = [Job("stuck", 60, locks.JOB_PARTITION_UPKEEP, hang, deadline_s=1.5),
            Job("fast", 0.2, locks.JOB_ROLLUP_REFRESH, fast)]
    board = JobBoard()

    async def scenario():
        loop = asyncio.create_task(maintenance_loop(db_dsn, jobs, board=board))
        try:  # cancelled, then recorded (the loop is stopped only after its record, not in the middle)
            await until(lambda: hang_cancelled and {j.name: j for j in board.snapshot()}["stuck"].last_error, 10)
        finally:
            loop.cancel()
            await asyncio.gather(loop, return_exceptions=True)

    run_async(scenario())
    start, end = hang_started[0], hang_cancelled[0]
    assert 1.4 <= end - start <= 3.0, end - start  # cancelled at its deadline
    during = [t for t in fast_runs if start < t < end]
    assert len(during) >= 4, (len(during), fast_runs)  # the other job kept its 0.2 s interval meanwhile
    gaps = [b - a for a, b in zip(during, during[1:], strict=False)]
    assert max(gaps) < 0.8, gaps
    last_run, last_ok, error = job_row(db_dsn, "stuck")
    assert error == "deadline exceeded: still running after 1.5 s, cancelled" and last_ok is None
    assert job_row(db_dsn, "fast")[2] is None and job_row(db_dsn, "fast")[1] is not None
    stuck = {j.name: j for j in board.snapshot()}["stuck"]
    assert stuck.last_error.startswith("deadline exceeded") and stuck.last_ok_at is None


def test_an_abandoned_thread_keeps_its_lock_until_it_ends_and_never_runs_twice(db_dsn):
    release = threading.Event()
    running, overlaps, runs = [0], [], []

    def blocking():
        running[0] += 1
        overlaps.append(running[0])
        runs.append(time.monotonic())
        release.wait(20)
        running[0] -= 1

    job = Job("thread-job", 0.2, locks.JOB_STAGING_UPKEEP, InThread(blocking), deadline_s=0.5)

    def lock_free() -> bool:
        with psycopg.connect(db_dsn, autocommit=True) as other:  # another process
            got = other.execute("SELECT pg_try_advisory_lock(%s)", (job.lock_id,)).fetchone()[0]
            if got:
                other.execute("SELECT pg_advisory_unlock(%s)", (job.lock_id,))
            return got

    async def scenario():
        loop = asyncio.create_task(maintenance_loop(db_dsn, [job]))
        try:
            await until(lambda: (job_row(db_dsn, "thread-job") or (0, 0, None))[2] is not None, 10)
            assert not lock_free()  # recorded failed, but the thread still runs: the lock is kept
            await asyncio.sleep(0.6)  # 3 intervals while abandoned: the job must not start again
            assert len(runs) == 1
            release.set()
            await until(lambda: len(runs) >= 2, 10)  # once the thread ended, the job runs again
        finally:
            release.set()
            loop.cancel()
            await asyncio.gather(loop, return_exceptions=True)

    run_async(scenario())
    assert overlaps and max(overlaps) == 1


def test_every_process_learns_a_jobs_last_success_from_job_runs(db_dsn):
    """The leader runs it; a second process (connection) that does not run it still knows its lag."""
    async def ok():
        return None

    job = Job("shared", 3600, locks.JOB_DERIVED_BACKFILL, ok)
    leader, follower = JobBoard(), JobBoard()

    async def scenario():
        async with await psycopg.AsyncConnection.connect(db_dsn, autocommit=True) as one, \
                await psycopg.AsyncConnection.connect(db_dsn, autocommit=True) as two:
            assert (await check_job(one, job, leader)).ran
            follower_check = await check_job(two, job, follower)
            assert not follower_check.ran and follower_check.next_in_s > 3500
            await one.execute("UPDATE job_runs SET last_ok_at = now() - interval '4 hours' WHERE name = 'shared'")
            await check_job(two, job, follower)

    run_async(scenario())
    assert leader.snapshot()[0].lag_s < 5 and not leader.snapshot()[0].late
    late = follower.snapshot()[0]
    assert 4 * 3600 - 10 < late.lag_s < 4 * 3600 + 10 and late.late  # > 3 intervals of 1 h


def test_the_lag_gauge_grows_while_a_job_is_stuck():
    now = [1000.0]
    board = JobBoard(clock=lambda: now[0])
    metrics = CollectorMetrics.create(board)
    board.register("rollup-refresh", 30, False)
    board.note_started("rollup-refresh")
    board.note_finished("rollup-refresh", None)
    now[0] += 100  # stuck for 100 s: more than 3 intervals of 30 s
    text = metrics.exposition().decode()
    assert 'flusso_job_lag_seconds{job="rollup-refresh"} 100.0' in text
    assert 'flusso_job_late{job="rollup-refresh"} 1.0' in text
