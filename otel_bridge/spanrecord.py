"""The neutral span record the log builder consumes. Pure: no OpenTelemetry import.

An SDK ``ReadableSpan`` (bridge side, ``from_sdk_span``) and an OTLP protobuf ``Span``
(collector side, ``collector_api.otlp_spans``) both convert to ``SpanRecord``, so one builder
serves both and the same spans give the same workflow log.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# Span status codes, as the builder reads them.
STATUS_UNSET = "UNSET"
STATUS_OK = "OK"
STATUS_ERROR = "ERROR"


@dataclass(frozen=True, slots=True)
class EventRecord:
    name: str
    timestamp: int  # ns since the epoch
    attributes: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class SpanRecord:
    """One finished span. Ids are ints (as in the SDK); ``parent_span_id`` is None for a
    root; ``kind`` is the lower-case OTel span kind name ("internal", "server", ...) or None;
    array attribute values are tuples (as the SDK keeps them)."""

    name: str
    trace_id: int
    span_id: int
    parent_span_id: int | None
    start_time: int  # ns since the epoch
    end_time: int | None  # None: the span has not ended (the builder skips it)
    status: str = STATUS_UNSET
    status_description: str | None = None
    attributes: Mapping[str, Any] = None  # type: ignore[assignment]  # set to {} below
    events: tuple[EventRecord, ...] = ()
    kind: str | None = "internal"
    dropped_events: int = 0

    def __post_init__(self) -> None:
        if self.attributes is None:
            object.__setattr__(self, "attributes", {})


def from_sdk_span(span: Any) -> SpanRecord:
    """A finished OTel SDK ``ReadableSpan`` (duck-typed: no SDK import) as a SpanRecord."""
    ctx = span.context
    parent = span.parent
    code = getattr(span.status, "status_code", None)
    kind = getattr(span, "kind", None)
    return SpanRecord(
        name=span.name,
        trace_id=ctx.trace_id,
        span_id=ctx.span_id,
        parent_span_id=parent.span_id if parent is not None else None,
        start_time=span.start_time,
        end_time=span.end_time,
        status=getattr(code, "name", STATUS_UNSET) if code is not None else STATUS_UNSET,
        status_description=getattr(span.status, "description", None),
        attributes=span.attributes or {},
        events=tuple(EventRecord(ev.name, ev.timestamp, ev.attributes or {}) for ev in span.events or ()),
        kind=kind.name.lower() if kind is not None else None,
        dropped_events=int(getattr(span, "dropped_events", 0) or 0),
    )
