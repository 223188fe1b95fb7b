"""InProcess: a job's work in a long-lived child process, under the runner's lock and deadline.
The child is reused, a failure in it is a failed run, the deadline kills a stuck child (before
the lock is released) and the next run gets a new one, and the child dies with its parent."""
import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest

from collector_api.store.core import jobs as runner
from collector_api.store.core import locks
from collector_api.store.core.job_process import InProcess
from collector_api.store.core.jobs import Job, check_job
from tests.helpers import run_async
from tests.store.helpers import async_child_pid, backend_niceness, child_pid, fail, hang_if, niceness, proc_alive

ROOT = Path(__file__).resolve().parents[2]


def job_row(dsn: str, name: str):
    with psycopg.connect(dsn) as conn:
        return conn.execute("SELECT last_ok_at, last_error FROM job_runs WHERE name = %s", (name,)).fetchone()


async def run_job(dsn: str, job: Job):
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        return await check_job(conn, job)


def lock_free(dsn: str, lock_id: int) -> bool:
    with psycopg.connect(dsn, autocommit=True) as conn:
        got = conn.execute("SELECT pg_try_advisory_lock(%s)", (lock_id,)).fetchone()[0]
        if got:
            conn.execute("SELECT pg_advisory_unlock(%s)", (lock_id,))
        return got


def test_the_work_runs_in_one_child_process_reused_across_runs():
    work, coro = InProcess(child_pid), InProcess(async_child_pid)

    async def scenario():
        first, second = await work(), await work()
        (pid_a, loop_a), (pid_b, loop_b) = await coro(), await coro()
        return first, second, pid_a, pid_b, loop_a, loop_b

    try:
        first, second, pid_a, pid_b, loop_a, loop_b = run_async(scenario())
    finally:
        work.stop()
        coro.stop()
    assert first == second != os.getpid()  # another process, the same one both times
    assert pid_a == pid_b != os.getpid() and loop_a == loop_b  # an async function: the child's one loop
    assert not proc_alive(first) and not proc_alive(pid_a)  # stop() ended them


def test_the_child_runs_at_a_lower_cpu_priority_than_the_server():
    work = InProcess(niceness)
    try:
        assert run_async(work()) == min(19, os.nice(0) + 10)
    finally:
        work.stop()


def test_the_childs_database_backends_yield_too_and_the_servers_do_not(db_dsn):
    """The job's PostgreSQL backends (a local server) get the child's niceness; the server's own
    connections keep the database's: the job's reads and writes yield to ingest on busy cores."""
    work = InProcess(backend_niceness, db_dsn)
    try:
        child, backend = run_async(work())
    finally:
        work.stop()
    assert child == min(19, os.nice(0) + 10) and backend == child
    with psycopg.connect(db_dsn) as conn:  # read while the connection (its backend) lives
        server_backend = os.getpriority(os.PRIO_PROCESS, conn.execute("SELECT pg_backend_pid()").fetchone()[0])
    assert server_backend == os.nice(0)  # the postmaster's, as started


def test_a_lambda_is_refused_when_the_job_is_built():
    with pytest.raises(Exception, match="(?i)pickle|attribute"):
        InProcess(lambda: 1)


def test_an_exception_in_the_child_is_recorded_as_a_failed_run_and_the_next_run_works(db_dsn):
    failing = InProcess(fail, "the evaluator broke")
    job = Job("child-fails", 0.01, locks.JOB_PARTITION_UPKEEP, failing, deadline_s=30)
    try:
        assert run_async(run_job(db_dsn, job)).ran
        last_ok, error = job_row(db_dsn, "child-fails")
        assert last_ok is None and error == "ValueError: the evaluator broke"
        pid = failing.pid
        assert pid is not None and pid != os.getpid()  # the child survived its exception
        time.sleep(0.05)
        assert run_async(run_job(db_dsn, job)).ran
        assert failing.pid == pid  # and served the next run
    finally:
        failing.stop()


