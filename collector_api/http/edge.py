"""The one edge every receiver goes through, and its HTTP adapter. A receiver declares only what
is its own.

`Receiver` (collector_api.http.pipeline) names its path, media types, export message and two
functions: `decode` (pure, run in a thread under the decode slot: the parsed request -> what the
receiver will store) and `handle` (stores it, returns an `Outcome` after COMMIT). Everything else
is applied once, in this order, for every receiver and every transport, by
`pipeline.run_export`: refusal while draining (503), the API key and its scope (401, before the
body is read), the receiver's availability (501), the media type (415), per-tenant rate and
in-flight bounds and the global in-flight bound (429/503, `CollectorState.admitted`), the body
read (size cap on the wire and inflated, 413; Content-Encoding, 415; FLUSSO_BODY_TIMEOUT_SECONDS,
408), OTLP parsing and the nesting limits (400, collector_api.http.otlp), "all records rejected"
(400), partial success, and the ingest counters.

This module is the HTTP adapter: a request becomes a `Call` (its headers, Content-Type, and
`read_wire` for the body), the Outcome becomes the receiver's answer, an error the format of the
receiver's class (OTLP google.rpc.Status or `{"detail"}`). collector_api.http.grpc_edge is the
gRPC adapter of the same pipeline. A receiver that is not mounted through `mount` does not exist:
tests/collector/test_hostile_routes.py enumerates the app's routes (and the gRPC methods).
"""
from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from google.protobuf import json_format

from collector_api.http.auth import get_state
from collector_api.http.body import read_wire
from collector_api.http.otlp import JSON, PROTOBUF
from collector_api.http.pipeline import Ingest, OtlpSignal, Outcome, Receiver, Refusal, run_export
from collector_api.http.responses import CollectorRoute, OtlpRoute, media_type

__all__ = ["Ingest", "OtlpSignal", "Outcome", "Receiver", "Refusal", "all_routes", "endpoint_for", "mount",
           "receiver_of"]
logger = logging.getLogger(__name__)


class HttpCall:
    """An HTTP request as the pipeline's `Call`."""

    def __init__(self, request: Request, endpoint: str):
        self.request, self.endpoint = request, endpoint
        self.metadata: Mapping[str, str] = request.headers
        self.media_type = media_type(request)

    async def read_body(self, limit: int, timeout_s: float) -> tuple[bytes, str]:
        return await read_wire(self.request, limit, timeout_s)


def otlp_response(signal: OtlpSignal, outcome: Outcome, mtype: str) -> Response:
    message = signal.response_message(outcome)
    if mtype == PROTOBUF:
        return Response(message.SerializeToString(), media_type=PROTOBUF)
    return Response(json_format.MessageToJson(message, indent=None), media_type=JSON)


def endpoint_for(receiver: Receiver) -> Callable[[Request], Awaitable[Response]]:
    async def export(request: Request) -> Response:
        call = HttpCall(request, receiver.name)
        outcome = await run_export(receiver, call, get_state(request), getattr(request.app.state, "drain", None))
        if receiver.respond is not None:
            return receiver.respond(outcome, call.media_type)
        return otlp_response(receiver.signal, outcome, call.media_type)  # type: ignore[arg-type]

    export.__name__ = f"export_{receiver.name}"
    export.receiver = receiver  # type: ignore[attr-defined]  # how the app and the hostile suite find receivers
    return export


def all_routes(routes: Any) -> list[Any]:
    """Every route of an app or router, through included routers (FastAPI keeps them wrapped)."""
    out = []
    for route in routes:
        inner = getattr(route, "original_router", None)
        out += all_routes(inner.routes) if inner is not None else [route]
    return out


def receiver_of(route: Any) -> Receiver | None:
    """The receiver behind a route of the app, None for any other route."""
    return getattr(getattr(route, "endpoint", None), "receiver", None)


def mount(receiver: Receiver) -> APIRouter:
    """A router holding `receiver` behind the edge; its error format follows its kind (OTLP or JSON)."""
    route_class = OtlpRoute if receiver.signal is not None else CollectorRoute
    router = APIRouter(route_class=route_class)
    router.add_api_route(receiver.path, endpoint_for(receiver), methods=["POST"], summary=receiver.summary,
                         **receiver.openapi)
    return router
