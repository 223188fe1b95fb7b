"""OTLP protobuf spans -> the bridge's neutral ``SpanRecord``. Pure: no I/O, no globals.

With this, spans received over OTLP build the same workflow log the bridge builds in the
client (``otel_bridge.assemble.build_workflow_log`` takes SpanRecords). Imports only the
bridge's pure modules and ``opentelemetry.proto``.
"""

from __future__ import annotations

from collections.abc import Iterable

from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, Span, Status

from collector_api.http.otlp import attributes
from otel_bridge.spanrecord import MAX_LINKS, STATUS_ERROR, STATUS_OK, STATUS_UNSET, EventRecord, LinkRecord, SpanRecord

SPAN_KINDS = {
    Span.SPAN_KIND_INTERNAL: "internal",
    Span.SPAN_KIND_SERVER: "server",
    Span.SPAN_KIND_CLIENT: "client",
    Span.SPAN_KIND_PRODUCER: "producer",
    Span.SPAN_KIND_CONSUMER: "consumer",
}
SPAN_STATUSES = {
    Status.STATUS_CODE_UNSET: STATUS_UNSET,
    Status.STATUS_CODE_OK: STATUS_OK,
    Status.STATUS_CODE_ERROR: STATUS_ERROR,
}


def span_record(span: Span) -> SpanRecord:
    """One OTLP span as a SpanRecord (ids big-endian, as OTLP carries them)."""
    parent = int.from_bytes(span.parent_span_id, "big") if span.parent_span_id else None
    return SpanRecord(
        name=span.name,
        trace_id=int.from_bytes(span.trace_id, "big"),
        span_id=int.from_bytes(span.span_id, "big"),
        parent_span_id=parent,
        start_time=span.start_time_unix_nano,
        end_time=span.end_time_unix_nano or None,
        status=SPAN_STATUSES.get(span.status.code, STATUS_UNSET),
        status_description=span.status.message or None,
        attributes=attributes(span.attributes),
        events=tuple(EventRecord(ev.name, ev.time_unix_nano, attributes(ev.attributes)) for ev in span.events),
        kind=SPAN_KINDS.get(span.kind),
        dropped_events=span.dropped_events_count,
        links=tuple(LinkRecord(int.from_bytes(link.trace_id, "big"), int.from_bytes(link.span_id, "big"),
                               attributes(link.attributes)) for link in valid_links(span)),
    )


def valid_links(span: Span) -> list:
    """The span's links whose ids are well formed (16/8 bytes, not zero), at most MAX_LINKS; a link
    that points nowhere tells nothing, so it is not kept."""
    return [link for link in span.links if len(link.trace_id) == 16 and any(link.trace_id)
            and len(link.span_id) == 8 and any(link.span_id)][:MAX_LINKS]


def span_records(resource_spans: Iterable[ResourceSpans]) -> list[SpanRecord]:
    """Every span of an ExportTraceServiceRequest's ``resource_spans``."""
    return [span_record(sp) for rs in resource_spans for ss in rs.scope_spans for sp in ss.spans]
