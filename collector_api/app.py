"""The collector as a FastAPI router plus its lifecycle pieces; flusso_obs.server composes the app."""
from __future__ import annotations

import logging
import time

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from google.protobuf import json_format
from google.rpc import status_pb2

from .errors import CollectorError
from .routes_health import router as health_router
from .routes_ingest import PROTOBUF, media_type
from .routes_ingest import router as ingest_router
from .state import CollectorState

logger = logging.getLogger(__name__)

_GRPC_CODES = {400: 3, 401: 16, 403: 7, 413: 11, 415: 3, 422: 3, 429: 8, 503: 14}


def _otlp_status(request: Request, exc: CollectorError) -> Response:
    status = status_pb2.Status(code=_GRPC_CODES.get(exc.status, 2), message=exc.message)
    if media_type(request) == PROTOBUF:
        return Response(status.SerializeToString(), status_code=exc.status, media_type=PROTOBUF)
    return Response(json_format.MessageToJson(status, indent=None), status_code=exc.status,
                    media_type="application/json")


async def handle_collector_error(request: Request, exc: CollectorError) -> Response:
    if exc.status >= 500:
        logger.warning("%s %s -> %d: %s", request.method, request.url.path, exc.status, exc.message)
    if request.url.path == "/v1/logs":
        response = _otlp_status(request, exc)
    else:
        response = JSONResponse({"detail": exc.message}, status_code=exc.status)
    if exc.retry_after:
        response.headers["Retry-After"] = str(exc.retry_after)
    return response


_TIMED = {"/v1/logs": "otlp", "/api/v1/logs": "legacy"}


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
    """Mount the collector's routes, error handling and request timing on `app`."""
    app.state.collector = state
    app.add_exception_handler(CollectorError, handle_collector_error)
    app.add_middleware(IngestTiming, state=state)
    app.include_router(ingest_router)
    app.include_router(health_router)
