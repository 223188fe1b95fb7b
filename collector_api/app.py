"""The collector as a FastAPI router plus its lifecycle pieces; flusso_obs.server composes the app."""
from __future__ import annotations

import logging
import time

from fastapi import FastAPI

from collector_api.erasure.routes import router as erasure_router
from collector_api.http.admission import CollectorState
from collector_api.http.body_guard import BodyGuard
from collector_api.http.drain import Drain
from collector_api.http.edge import all_routes, receiver_of
from collector_api.http.grpc_edge import GrpcEdge, GrpcOptions, start_grpc_edge
from collector_api.http.health import router as health_router
from collector_api.logs.routes import logs_routers
from collector_api.traces.routes import install_traces

logger = logging.getLogger(__name__)


class IngestTiming:
    """Ingest request latency by endpoint and status, as pure ASGI: Starlette's BaseHTTPMiddleware
    (`@app.middleware`) re-streams every body chunk through an extra task and queue."""

    def __init__(self, app, state: CollectorState, timed: dict[str, str]):
        self.app, self.state, self.timed = app, state, timed  # path -> the receiver's endpoint label

    async def __call__(self, scope, receive, send):
        endpoint = self.timed.get(scope.get("path", "")) if scope["type"] == "http" else None
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
    for router in (*logs_routers(), health_router, erasure_router):
        app.include_router(router)
    install_traces(app, state, state.settings)  # /v1/traces and what its assembly job shares
    receivers = [r for r in map(receiver_of, all_routes(app.routes)) if r is not None]
    app.add_middleware(IngestTiming, state=state, timed={r.path: r.name for r in receivers})
    # Any other route's body (forms, the review API; routes mounted later too) is capped and timed
    # out before the route runs. Edge paths are read at request time: the app's receivers are final then.
    app.add_middleware(BodyGuard, edge_paths=lambda: frozenset(
        r.path for r in map(receiver_of, all_routes(app.routes)) if r is not None),
        timeout_s=state.settings.flusso_body_timeout_seconds, max_bytes=state.settings.flusso_max_form_bytes,
        path_limits={"/api/v1/erasures": state.settings.flusso_max_erasure_bytes})  # 10,000 ids are ~200 KB
    # Every collector route answers machines: an unknown address under their first path segments
    # (/v1/..., /metrics/...) answers JSON, never the viewer's HTML 404 page (viewer.routing).
    roots = {path.split("/")[1] for path in [r.path for r in receivers] + [r.path for r in health_router.routes]}
    app.state.machine_roots = frozenset(getattr(app.state, "machine_roots", frozenset()) | roots)


async def start_collector_grpc(app: FastAPI, *, port: int, reuse_port: bool = False) -> GrpcEdge:
    """The OTLP/gRPC server of `app`, started in the running event loop: it serves the very
    receiver objects the app mounted (found from its routes), with the app's state and drain flag."""
    state: CollectorState = app.state.collector
    settings = state.settings
    receivers = [r for r in map(receiver_of, all_routes(app.routes)) if r is not None]
    options = GrpcOptions(host=settings.flusso_host, port=port, max_message_bytes=settings.flusso_max_body_bytes,
                          tls_cert=settings.flusso_grpc_tls_cert, tls_key=settings.flusso_grpc_tls_key,
                          reuse_port=reuse_port)
    return await start_grpc_edge(receivers, state, app.state.drain, options)
