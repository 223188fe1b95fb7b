"""`InProcess`: the work of a job in a long-lived child process, off the server's GIL and event loop.

`InProcess(fn, *args)` runs `fn(*args)` (a picklable top-level function, plain or `async`) in a
child process of the multiprocessing *spawn* context, started at the first run and reused by the
next ones (its imports, its connection pool, its HTTP client set-up are paid once). An `async`
function runs on the child's one persistent event loop, so what it keeps between runs (e.g. a
pool opened on that loop) stays usable. The parent never blocks its loop on the child: the
result is awaited through a thread of its own.

What holds:
- Cancellation (the job's deadline, or the maintenance loop stopping) kills the child (SIGKILL)
  and reaps it before the run returns, so no work goes on after the runner recorded the run as
  failed and released the job's leader lock; the next run starts a fresh child.
- An exception raised in the child is raised again in the parent (the same type when it can be
  pickled, else a RuntimeError naming it, with the child's traceback as a note): the runner
  records the run as failed. A child that dies mid-run (killed, out of memory) is a failed run
  too, and is replaced at the next one.
- The child runs at a lower CPU priority (`nice`, default CHILD_NICE): when the cores are busy
  the server's requests are scheduled first; on idle cores the job runs at full speed. Its
  connections' PostgreSQL backends, when the server runs on this machine, get the same
  niceness (`nice_backend`, a pool `configure` hook): the database's side of the job's reads
  and writes then also yields to the server's requests' (ingest's) on busy cores.
- The child dies with the parent: it is a daemon process (terminated at the parent's exit), it
  exits when the pipe to the parent closes, and a watchdog thread exits it within
  PARENT_POLL_S when the parent is gone (kill -9: the parent's advisory locks are released by
  PostgreSQL at the same moment, so another replica may take the job; the child must not go on).
"""
from __future__ import annotations

import asyncio
import inspect
import logging
import multiprocessing
import os
import pickle
import signal
import threading
import time
import traceback
from collections.abc import Callable
from multiprocessing.connection import Connection
from multiprocessing.reduction import ForkingPickler

logger = logging.getLogger(__name__)

PARENT_POLL_S = 0.5  # how often the child checks that its parent is still alive
REAP_TIMEOUT_S = 5.0  # a killed child is waited for this long at most
CHILD_NICE = 10  # the child's scheduling niceness: below the server's requests when the cores are busy
STOP_GRACE_S = 2.0  # an idle child whose pipe was closed exits within this (else it is killed)


async def nice_backend(conn) -> None:
    """Give `conn`'s PostgreSQL backend this process's niceness when that is higher (a pool
    `configure` hook for a job child's connections). Only for a server on this machine (a Unix
    socket or loopback address) whose backend pid is a `postgres` process here (a server in
    another pid namespace, e.g. a container, is left alone); lowering a process's priority needs
    no privilege when it runs as the same user, and root may always. Anything else: left as is."""
    host = conn.info.host or ""
    mine = os.getpriority(os.PRIO_PROCESS, 0)
    if not mine or not (host.startswith("/") or host in ("localhost", "127.0.0.1", "::1")):
        return
    row = await (await conn.execute("SELECT pg_backend_pid() AS pid")).fetchone()
    pid = row["pid"] if isinstance(row, dict) else row[0]
    try:
        with open(f"/proc/{pid}/comm") as f:
            if f.read().strip() != "postgres":
                return
        if os.getpriority(os.PRIO_PROCESS, pid) < mine:
            os.setpriority(os.PRIO_PROCESS, pid, mine)
    except OSError as exc:  # not Linux, gone, another user's process without the right
        logger.debug("backend %s keeps its priority: %s", pid, exc)


class ChildDied(RuntimeError):
    """The child process ended during a run (killed, out of memory, crashed)."""


def _watch_parent(parent_pid: int) -> None:
    while True:
        if os.getppid() != parent_pid:  # re-parented: the parent is gone
            os._exit(3)
        time.sleep(PARENT_POLL_S)


def _raise(exc: BaseException) -> None:
    raise exc


def _portable(exc: BaseException) -> BaseException:
    """`exc` itself when it survives pickling, else a RuntimeError naming it; with the child's traceback."""
    trace = "".join(traceback.format_exception(exc))
    try:
        pickle.loads(pickle.dumps(exc))
    except Exception:  # noqa: BLE001 - any pickling failure: send a plain description
        exc = RuntimeError(f"{type(exc).__name__}: {exc}")
    exc.add_note(f"in the job's child process:\n{trace}")
    return exc


def _answer(request: object, loop: asyncio.AbstractEventLoop) -> bytes:
    """Run one request (fn, args) from the parent; the pickled ("ok", result) or ("error", exception)."""
    try:
        fn, args = request  # type: ignore[misc]
        result = fn(*args)
        if inspect.isawaitable(result):
            result = loop.run_until_complete(result)
        answer: tuple[str, object] = ("ok", result)
    except BaseException as exc:  # noqa: BLE001 - every failure is the parent's to record
        answer = ("error", _portable(exc))
    try:
        return bytes(ForkingPickler.dumps(answer))
    except Exception as exc:  # noqa: BLE001 - a result that cannot cross the pipe is a failed run
        return bytes(ForkingPickler.dumps(("error", RuntimeError(f"the job's result cannot be sent: {exc}"))))


