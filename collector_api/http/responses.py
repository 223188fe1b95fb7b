"""How the collector's routes answer errors: each router names its format through its route class.

OTLP/HTTP senders read a google.rpc.Status (`OtlpRoute`, /v1/logs); every other collector route
answers `{"detail": ...}` JSON (`CollectorRoute`). The format is the route's, whatever the path.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from google.protobuf import json_format
from google.rpc import status_pb2

from collector_api.http.errors import CollectorError, Unavailable
from collector_api.http.otlp import JSON, PROTOBUF
from collector_api.store.core.db import StoreUnavailable

logger = logging.getLogger(__name__)

Handler = Callable[[Request], Coroutine[Any, Any, Response]]


def media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


class CollectorRoute(APIRoute):
    """A collector route: a CollectorError it raises (in a dependency or the endpoint) becomes
    `{"detail": message}` with its status and Retry-After."""

    error_format = "json"

    def render_error(self, request: Request, exc: CollectorError) -> Response:
        return JSONResponse({"detail": exc.message}, status_code=exc.status)

    def get_route_handler(self) -> Handler:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                return await handler(request)
            except CollectorError as exc:
                return self._error_response(request, exc)
            except StoreUnavailable as exc:  # the routes catch it themselves; a safety net
                logger.warning("%s %s: database unavailable: %s", request.method, request.url.path, exc)
                return self._error_response(request, Unavailable("database unavailable; retry later"))

        return handle

    def _error_response(self, request: Request, exc: CollectorError) -> Response:
        if exc.status >= 500:
            logger.warning("%s %s -> %d: %s", request.method, request.url.path, exc.status, exc.message)
        response = self.render_error(request, exc)
        if exc.retry_after:
            response.headers["Retry-After"] = str(exc.retry_after)
        return response


class OtlpRoute(CollectorRoute):
    """An OTLP/HTTP route: errors are a google.rpc.Status, in the request's encoding (protobuf or JSON)."""

    error_format = "otlp"

    def render_error(self, request: Request, exc: CollectorError) -> Response:
        status = status_pb2.Status(code=exc.grpc_code, message=exc.message)
        if media_type(request) == PROTOBUF:
            return Response(status.SerializeToString(), status_code=exc.status, media_type=PROTOBUF)
        return Response(json_format.MessageToJson(status, indent=None), status_code=exc.status, media_type=JSON)
