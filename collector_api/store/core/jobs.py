"""Background work as a list of jobs, each run by its own task of the maintenance loop.

Isolation: every job has a task of its own and a deadline of its own (`Job.deadline_s`), so a
job that hangs or runs long never delays another. A run still going at its deadline is
cancelled (a coroutine) or abandoned (blocking work in a thread, `InThread`: a thread cannot be
interrupted) and recorded as failed; the job is retried at its next interval, and not before an
abandoned thread of it has ended (its leader lock is held until then). Work that must not take
the server's GIL or event loop at all runs in a child process (`InProcess`,
store.core.job_process): at the deadline the child is killed and reaped before the lock goes.

Leader election: a job runs only under its advisory lock (ids in store.core.locks), taken with
pg_try_advisory_lock on the loop's bookkeeping connection, and only when `job_runs` says its
interval has passed since it last ran anywhere. So with N processes or replicas on one database
a job still runs once per interval; while a job runs, its lock's connection is checked every
LOCK_CHECK_S and the run is cancelled if it failed (the lock went with it). A failing job is
logged with its name, recorded in `job_runs.last_error`, and retried at its next interval; the
other jobs go on. Every check also reads the job's row, so each process knows each job's last
success (`job_runs.last_ok_at`, migration 0014) for its lag (collector_api.store.core.job_status).

A job with `per_process=True` is the other kind: it works on this process's own memory (the
ingest counters), so EVERY process runs it, every `interval_s` by its own clock, with no lock and
no `job_runs` row (its `lock_id` is unused); it runs even while the database is down (it uses
its own connection, e.g. the pool). A failure is logged and retried at the next interval.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import psycopg

from .job_status import JobBoard

logger = logging.getLogger(__name__)

MAX_TICK_S = 15.0
DEFAULT_DEADLINE_S = 300.0
CANCEL_GRACE_S = 5.0  # how long a cancelled coroutine may take to unwind before the runner goes on
BOOKKEEPING_TIMEOUT_S = 30.0  # connect, lock, read or write job_runs: beyond it the connection is dropped
RECONNECT_PAUSE_S = 1.0
LOCK_CHECK_S = 5.0  # how often a running leader job's lock connection is checked (lost: the run is cancelled)


@dataclass(frozen=True)
class Job:
    name: str
    interval_s: float
    lock_id: int  # a constant of store.core.locks (unused by a per-process job)
    run: Callable[[], Awaitable[object]]  # blocking work: InThread(fn, ...); off the server's GIL: InProcess(fn, ...)
    per_process: bool = False  # run in every process, unlocked (see the module's docstring)
    deadline_s: float = DEFAULT_DEADLINE_S  # a run still going after it is cancelled and recorded as failed


class InThread:
    """Blocking work of a job, run on a daemon thread of its own.

    The runner cannot interrupt a thread: at the deadline it records the run as failed and
    waits for the thread (`busy`, `wait`) before the job may start again; a daemon thread
    never holds up the process's exit."""

    def __init__(self, fn: Callable[..., object], *args: object):
        self.fn, self.args = fn, args
        self._current: concurrent.futures.Future | None = None

    @property
    def busy(self) -> bool:
        return self._current is not None and not self._current.done()

    async def wait(self) -> None:
        if self.busy:
            await asyncio.wait({asyncio.wrap_future(self._current)})

    async def __call__(self) -> object:
        done: concurrent.futures.Future = concurrent.futures.Future()
        done.set_running_or_notify_cancel()  # running: a cancelled awaiter cannot cancel the thread's result

        def work() -> None:
            try:
                done.set_result(self.fn(*self.args))
            except BaseException as exc:  # noqa: BLE001 - handed to the awaiting job task
                done.set_exception(exc)

        self._current = done
        threading.Thread(target=work, name=f"job-{getattr(self.fn, '__name__', 'work')}", daemon=True).start()
        return await asyncio.wrap_future(done)


async def watch_lock(conn: psycopg.AsyncConnection) -> str:
    """Return why once the connection holding a leader lock has failed (the session, and with it
    the lock, is gone: another process may start the job). Checked every LOCK_CHECK_S; cancelling
    the watch never cancels a statement in flight (the connection is shared: it runs to its end)."""
    while True:
        await asyncio.sleep(LOCK_CHECK_S)
        query = asyncio.ensure_future(conn.execute("SELECT 1"))
        query.add_done_callback(lambda q: q.cancelled() or q.exception())  # retrieved, even after a cancel
        try:
            await asyncio.shield(query)
        except Exception as exc:  # noqa: BLE001 - whatever failed, the lock can no longer be vouched for
            return f"leader lock lost (its connection failed: {str(exc)[:200]}), cancelled"


