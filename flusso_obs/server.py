"""One process serving the collector and the viewer: `create_app(settings, dsn)`."""
from __future__ import annotations

import asyncio
import logging
import secrets
from contextlib import asynccontextmanager, suppress

from fastapi import FastAPI
from pydantic import SecretStr

from collector_api.app import install_collector, start_collector_grpc
from collector_api.http.admission import CollectorState
from collector_api.store.core.db import create_pool
from collector_api.store.core.jobs import maintenance_loop
from collector_api.store.logs.partitions import maintain_partitions  # noqa: F401  (used by cli.migrate)
from collector_api.telemetry.counters import IngestCounters, flush_counters
from config.server import ServerSettings
from viewer.app import install_viewer

from .drain import DrainPlan
from .drain import install as install_drain
from .jobs import server_jobs

logger = logging.getLogger(__name__)


def create_app(settings: ServerSettings, dsn: str, *, grpc_port: int = 0, grpc_reuse_port: bool = False) -> FastAPI:
    """The collector + viewer app. Nothing connects until the app starts (lifespan).

    `dsn` connects as the schema's owner, never a superuser (docs/deployment.md). The lifespan
    runs the maintenance loop: the jobs of flusso_obs.jobs, each in its own task with its own
    deadline, leader-elected across processes (the ingest counters' flush runs in every
    process), the first pass at once; their lag is on /metrics, /ingest and /readyz detail; it
    turns SIGTERM into a drain (flusso_obs.drain) and flushes the counters last. `grpc_port` > 0:
    the OTLP/gRPC receiver listens there, in the same event loop (`serve` passes FLUSSO_GRPC_PORT;
    the default 0 keeps apps built by tests and embedders to HTTP).
    """
    if not settings.flusso_alert_secret_key:  # `serve` always sets it (data dir); one key for page and job
        logger.warning("FLUSSO_ALERT_SECRET_KEY is unset: alert rule secrets last only as long as this process")
        settings = settings.model_copy(update={"flusso_alert_secret_key": SecretStr(secrets.token_urlsafe(48))})
    pool = create_pool(dsn, max_size=settings.flusso_db_pool_size)

    state = CollectorState(settings=settings, pool=pool)
    counters = state.metrics.health
    plan = DrainPlan(timeout_s=settings.flusso_drain_timeout_s, grace_s=settings.flusso_drain_grace_s)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        # First, so a port that cannot be bound stops the start before anything else runs.
        grpc = await start_collector_grpc(app, port=grpc_port, reuse_port=grpc_reuse_port) if grpc_port else None
        app.state.grpc = grpc
        await pool.open(wait=False)
        task = asyncio.create_task(maintenance_loop(dsn, jobs, board=state.metrics.jobs))
        uninstall_drain = install_drain(app.state.drain, plan)
        try:
            yield
        finally:
            uninstall_drain()
            if grpc is not None:  # calls in progress finish and commit; new ones are refused
                app.state.drain.begin()
                await grpc.stop(plan.reserve_s)
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task
            await _final_flush(counters, pool, plan.reserve_s)
            await pool.close()
            state.metrics.process_exiting()

    app = FastAPI(title="flusso-obs", version="0.1.0", lifespan=lifespan, docs_url=None, redoc_url=None)
    install_collector(app, state)
    install_viewer(app, pool, settings, jobs=state.metrics.jobs)
    # An erasure by raw identifier also looks for the tokens review notes carry (their own key).
    app.state.erasure_review_token = app.state.viewer.scrubber.token
    jobs = server_jobs(settings, dsn, pool, counters, app.state.traces)
    app.state.jobs = jobs  # the maintenance loop's jobs (diagnostics, tests)
    return app


async def _final_flush(counters: IngestCounters, pool, budget_s: float) -> None:
    """At shutdown, after the last request: write the counters still in memory (bounded)."""
    if not counters.pending():
        return
    try:
        await asyncio.wait_for(flush_counters(counters, pool), timeout=max(0.5, budget_s))
    except Exception as exc:  # noqa: BLE001 - shutting down: log what is lost, never hang
        logger.warning("ingest counters not flushed at shutdown (%d rows lost): %s", counters.pending(), exc)

