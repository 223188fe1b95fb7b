"""The job registry: leader election across processes, once per interval, failures contained."""
import asyncio
import logging
import re
import time
from pathlib import Path

import psycopg

from collector_api.store.core import locks
from collector_api.store.core.jobs import Job, maintenance_loop, run_due_jobs
from tests.helpers import run_async

ROOT = Path(__file__).resolve().parents[2]


def test_every_advisory_lock_id_is_unique_and_lives_in_store_locks():
    assert len(set(locks.ALL.values())) == len(locks.ALL)
    for package in ("collector_api", "flusso_obs", "viewer", "otel_bridge"):
        for path in (ROOT / package).rglob("*.py"):
            if path.name == "locks.py":
                continue
            text = path.read_text(encoding="utf-8")
            assert not re.search(r"advisory\w*\(\s*\d", text), f"{path}: lock id literal outside store.locks"
            assert not re.search(r"^_?\w*LOCK\w* = 0x", text, re.M), f"{path}: lock id outside store.locks"


def counting_job(name: str, interval_s: float, runs: list, *, fail: bool = False, hold: asyncio.Event | None = None):
    async def run():
        runs.append(time.monotonic())
        if hold is not None:
            await hold.wait()
        if fail:
            raise RuntimeError("boom")
    return Job(name, interval_s, locks.JOB_ROLLUP_REFRESH if name == "b" else locks.JOB_PARTITION_UPKEEP, run)


def test_a_job_runs_once_per_interval_across_two_processes(db_dsn):
    """Two connections stand for two processes (advisory locks are per session)."""
    runs: list = []
    job = counting_job("a", 60, runs)

    async def scenario():
        async with await psycopg.AsyncConnection.connect(db_dsn, autocommit=True) as one, \
                await psycopg.AsyncConnection.connect(db_dsn, autocommit=True) as two:
            assert await run_due_jobs(one, [job]) == ["a"]
            assert await run_due_jobs(two, [job]) == []  # ran 0 s ago, interval 60 s
            assert await run_due_jobs(one, [job]) == []
            await one.execute("UPDATE job_runs SET last_run_at = now() - interval '61 seconds' WHERE name = 'a'")
            assert await run_due_jobs(two, [job]) == ["a"]

    run_async(scenario())
    assert len(runs) == 2


def test_a_running_job_is_not_started_by_another_process(db_dsn):
    runs: list = []
    hold = asyncio.Event()

    async def scenario():
        job = counting_job("a", 60, runs, hold=hold)
        async with await psycopg.AsyncConnection.connect(db_dsn, autocommit=True) as one, \
                await psycopg.AsyncConnection.connect(db_dsn, autocommit=True) as two:
            leader = asyncio.create_task(run_due_jobs(one, [job]))
            while not runs:
                await asyncio.sleep(0.01)
            assert await run_due_jobs(two, [job]) == []  # lock held by the leader
            hold.set()
            assert await leader == ["a"]

    run_async(scenario())
    assert len(runs) == 1


def test_two_loops_run_a_job_at_most_once_per_interval(db_dsn):
    runs: list = []
    job = counting_job("a", 0.4, runs)

    async def scenario():
        loops = [asyncio.create_task(maintenance_loop(db_dsn, [job], tick_s=0.02)) for _ in range(2)]
        await asyncio.sleep(1.5)
        for loop in loops:
            loop.cancel()
        await asyncio.gather(*loops, return_exceptions=True)

    run_async(scenario())
    gaps = [b - a for a, b in zip(runs, runs[1:], strict=False)]
    assert len(runs) >= 2, runs
    assert all(gap >= 0.38 for gap in gaps), gaps  # never twice in one interval (DB clock vs monotonic)


def test_a_failing_job_is_logged_recorded_and_does_not_stop_the_others(db_dsn, caplog):
    failing, fine = [], []
    jobs = [counting_job("a", 60, failing, fail=True), counting_job("b", 60, fine)]

    async def scenario():
        async with await psycopg.AsyncConnection.connect(db_dsn, autocommit=True) as conn:
            return await run_due_jobs(conn, jobs)

    with caplog.at_level(logging.ERROR, logger="collector_api.store.core.jobs"):
        assert run_async(scenario()) == ["a", "b"]
    assert len(failing) == 1 and len(fine) == 1
    assert "maintenance job a failed" in caplog.text
    with psycopg.connect(db_dsn) as conn:
        errors = dict(conn.execute("SELECT name, last_error FROM job_runs"))
    assert errors == {"a": "RuntimeError: boom", "b": None}  # a is retried at its next interval