async def run_with_deadline(job: Job, lock_conn: psycopg.AsyncConnection | None = None) -> str | None:
    """Run `job` once within its deadline: None on success, else the error to record (logged here).

    With `lock_conn` (the connection holding the job's leader lock) the run is also cancelled as
    soon as that connection fails: the job must not go on once another process may have it."""
    task = asyncio.ensure_future(job.run())
    watch = asyncio.ensure_future(watch_lock(lock_conn)) if lock_conn is not None else None
    try:
        done, _ = await asyncio.wait({task} if watch is None else {task, watch}, timeout=job.deadline_s,
                                     return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:  # the loop itself is stopping: so does the job
        task.cancel()
        raise
    finally:
        if watch is not None:
            watch.cancel()
    lost = watch.result() if watch is not None and watch in done else None
    if task not in done:
        task.cancel()
        await asyncio.wait({task}, timeout=CANCEL_GRACE_S)
    if lost is not None and task not in done:
        logger.error("maintenance job %s: %s; retried in %g s", job.name, lost, job.interval_s)
        return lost
    if task not in done:
        logger.error("maintenance job %s still running after its deadline of %g s: cancelled, recorded as failed;"
                     " retried in %g s", job.name, job.deadline_s, job.interval_s)
        return f"deadline exceeded: still running after {job.deadline_s:g} s, cancelled"
    return _outcome(job, task)


def _outcome(job: Job, task: asyncio.Future) -> str | None:
    if task.cancelled():
        logger.error("maintenance job %s was cancelled; retried in %g s", job.name, job.interval_s)
        return "cancelled"
    exc = task.exception()
    if exc is None:
        return None
    logger.error("maintenance job %s failed; retried in %g s", job.name, job.interval_s, exc_info=exc)
    return f"{type(exc).__name__}: {exc}"[:1000]


class Check(NamedTuple):
    ran: bool
    next_in_s: float  # seconds until the job is due by its row (0: due now or unknown)


_ROW = ("SELECT extract(epoch FROM now())::float8 AS now, extract(epoch FROM r.last_run_at)::float8 AS last_run,"
        " extract(epoch FROM r.last_ok_at)::float8 AS last_ok, r.last_error"
        " FROM (SELECT 1) one LEFT JOIN job_runs r ON r.name = %s")
_RECORD = ("INSERT INTO job_runs (name, last_run_at, last_error, last_ok_at)"
           " VALUES (%s, to_timestamp(%s), %s, CASE WHEN %s::text IS NULL THEN now() END) ON CONFLICT (name)"
           " DO UPDATE SET last_run_at = excluded.last_run_at, last_error = excluded.last_error,"
           " last_ok_at = coalesce(excluded.last_ok_at, job_runs.last_ok_at)"
           " RETURNING extract(epoch FROM now())::float8 AS now, extract(epoch FROM last_ok_at)::float8 AS last_ok")


async def _read_row(conn: psycopg.AsyncConnection, job: Job, board: JobBoard | None) -> tuple[float, float]:
    """(database now, seconds until due) from the job's row; notes its last success on `board`."""
    now, last_run, last_ok, error = await (await conn.execute(_ROW, (job.name,))).fetchone()
    if board is not None:
        board.note_row(job.name, now, last_ok, error)
    return now, 0.0 if last_run is None else max(0.0, last_run + job.interval_s - now)


async def check_job(conn: psycopg.AsyncConnection, job: Job, board: JobBoard | None = None) -> Check:
    """Run `job` if it is due and this process wins its lock; what happened and when to look again."""
    if board is not None:
        board.register(job.name, job.interval_s, job.per_process)
    _, wait = await _read_row(conn, job, board)
    if wait > 0:
        return Check(False, wait)
    got = await (await conn.execute("SELECT pg_try_advisory_lock(%s)", (job.lock_id,))).fetchone()
    if not got[0]:
        return Check(False, 0.0)  # another process is running it right now
    try:
        started, wait = await _read_row(conn, job, None)  # under the lock: it may have just run elsewhere
        if wait > 0:
            return Check(False, wait)
        if board is not None:
            board.note_started(job.name)
        error = await run_with_deadline(job, conn)
        row = await (await conn.execute(_RECORD, (job.name, started, error, error))).fetchone()
        if board is not None:
            board.note_finished(job.name, error)
            board.note_row(job.name, row[0], row[1], error)
        if getattr(job.run, "busy", False):  # InThread, InProcess: work that may outlive the run's task
            logger.warning("maintenance job %s: waiting for its abandoned work before releasing its lock", job.name)
            await job.run.wait()
        return Check(True, job.interval_s)
    finally:
        await conn.execute("SELECT pg_advisory_unlock(%s)", (job.lock_id,))


async def run_if_due(conn: psycopg.AsyncConnection, job: Job, board: JobBoard | None = None) -> bool:
    """Run `job` if this process wins its lock and its interval has passed; whether it ran."""
    return (await check_job(conn, job, board)).ran


async def run_due_jobs(conn: psycopg.AsyncConnection, jobs: Sequence[Job]) -> list[str]:
    """One pass, one job after another, over the leader-elected `jobs`; the names of those that ran here."""
    return [job.name for job in jobs if not job.per_process and await run_if_due(conn, job)]


class Bookkeeping:
    """The loop's one connection for the leader locks and `job_runs` (session locks: released if
    the process dies), shared by the job tasks (psycopg serialises their short statements) and
    reopened after a failure, at most once per RECONNECT_PAUSE_S."""

    def __init__(self, dsn: str):
        self.dsn = dsn
        self.conn: psycopg.AsyncConnection | None = None
        self._lock = asyncio.Lock()
        self._failed_at = float("-inf")

    async def get(self) -> psycopg.AsyncConnection:
        async with self._lock:
            if self.conn is not None and not self.conn.closed:
                return self.conn
            if time.monotonic() - self._failed_at < RECONNECT_PAUSE_S:
                raise psycopg.OperationalError("database unavailable (reconnecting)")
            try:
                async with asyncio.timeout(BOOKKEEPING_TIMEOUT_S):  # wait_for may swallow a cancel (3.11)
                    self.conn = await psycopg.AsyncConnection.connect(self.dsn, autocommit=True)
                # Its statements are short; one stuck on a lock must not hold every job's bookkeeping.
                await self.conn.execute(f"SET statement_timeout = {int(BOOKKEEPING_TIMEOUT_S * 1000)}")
            except (psycopg.Error, OSError, TimeoutError) as exc:
                self._failed_at = time.monotonic()
                logger.warning("maintenance loop: database unavailable, retrying: %s", exc)
                raise psycopg.OperationalError(str(exc)) from exc
            return self.conn

    async def drop(self, conn: psycopg.AsyncConnection | None) -> None:
        async with self._lock:
            if conn is not None and conn is self.conn:
                self.conn = None
                await conn.close()

    async def close(self) -> None:
        await self.drop(self.conn)


def tick_seconds(job: Job, tick_s: float | None = None) -> float:
    """How often a job's task looks at most: a quarter of its interval, at most MAX_TICK_S."""
    return tick_s or max(0.05, min(MAX_TICK_S, job.interval_s / 4))


async def _leader_task(job: Job, books: Bookkeeping, board: JobBoard, tick_s: float | None) -> None:
    tick = tick_seconds(job, tick_s)
    while True:
        conn = None
        try:
            conn = await books.get()
            check = await check_job(conn, job, board)
            wait = min(max(check.next_in_s, 0.05), tick)
        except (psycopg.Error, OSError) as exc:  # the job waits for the database; the server keeps serving
            if conn is not None:
                logger.warning("maintenance job %s: database error, reconnecting: %s", job.name, exc)
                await books.drop(conn)
            wait = tick
        await asyncio.sleep(wait)


async def _local_task(job: Job, board: JobBoard) -> None:
    board.register(job.name, job.interval_s, job.per_process)
    while True:
        started = time.monotonic()
        board.note_started(job.name)
        board.note_finished(job.name, await run_with_deadline(job))
        await asyncio.sleep(max(0.0, job.interval_s - (time.monotonic() - started)))


async def maintenance_loop(dsn: str, jobs: Sequence[Job], *, tick_s: float | None = None,
                           board: JobBoard | None = None) -> None:
    """Run `jobs` as they fall due until cancelled, each in its own task, a first pass at once.

    `tick_s` caps the time between two looks at a leader job (default: a quarter of its
    interval, at most MAX_TICK_S). `board` receives every job's last success and error."""
    if not jobs:
        return
    board = board if board is not None else JobBoard()
    for job in jobs:
        board.register(job.name, job.interval_s, job.per_process)
    books = Bookkeeping(dsn)
    tasks = [asyncio.create_task(_local_task(job, board) if job.per_process
                                 else _leader_task(job, books, board, tick_s), name=f"job:{job.name}")
             for job in jobs]
    try:
        await asyncio.gather(*tasks)
    finally:
        await _stop_tasks(tasks)
        await books.close()
        for job in jobs:  # InProcess: its child process ends with the loop
            stop = getattr(job.run, "stop", None)
            if stop is not None:
                await asyncio.to_thread(stop)


async def _stop_tasks(tasks: list[asyncio.Task]) -> None:
    """Cancel until every task ended: a library call may swallow one cancellation (a result that
    arrived at the same moment), and a task left looping would hold up the shutdown."""
    pending = set(tasks)
    for _ in range(10):
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=1.0)
        if not pending:
            return
    logger.error("maintenance loop: jobs %s did not stop", sorted(t.get_name() for t in pending))
