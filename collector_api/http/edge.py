"""The one edge every receiver goes through. A receiver declares only what is its own.

`Receiver` names its path, media types, export message and two functions: `decode` (pure, run in
a thread under the decode slot: the parsed request -> what the receiver will store) and `handle`
(stores it, returns an `Outcome` after COMMIT). Everything else is applied here, once, in this
order, for every receiver: refusal while draining (503), the API key and its scope (401, before
the body is read), the receiver's availability (501), the media type (415), per-tenant rate and
in-flight bounds and the global in-flight bound (429/503, `CollectorState.admitted`), the body
read (size cap on the wire and inflated, 413; Content-Encoding, 415; FLUSSO_BODY_TIMEOUT_SECONDS,
408), OTLP parsing and the nesting limits (400, collector_api.http.otlp), the error format of the
receiver's class (OTLP google.rpc.Status or `{"detail"}`), "all records rejected" (400),
partial success, and the ingest counters. A receiver that is not mounted through `mount` does
not exist: tests/collector/test_hostile_routes.py enumerates the app's routes.
"""
from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from google.protobuf import json_format
from starlette.concurrency import run_in_threadpool

from collector_api.http.admission import CollectorState
from collector_api.http.auth import authenticate, get_state
from collector_api.http.body import inflate, read_wire
from collector_api.http.drain import refuse_when_draining
from collector_api.http.errors import CollectorError, Unavailable, UnsupportedMedia
from collector_api.http.otlp import JSON, PROTOBUF, DecodeError, parse_request
from collector_api.http.responses import CollectorRoute, OtlpRoute, media_type
from collector_api.store.accounts.principals import ApiKey
from collector_api.store.core.db import StoreUnavailable

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Refusal:
    """One record (log record, span, document) refused: its index in the request, why, and the
    reason code it is counted under (flusso_logs_rejected{reason}, the ingest health page)."""

    index: int
    reason: str
    label: str = "invalid"


@dataclass
class Outcome:
    """What a receiver's handler did with one request, after COMMIT."""

    total: int  # records in the request
    accepted: int  # stored, staged or recognised as duplicates
    refusals: list[Refusal] = field(default_factory=list)
    body: Any = None  # the receiver's own success payload (legacy: the stored log's id)


@dataclass(frozen=True)
class Ingest:
    """One admitted request as the receiver sees it: the tenant comes from the key, never the body."""

    key: ApiKey
    state: CollectorState
    headers: Mapping[str, str]

    @property
    def tenant(self) -> str:
        return self.key.client_id


@dataclass(frozen=True)
class OtlpSignal:
    """An OTLP export service: its request and response messages and how a partial success is said."""

    request: type
    response: type
    rejected_field: str  # rejected_log_records / rejected_spans
    unit: str  # "log records" / "spans"
    item: str  # "record" / "span"

    def response_for(self, outcome: Outcome, mtype: str) -> Response:
        message = self.response()
        if outcome.refusals:
            first = outcome.refusals[0]
            setattr(message.partial_success, self.rejected_field, len(outcome.refusals))
            message.partial_success.error_message = (f"{len(outcome.refusals)} of {outcome.total} {self.unit} rejected;"
                                                     f" first: {self.item} {first.index}:"
                                                     f" {first.reason}")
        if mtype == PROTOBUF:
            return Response(message.SerializeToString(), media_type=PROTOBUF)
        return Response(json_format.MessageToJson(message, indent=None), media_type=JSON)


@dataclass(frozen=True)
class Receiver:
    """What is a receiver's own. `signal` None: the body is not OTLP (`parse` reads it instead)."""

    name: str  # the endpoint label of the ingest metrics
    path: str
    summary: str
    media_types: tuple[str, ...]
    decode: Callable[[Any, Ingest], Any]
    handle: Callable[[Ingest, Any], Awaitable[Outcome]]
    signal: OtlpSignal | None = None
    parse: Callable[[bytes], Any] | None = None
    respond: Callable[[Outcome, str], Response] | None = None
    unavailable: Callable[[], str | None] = lambda: None  # the 501 message while not configured
    scope: str = "ingest"
    openapi: Mapping[str, Any] = field(default_factory=dict)  # openapi_extra and responses


def _parse_and_decode(receiver: Receiver, raw: bytes, encoding: str, limit: int, mtype: str, ingest: Ingest) -> Any:
    body = inflate(raw, encoding, limit)
    del raw
    if receiver.signal is not None:
        parsed = parse_request(receiver.signal.request(), body, mtype)
    else:
        parsed = receiver.parse(body)  # type: ignore[misc]
    del body
    return receiver.decode(parsed, ingest)


async def _admitted_request(receiver: Receiver, request: Request, ingest: Ingest, mtype: str) -> Outcome:
    state = ingest.state
    limit = state.settings.flusso_max_body_bytes
    raw, encoding = await read_wire(request, limit, state.settings.flusso_body_timeout_seconds)  # still compressed
    async with state.work_slots:
        try:
            async with state.decode_slot:
                decoded = await run_in_threadpool(_parse_and_decode, receiver, raw, encoding, limit, mtype, ingest)
        except DecodeError as exc:
            state.metrics.rejected.labels("undecodable", ingest.tenant).inc()
            raise CollectorError(str(exc)) from None
        del raw
        try:
            return await receiver.handle(ingest, decoded)
        except StoreUnavailable as exc:
            logger.warning("%s: database unavailable for %s: %s", receiver.path, ingest.tenant, exc)
            state.metrics.rejected.labels("db_unavailable", ingest.tenant).inc()
            raise Unavailable("database unavailable; retry later (what was already stored is not stored twice)",
                              retry_after=state.settings.flusso_retry_after_seconds) from None


def _count(receiver: Receiver, ingest: Ingest, outcome: Outcome) -> None:
    metrics = ingest.state.metrics
    metrics.received.labels(receiver.name).inc(outcome.total)
    if receiver.signal is not None:
        metrics.batch_size.observe(outcome.total)
    for refusal in outcome.refusals:
        metrics.rejected.labels(refusal.label, ingest.tenant).inc()


def endpoint_for(receiver: Receiver) -> Callable[[Request], Awaitable[Response]]:
    async def export(request: Request) -> Response:
        state = get_state(request)
        key = await authenticate(request, receiver.scope)
        missing = receiver.unavailable()
        if missing:
            raise CollectorError(missing, status=501)
        mtype = media_type(request)
        if mtype not in receiver.media_types:
            shown = " or ".join(t for t in receiver.media_types if t) or JSON
            raise UnsupportedMedia(f"unsupported Content-Type {mtype!r}: use {shown}")
        ingest = Ingest(key, state, request.headers)
        async with state.admitted(key.client_id):
            outcome = await _admitted_request(receiver, request, ingest, mtype)
        _count(receiver, ingest, outcome)
        if outcome.refusals and not outcome.accepted:
            first = outcome.refusals[0]
            unit, item = (receiver.signal.unit, receiver.signal.item) if receiver.signal else ("records", "record")
            raise CollectorError(f"all {outcome.total} {unit} rejected; {item} {first.index}: {first.reason}")
        if receiver.respond is not None:
            return receiver.respond(outcome, mtype)
        return receiver.signal.response_for(outcome, mtype)  # type: ignore[union-attr]

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
    router = APIRouter(route_class=route_class, dependencies=[Depends(refuse_when_draining)])
    router.add_api_route(receiver.path, endpoint_for(receiver), methods=["POST"], summary=receiver.summary,
                         **receiver.openapi)
    return router