def test_the_deadline_kills_a_stuck_child_before_the_lock_goes_and_the_next_run_works(db_dsn, tmp_path):
    flag, marker = tmp_path / "hang", tmp_path / "went-on"
    flag.write_text("")
    work = InProcess(hang_if, str(flag), str(marker))
    job = Job("child-stuck", 0.01, locks.JOB_ROLLUP_REFRESH, work, deadline_s=1.5)
    try:
        started = time.monotonic()
        assert run_async(run_job(db_dsn, job)).ran
        took = time.monotonic() - started
        assert 1.4 <= took < 10, took
        assert "deadline exceeded" in job_row(db_dsn, "child-stuck")[1]
        assert work.pid is None and not work.busy  # killed and reaped by the time the run was recorded
        assert lock_free(db_dsn, locks.JOB_ROLLUP_REFRESH)
        flag.unlink()
        time.sleep(0.05)
        run_async(run_job(db_dsn, job))
        last_ok, error = job_row(db_dsn, "child-stuck")
        assert error is None and last_ok is not None  # a fresh child did the next run
        assert not marker.exists()  # the killed runs never went on
    finally:
        work.stop()


def test_a_lost_lock_kills_the_child_at_once_not_at_the_deadline(db_dsn, tmp_path, monkeypatch):
    """The lock's connection dies (the lock with it: another process may take the job): the run
    is cancelled and its child killed within a check, long before the deadline."""
    monkeypatch.setattr(runner, "LOCK_CHECK_S", 0.2)
    flag, marker = tmp_path / "hang", tmp_path / "went-on"
    flag.write_text("")
    work = InProcess(hang_if, str(flag), str(marker))
    job = Job("child-orphaned", 0.01, locks.JOB_STAGING_UPKEEP, work, deadline_s=300)

    async def scenario():
        conn = await psycopg.AsyncConnection.connect(db_dsn, autocommit=True)
        run = asyncio.ensure_future(check_job(conn, job))
        while work.pid is None:
            assert not run.done(), run
            await asyncio.sleep(0.02)
        child = work.pid
        with psycopg.connect(db_dsn, autocommit=True) as other:
            other.execute("SELECT pg_terminate_backend(%s)", (conn.info.backend_pid,))
        started = time.monotonic()
        with pytest.raises(psycopg.Error):  # recording on the dead connection fails: the loop reconnects
            await asyncio.wait_for(run, 120)
        return child, time.monotonic() - started

    try:
        child, took = run_async(scenario())
    finally:
        work.stop()
    assert took < 60, took  # not the 300 s deadline
    deadline = time.monotonic() + 5  # SIGKILLed when the run was cancelled; gone within moments
    while proc_alive(child) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not proc_alive(child) and work.pid is None
    assert not marker.exists()


PARENT = """
import asyncio, sys
sys.path.insert(0, sys.argv[1])
from collector_api.store.core.job_process import InProcess
from tests.store.helpers import hang_if

async def main():
    work = InProcess(hang_if, sys.argv[2], sys.argv[3])
    if sys.argv[4] == "idle":
        await work()
        print(work.pid, flush=True)
    else:
        task = asyncio.ensure_future(work())
        while work.pid is None:
            await asyncio.sleep(0.02)
        await asyncio.sleep(1.0)  # the child is inside its run
        print(work.pid, flush=True)
        await task
    await asyncio.sleep(3600)

asyncio.run(main())
"""


@pytest.mark.parametrize("state", ["idle", "busy"])
def test_the_child_exits_when_its_parent_is_killed(tmp_path, state):
    flag, marker = tmp_path / "hang", tmp_path / "went-on"
    if state == "busy":
        flag.write_text("")
    parent = subprocess.Popen([sys.executable, "-c", PARENT, str(ROOT), str(flag), str(marker), state],
                              stdout=subprocess.PIPE, text=True)
    try:
        line = parent.stdout.readline()
        assert line.strip().isdigit(), line
        child = int(line)
        assert proc_alive(child)
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=10)
        deadline = time.monotonic() + 5
        while proc_alive(child) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not proc_alive(child), f"the {state} child outlived its parent"
    finally:
        if parent.poll() is None:
            parent.kill()
    assert not marker.exists()
