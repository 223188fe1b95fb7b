"""Background work as a list of jobs, run by one maintenance loop per server process.

Each job is leader-elected: it runs only under its advisory lock (ids in store.core.locks), taken
with pg_try_advisory_lock, and only when `job_runs` says its interval has passed since it last
ran anywhere. So with N processes or replicas on one database a job still runs once per
interval. A failing job is logged with its name, recorded in `job_runs.last_error`, and retried
at its next interval; the other jobs go on.

A job with `per_process=True` is the other kind: it works on this process's own memory (the
ingest counters), so EVERY process runs it, every `interval_s` by its own clock, with no lock and
no `job_runs` row (its `lock_id` is unused); it runs even while the loop's connection is down
(it uses its own, e.g. the pool). A failure is logged and retried at the next interval.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import psycopg

logger = logging.getLogger(__name__)

MAX_TICK_S = 15.0


@dataclass(frozen=True)
class Job:
    name: str
    interval_s: float
    lock_id: int  # a constant of store.core.locks (unused by a per-process job)
    run: Callable[[], Awaitable[object]]  # blocking work goes through asyncio.to_thread
    per_process: bool = False  # run in every process, unlocked (see the module's docstring)


async def run_if_due(conn: psycopg.AsyncConnection, job: Job) -> bool:
    """Run `job` if this process wins its lock and its interval has passed; whether it ran."""
    got = await (await conn.execute("SELECT pg_try_advisory_lock(%s)", (job.lock_id,))).fetchone()
    if not got[0]:
        return False  # another process is running it right now
    try:
        due = await (await conn.execute(
            "SELECT now() AS started, NOT EXISTS (SELECT 1 FROM job_runs WHERE name = %s"
            " AND last_run_at > now() - make_interval(secs => %s)) AS due", (job.name, job.interval_s))).fetchone()
        if not due[1]:
            return False
        error = None
        try:
            await job.run()
        except Exception as exc:  # noqa: BLE001 - one job's failure must not stop the others
            logger.exception("maintenance job %s failed; retried in %s s", job.name, job.interval_s)
            error = f"{type(exc).__name__}: {exc}"[:1000]
        await conn.execute(
            "INSERT INTO job_runs (name, last_run_at, last_error) VALUES (%s, %s, %s) ON CONFLICT (name)"
            " DO UPDATE SET last_run_at = excluded.last_run_at, last_error = excluded.last_error",
            (job.name, due[0], error))
        return True
    finally:
        await conn.execute("SELECT pg_advisory_unlock(%s)", (job.lock_id,))


async def run_due_jobs(conn: psycopg.AsyncConnection, jobs: Sequence[Job]) -> list[str]:
    """One pass over the leader-elected `jobs`; returns the names of those that ran here."""
    return [job.name for job in jobs if not job.per_process and await run_if_due(conn, job)]


async def run_local_jobs(jobs: Sequence[Job], last_runs: dict[str, float]) -> list[str]:
    """One pass over the per-process `jobs`, each due `interval_s` after its last run here."""
    ran = []
    for job in jobs:
        if not job.per_process or time.monotonic() - last_runs.get(job.name, float("-inf")) < job.interval_s:
            continue
        last_runs[job.name] = time.monotonic()
        ran.append(job.name)
        try:
            await job.run()
        except Exception:  # noqa: BLE001 - as for leader jobs: logged, retried next interval
            logger.exception("per-process job %s failed; retried in %s s", job.name, job.interval_s)
    return ran


def tick_seconds(jobs: Sequence[Job]) -> float:
    """How often the loop looks: a quarter of the shortest interval, at most MAX_TICK_S."""
    return max(0.05, min(MAX_TICK_S, min(job.interval_s for job in jobs) / 4))


async def maintenance_loop(dsn: str, jobs: Sequence[Job], *, tick_s: float | None = None) -> None:
    """Run `jobs` as they fall due until cancelled; a first pass at once.

    The loop holds one connection of its own (the leader locks are session locks, released if
    the process dies); when the database is unreachable it reconnects at the next tick.
    """
    if not jobs:
        return
    tick = tick_s or tick_seconds(jobs)
    conn: psycopg.AsyncConnection | None = None
    last_runs: dict[str, float] = {}
    try:
        while True:
            await run_local_jobs(jobs, last_runs)
            try:
                if conn is None or conn.closed:
                    conn = await psycopg.AsyncConnection.connect(dsn, autocommit=True)
                await run_due_jobs(conn, jobs)
            except psycopg.Error as exc:  # the jobs wait for the database; the server keeps serving
                logger.warning("maintenance loop: database unavailable, retrying: %s", exc)
                if conn is not None:
                    await conn.close()
                conn = None
            await asyncio.sleep(tick)
    finally:
        if conn is not None:
            await conn.close()