def _child_main(conn: Connection, parent_pid: int, log_level: int, nice: int) -> None:
    """The child's loop: one request (fn, args) at a time, one answer each; ends when the parent does."""
    if nice:
        os.nice(nice)  # background work: on busy cores the server's requests go first
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole process group: the parent decides
    logging.basicConfig(level=log_level, format="%(asctime)s %(levelname)s %(name)s [job child]: %(message)s")
    threading.Thread(target=_watch_parent, args=(parent_pid,), name="parent-watch", daemon=True).start()
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    while True:
        try:
            request = conn.recv_bytes()
        except (EOFError, OSError):  # the parent closed its end or died
            os._exit(0)
        try:
            request = ForkingPickler.loads(request)
        except Exception as exc:  # noqa: BLE001 - e.g. the function's module does not import here
            request = (_raise, (exc,))
        try:
            conn.send_bytes(_answer(request, loop))
        except OSError:
            os._exit(0)


class InProcess:
    """Work of a job in a long-lived child process (see the module's docstring).

    Like `InThread` it has `busy` and `wait`: the runner keeps the job's leader lock while a
    run's child may still be working (only between a kill and its reaping here)."""

    def __init__(self, fn: Callable[..., object], *args: object, nice: int = CHILD_NICE):
        self.fn, self.args, self.nice = fn, args, nice
        self.name = getattr(fn, "__name__", "work")
        self._proc: multiprocessing.process.BaseProcess | None = None
        self._conn: Connection | None = None
        self._running = False
        self._swap = threading.Lock()
        pickle.dumps((fn, args))  # fails here, at the server's start, for a lambda or a local function

    @property
    def pid(self) -> int | None:
        """The child's pid while it is alive (tests, diagnostics)."""
        return self._proc.pid if self._proc is not None and self._proc.is_alive() else None

    @property
    def busy(self) -> bool:
        return self._running

    async def wait(self) -> None:
        while self._running:
            await asyncio.sleep(0.05)

    def _start(self) -> None:
        ctx = multiprocessing.get_context("spawn")
        parent_end, child_end = ctx.Pipe(duplex=True)
        level = logging.getLogger().getEffectiveLevel()
        proc = ctx.Process(target=_child_main, args=(child_end, os.getpid(), level, self.nice),
                           name=f"flusso-job-{self.name}", daemon=True)
        proc.start()
        child_end.close()  # only the child holds it now: its death is an EOF here
        self._proc, self._conn = proc, parent_end
        logger.info("job %s: child process %d started", self.name, proc.pid)

    def _exchange(self) -> tuple[str, object]:
        """Send the request and wait for the answer (on a worker thread: it blocks)."""
        assert self._conn is not None
        try:
            self._conn.send((self.fn, self.args))
            return self._conn.recv()
        except (EOFError, OSError):
            code = self._proc.exitcode if self._proc is not None else None
            raise ChildDied(f"the job's child process ended during the run (exit code {code})") from None

    def stop(self) -> None:
        """End the child (blocking, at most about REAP_TIMEOUT_S): its pipe is closed (an idle child
        exits at once), then it is killed if still alive; the next run starts a new one."""
        with self._swap:  # the reaper thread of a cancelled run and the loop's shutdown may both stop it
            proc, conn = self._proc, self._conn
            self._proc = self._conn = None
        if conn is not None:
            conn.close()
        if proc is not None:
            proc.join(STOP_GRACE_S)
            if proc.is_alive():
                proc.kill()
            proc.join(REAP_TIMEOUT_S)

    async def __call__(self) -> object:
        await self.wait()  # a killed child of the run before is being reaped (milliseconds)
        self._running = True
        try:
            if self._proc is None or not self._proc.is_alive():
                self.stop()
                await asyncio.to_thread(self._start)
            kind, value = await asyncio.to_thread(self._exchange)
        except ChildDied:
            await asyncio.to_thread(self.stop)
            self._running = False
            raise
        except BaseException:  # cancelled (deadline, shutdown): the child must not go on working
            await self._kill_after_cancel()
            raise
        self._running = False
        if kind == "error":
            raise value  # type: ignore[misc]
        return value

    async def _kill_after_cancel(self) -> None:
        proc = self._proc
        if proc is not None and proc.is_alive():
            proc.kill()  # at once, before any await: nothing of the run goes on
            logger.warning("job %s: run cancelled (deadline or shutdown), child process %d killed", self.name, proc.pid)
        done = threading.Thread(target=self._stop_then_idle, name=f"reap-{self.name}", daemon=True)
        done.start()  # reaping must finish even when this task is cancelled again meanwhile

    def _stop_then_idle(self) -> None:
        try:
            self.stop()
        finally:
            self._running = False
