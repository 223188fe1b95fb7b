"""The edge's pipeline, independent of the transport: one export call, from its metadata to its
Outcome after COMMIT, the same steps in the same order for every receiver and every transport.

    drain -> key + scope -> availability -> media type -> admission -> body -> decode slot
          -> receiver.decode -> receiver.handle -> counters -> all rejected?

A transport adapter (collector_api.http.edge for HTTP, collector_api.http.grpc_edge for gRPC)
turns its request into a `Call` (metadata, media type, how to read the body), runs `run_export`,
and renders what comes back: the Outcome (partial success included) or the CollectorError raised
by any step, which carries its HTTP status and gRPC code (collector_api.http.errors). Neither
adapter applies a rule of its own, so neither can skip one.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from collector_api.http.admission import CollectorState
from collector_api.http.auth import authenticate_key
from collector_api.http.body import inflate
from collector_api.http.drain import Drain, refuse_if_draining
from collector_api.http.errors import CollectorError, Unavailable, UnsupportedMedia
from collector_api.http.otlp import JSON, DecodeError, parse_request
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
    headers: Mapping[str, str]  # HTTP headers or gRPC metadata, lowercase names

    @property
    def tenant(self) -> str:
        return self.key.client_id


@dataclass(frozen=True)
class OtlpSignal:
    """An OTLP export service: its messages, its gRPC service and how a partial success is said."""

    request: type
    response: type
    rejected_field: str  # rejected_log_records / rejected_spans
    unit: str  # "log records" / "spans"
    item: str  # "record" / "span"
    grpc_service: str = ""  # e.g. opentelemetry.proto.collector.logs.v1.LogsService; "" = HTTP only

    def response_message(self, outcome: Outcome) -> Any:
        """The export response: empty, or the partial success naming the first refusal."""
        message = self.response()
        if outcome.refusals:
            first = outcome.refusals[0]
            setattr(message.partial_success, self.rejected_field, len(outcome.refusals))
            message.partial_success.error_message = (f"{len(outcome.refusals)} of {outcome.total} {self.unit} rejected;"
                                                     f" first: {self.item} {first.index}: {first.reason}")
        return message


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
    respond: Callable[[Outcome, str], Any] | None = None  # HTTP only: the legacy answer
    unavailable: Callable[[], str | None] = lambda: None  # the 501 message while not configured
    scope: str = "ingest"
    openapi: Mapping[str, Any] = field(default_factory=dict)  # HTTP only: openapi_extra and responses


class Call(Protocol):
    """One export call as its transport delivers it."""

    endpoint: str  # the `endpoint` label of the ingest metrics (the receiver's name, per transport)
    metadata: Mapping[str, str]  # lowercase names
    media_type: str

    async def read_body(self, limit: int, timeout_s: float) -> tuple[bytes, str]:
        """(the body as sent, its content encoding): PayloadTooLarge past `limit` bytes, RequestTimeout
        when it has not arrived within `timeout_s`, UnsupportedMedia for an unknown encoding."""
        ...


def _parse_and_decode(receiver: Receiver, raw: bytes, encoding: str, limit: int, mtype: str, ingest: Ingest) -> Any:
    body = inflate(raw, encoding, limit)
    del raw
    if receiver.signal is not None:
        parsed = parse_request(receiver.signal.request(), body, mtype)
    else:
        parsed = receiver.parse(body)  # type: ignore[misc]
    del body
    return receiver.decode(parsed, ingest)


async def _admitted_call(receiver: Receiver, call: Call, ingest: Ingest) -> Outcome:
    state = ingest.state
    limit = state.settings.flusso_max_body_bytes
    raw, encoding = await call.read_body(limit, state.settings.flusso_body_timeout_seconds)  # still compressed
    async with state.work_slots:
        try:
            async with state.decode_slot:
                decoded = await asyncio.to_thread(_parse_and_decode, receiver, raw, encoding, limit,
                                                  call.media_type, ingest)
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


def _count(receiver: Receiver, call: Call, ingest: Ingest, outcome: Outcome) -> None:
    metrics = ingest.state.metrics
    metrics.received.labels(call.endpoint).inc(outcome.total)
    if receiver.signal is not None:
        metrics.batch_size.observe(outcome.total)
    for refusal in outcome.refusals:
        metrics.rejected.labels(refusal.label, ingest.tenant).inc()


async def run_export(receiver: Receiver, call: Call, state: CollectorState, drain: Drain | None) -> Outcome:
    """The Outcome of one export call, after COMMIT; raises the CollectorError of the first rule
    the call breaks. Every transport's every ingest method comes through here."""
    refuse_if_draining(drain, state)
    key = await authenticate_key(state, call.metadata, receiver.scope)  # before a byte of the body is read
    missing = receiver.unavailable()
    if missing:
        raise CollectorError(missing, status=501)
    if call.media_type not in receiver.media_types:
        shown = " or ".join(t for t in receiver.media_types if t) or JSON
        raise UnsupportedMedia(f"unsupported Content-Type {call.media_type!r}: use {shown}")
    ingest = Ingest(key, state, call.metadata)
    async with state.admitted(key.client_id):
        outcome = await _admitted_call(receiver, call, ingest)
    _count(receiver, call, ingest, outcome)
    if outcome.refusals and not outcome.accepted:
        first = outcome.refusals[0]
        unit, item = (receiver.signal.unit, receiver.signal.item) if receiver.signal else ("records", "record")
        raise CollectorError(f"all {outcome.total} {unit} rejected; {item} {first.index}: {first.reason}")
    return outcome
