"""SIGTERM drains the process instead of cutting it off.

uvicorn on SIGTERM closes its listener at once and waits for the requests in progress. We put a
drain phase before that: the app's `Drain` flag turns on (collector_api.http.drain: /readyz 503, new
ingest 503 + Retry-After), the listeners stay open for FLUSSO_DRAIN_GRACE_S so load balancers see
the 503s and senders are told to retry elsewhere or later, and once no request is in progress
(HTTP or gRPC; or the budget runs out) uvicorn's own shutdown runs: listener closed, remaining
connections finished within what is left of FLUSSO_DRAIN_TIMEOUT_S, then the lifespan's shutdown
(the gRPC server stops: no new calls, those in progress finish; final counter flush, pool
closed). SIGINT (Ctrl-C) drains the same way without the grace; a second
signal is handled by uvicorn as usual (a second Ctrl-C forces the exit).

uvicorn has no drain hook, so `install` wraps the signal handler uvicorn installed for the
serving process (its `Server.handle_exit`); it is called from the lifespan's startup, in the
main thread, the same way with one process or with `--workers N` (each worker drains itself).
Served any other way (a server in a thread, as the tests' live servers), it does nothing.
"""
from __future__ import annotations

import asyncio
import logging
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import uvicorn

from collector_api.http.drain import Drain

logger = logging.getLogger(__name__)

DRAIN_SIGNALS = (signal.SIGTERM, signal.SIGINT)


@dataclass(frozen=True)
class DrainPlan:
    timeout_s: float  # from the signal to the end of the lifespan's shutdown
    grace_s: float  # least time /readyz answers 503 before the listener closes (SIGTERM only)

    @property
    def reserve_s(self) -> float:
        """Kept out of the request budget for the lifespan's shutdown (final flush, pool close)."""
        return min(5.0, self.timeout_s / 4)


def install(drain: Drain, plan: DrainPlan) -> Callable[[], None]:
    """Route SIGTERM/SIGINT of the uvicorn server running this app through a drain; returns the
    function that restores uvicorn's handlers."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    handlers = {sig: signal.getsignal(sig) for sig in DRAIN_SIGNALS}
    server = getattr(handlers[signal.SIGTERM], "__self__", None)
    if not isinstance(server, uvicorn.Server):
        return lambda: None
    loop = asyncio.get_running_loop()
    running: set[asyncio.Task] = set()

    def start(sig: int) -> None:
        task = loop.create_task(_drain_then_exit(server, drain, plan, sig, handlers[sig]))
        running.add(task)
        task.add_done_callback(running.discard)

    def on_signal(sig: int, frame) -> None:
        if not drain.begin():
            handlers[sig](sig, frame)  # a second signal: uvicorn's own handling
            return
        loop.call_soon_threadsafe(start, sig)

    for sig in DRAIN_SIGNALS:
        signal.signal(sig, on_signal)

    def uninstall() -> None:
        for sig, handler in handlers.items():
            if signal.getsignal(sig) is on_signal:
                signal.signal(sig, handler)

    return uninstall


def _busy(server: uvicorn.Server, drain: Drain) -> int:
    """Requests in progress in this process: HTTP (uvicorn's own bookkeeping) and gRPC calls."""
    return len(server.server_state.tasks) + drain.rpcs_in_flight


async def _drain_then_exit(server: uvicorn.Server, drain: Drain, plan: DrainPlan, sig: int, handler) -> None:
    started = drain.since or time.monotonic()
    grace = plan.grace_s if sig == signal.SIGTERM else 0.0
    deadline = started + max(0.0, plan.timeout_s - plan.reserve_s)
    logger.info("draining (signal %d): /readyz and new ingest answer 503; %d request(s) in progress",
                sig, _busy(server, drain))
    while time.monotonic() < deadline and not server.should_exit:
        if time.monotonic() - started >= grace and not _busy(server, drain):
            break
        await asyncio.sleep(0.05)
    # What is left of the budget goes to uvicorn's wait for the connections still open.
    server.config.timeout_graceful_shutdown = max(0.5, deadline - time.monotonic())
    logger.info("drained after %.1f s; closing the listener", time.monotonic() - started)
    handler(sig, None)  # uvicorn's Server.handle_exit: should_exit, the signal re-raised after shutdown
