"""The neutral span record the log builder consumes. Pure: no OpenTelemetry import.

An SDK ``ReadableSpan`` (bridge side, ``from_sdk_span``) and an OTLP protobuf ``Span``
(collector side, ``collector_api.traces.otlp_spans``) both convert to ``SpanRecord``, so one builder
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


# Not frozen: a frozen dataclass's __init__ sets each field through object.__setattr__, which
# made building the records the worker's largest per-span cost (docs/benchmarks-bridge.md).
# Treat them as read-only all the same.
@dataclass(slots=True)
class EventRecord:
    name: str
    timestamp: int  # ns since the epoch
    attributes: Mapping[str, Any]


@dataclass(slots=True)
class LinkRecord:
    """A span link (OTLP `links`): the linked span's ids (ints, as in the SDK) and the link's attributes."""

    trace_id: int
    span_id: int
    attributes: Mapping[str, Any]


MAX_LINKS = 128  # per span, as the OTel SDK's default span limit; beyond it links are not kept


@dataclass(slots=True)
class SpanRecord:
    """One finished span (read-only by convention). Ids are ints (as in the SDK);
    ``parent_span_id`` is None for a root; ``kind`` is the lower-case OTel span kind name
    ("internal", "server", ...) or None; array attribute values are tuples (as the SDK keeps
    them)."""

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
    links: tuple[LinkRecord, ...] = ()

    def __post_init__(self) -> None:
        if self.attributes is None:
            self.attributes = {}


# enum member -> its name as the builder reads it (lower-case kind, upper-case status code);
# Enum.name is a descriptor lookup, and the set of members is tiny.
_KIND_NAMES: dict[Any, str] = {}
_STATUS_NAMES: dict[Any, str] = {}


def _kind_name(kind: Any) -> str | None:
    if kind is None:
        return None
    name = _KIND_NAMES.get(kind)
    if name is None:
        name = _KIND_NAMES[kind] = kind.name.lower()
    return name


def _status_name(code: Any) -> str:
    if code is None:
        return STATUS_UNSET
    name = _STATUS_NAMES.get(code)
    if name is None:
        name = _STATUS_NAMES[code] = getattr(code, "name", STATUS_UNSET)
    return name


def from_sdk_span(span: Any) -> SpanRecord:
    """A finished OTel SDK ``ReadableSpan`` (duck-typed: no SDK import) as a SpanRecord.
    Runs on the worker for every span: the attributes are copied once into a plain dict
    (the SDK's mapping is read through Python-level methods on every access)."""
    ctx = span.context
    parent = span.parent
    status = span.status
    code = getattr(status, "status_code", None)
    kind = getattr(span, "kind", None)
    attributes = span.attributes
    evs = span.events
    links = getattr(span, "links", None)
    return SpanRecord(
        span.name,
        ctx.trace_id,
        ctx.span_id,
        parent.span_id if parent is not None else None,
        span.start_time,
        span.end_time,
        _STATUS_NAMES.get(code) or _status_name(code),
        getattr(status, "description", None),
        dict(attributes) if attributes else {},
        tuple([EventRecord(ev.name, ev.timestamp, ev.attributes or {}) for ev in evs]) if evs else (),
        _KIND_NAMES.get(kind) or _kind_name(kind),
        int(getattr(span, "dropped_events", 0) or 0),
        tuple([LinkRecord(link.context.trace_id, link.context.span_id, dict(link.attributes or {}))
               for link in links[:MAX_LINKS] if link.context.is_valid]) if links else (),
    )
