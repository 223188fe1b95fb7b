"""The collector as a FastAPI router plus its lifecycle pieces; flusso_obs.server composes the app."""
from __future__ import annotations

import logging
import time

from fastapi import FastAPI

from collector_api.http.admission import CollectorState
from collector_api.http.drain import Drain
from collector_api.logs.routes import legacy_router, otlp_router
from collector_api.http.health import router as health_router
from collector_api.traces.routes import install_traces, traces_router

logger = logging.getLogger(__name__)


_TIMED = {"/v1/logs": "otlp", "/api/v1/logs": "legacy", "/v1/traces": "traces"}


class IngestTiming:
    """Ingest request latency by endpoint and status, as pure ASGI: Starlette's BaseHTTPMiddleware
    (`@app.middleware`) re-streams every body chunk through an extra task and queue."""

    def __init__(self, app, state: CollectorState):
        self.app, self.state = app, state

    async def __call__(self, scope, receive, send):
        endpoint = _TIMED.get(scope.get("path", "")) if scope["type"] == "http" else None
        if endpoint is None or scope.get("method") != "POST":
            return await self.app(scope, receive, send)
        started, status = time.perf_counter(), [500]

        async def send_and_note(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            self.state.metrics.latency.labels(endpoint, str(status[0])).observe(time.perf_counter() - started)


def install_collector(app: FastAPI, state: CollectorState) -> None:
    """Mount the collector's routes and request timing on `app`; each router's route class
    renders its errors (collector_api.http.responses)."""
    app.state.collector = state
    app.state.drain = Drain()  # flusso_obs.drain begins it on SIGTERM
    app.add_middleware(IngestTiming, state=state)
    routers = (otlp_router, legacy_router, health_router, traces_router)
    for router in routers[:-1]:
        app.include_router(router)
    install_traces(app, state, state.settings)  # /v1/traces and what its assembly job shares
    # Every collector route answers machines: an unknown address under their first path segments
    # (/v1/..., /metrics/...) answers JSON, never the viewer's HTML 404 page (viewer.routing).
    roots = {route.path.split("/")[1] for router in routers for route in router.routes}
    app.state.machine_roots = frozenset(getattr(app.state, "machine_roots", frozenset()) | roots)
