"""OTLP/HTTP traces (protobuf or JSON) -> redacted, sealed span rows for staging. Pure: no I/O.

Everything that would make the assembled log invalid is checked here, on arrival, so nothing
acknowledged is refused later: ids (16/8 bytes, not zero), times (the start within
`executed_at`'s bounds, the end not before it), and a `flusso.client_id` that differs from the
key's tenant. Each accepted span is redacted by the one policy the bridge applies too
(otel_bridge.policy): the attributes that name a person are hashed with the tenant's key,
identifiers (models, names, ids) keep their value, free text is scrubbed by the pattern
detectors and for the person values of its trace (from span, event, link and resource
attributes, and names written with an email anywhere in the span); the raw person values go
into the sealed payload only, so the assembler can replace them in text of spans that arrive
later. The payload (name, attributes, events, links, status message, resource) is sealed with AES-GCM
under the tenant's staging key (collector_api.traces.sealing).
"""
from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from collector_api.http.otlp import attributes
from collector_api.store.traces.staging import SpanRow
from collector_api.traces.otlp_spans import SPAN_KINDS, SPAN_STATUSES, valid_links
from collector_api.traces.sealing import TenantCipher
from otel_bridge import policy
from otel_bridge.known import DEFAULT_CAP, KnownValues
from otel_bridge.pii import Redactor
from otel_bridge.pii_keys import CONTENT_FIELDS, PERSON_ATTRIBUTES, TICKET_PREFIX

# executed_at bounds: a root may start no earlier than 2000-01-01 and no later than a day ahead.
MIN_START_NS = 946_684_800 * 10**9
MAX_CLOCK_SKEW_NS = 86_400 * 10**9
CLIENT_ID_ATTRIBUTE = "flusso.client_id"
# Attributes that name a person -> token kind (all three conventions: otel_bridge.pii_keys).
PERSON_ATTRIBUTES = PERSON_ATTRIBUTES
RESOURCE_KEYS = ("service.name", "service.version", "deployment.environment.name", "deployment.environment")
# Distinct person values one trace may make known within one request (more: counted, and the
# text of the trace's spans in the request is hashed whole instead of scrubbed).
PERSON_VALUES_CAP = DEFAULT_CAP


@dataclass(frozen=True, slots=True)
class SpanRejection:
    index: int
    reason: str
    tenant_mismatch: bool = False


def _check_span(span: Span, tenant: str, claimed: Any, now_ns: int) -> str | None:
    if len(span.trace_id) != 16 or not any(span.trace_id):
        return "traceId must be 16 bytes, not all zero"
    if len(span.span_id) != 8 or not any(span.span_id):
        return "spanId must be 8 bytes, not all zero"
    if span.parent_span_id and len(span.parent_span_id) != 8:
        return "parentSpanId must be empty or 8 bytes"
    if not MIN_START_NS <= span.start_time_unix_nano <= now_ns + MAX_CLOCK_SKEW_NS:
        return "startTimeUnixNano is out of bounds (2000-01-01 to one day ahead of the collector's clock)"
    if span.end_time_unix_nano and span.end_time_unix_nano < span.start_time_unix_nano:
        return "endTimeUnixNano is before startTimeUnixNano"
    if claimed not in (None, "") and claimed != tenant:
        return f"{CLIENT_ID_ATTRIBUTE} {str(claimed)[:64]!r} does not match the API key's tenant"
    return None


def person_kind(key: str, value: Any) -> str | None:
    """Token kind of an attribute that names a person, else None (the one policy:
    otel_bridge.policy.attribute_kind)."""
    return policy.attribute_kind(key, value)


def _span_values(span: Span, attrs: Mapping[str, Any], events: list[dict[str, Any]],
                 resource: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The raw person values one span carries: its attributes', its events' and links' and its
    resource's person attributes, and the names written with an email in its name, status
    message and text attributes."""
    pairs = policy.person_values(attrs) + policy.person_values(resource)
    for ev in events:
        pairs += policy.person_values(ev)
    for link in span.links:
        pairs += policy.person_values(_attributes_or_error(link.attributes, "a link attribute")[0])
    texts = [span.name, span.status.message, *attrs.values(), *(v for ev in events for v in ev.values())]
    return pairs + policy.discovered_values(texts)


def _attributes_or_error(pairs, what: str) -> tuple[dict[str, Any], str | None]:
    """The attributes as Python values, or ({}, why) when a value nests beyond the limit."""
    try:
        return attributes(pairs), None
    except ValueError as exc:
        return {}, f"{what}: {exc}"


@dataclass
class DecodedTraces:
    total: int
    rows: list[SpanRow]
    rejected: list[SpanRejection]
    over_cap: int = 0  # person values beyond a trace's cap (not known; their spans' text hashed whole)


@dataclass
class _Accepted:
    index: int
    span: Span
    resource: Mapping[str, Any]
    attrs: dict[str, Any]
    events: list[dict[str, Any]]
    values: list[tuple[str, str]]
    links: list[tuple[Any, dict[str, Any]]]  # (OTLP link with valid ids, its attributes)


def decode_spans(request: ExportTraceServiceRequest, tenant: str, redactor: Redactor,
                 cipher: TenantCipher, *, now_ns: int | None = None) -> DecodedTraces:
    """Every span of the request, checked, redacted and sealed (or rejected with a reason).

    Person values are known per trace (its spans in this request), at most PERSON_VALUES_CAP
    of them; the excess is counted in ``over_cap`` and the free text of that trace's spans is
    hashed whole (a value that cannot be searched for may be in any of them). Matching is one
    pass per string (otel_bridge.known): linear."""
    now_ns = now_ns or time.time_ns()
    accepted, rejected = _check_all(request, tenant, now_ns)
    by_trace: dict[bytes, list[_Accepted]] = {}
    for item in accepted:
        by_trace.setdefault(item.span.trace_id, []).append(item)
    rows, over_cap = [], 0
    for items in by_trace.values():
        pairs = [p for item in items for p in item.values]
        known = KnownValues(policy.for_mode(pairs, "hash"), cap=PERSON_VALUES_CAP)
        over_cap += known.over_cap
        # a ticket's texts are also sealed scrubbed (not hashed): the tenant's content mode
        # picks one at assembly
        scrub = KnownValues(policy.for_mode(pairs, "scrub"), cap=PERSON_VALUES_CAP) \
            if any(k == policy.CONTENT for _, k in pairs) else None
        for item in items:
            rows.append(_sealed_row(item, tenant, redactor, cipher, known, scrub))
    rows.sort(key=lambda row: row.index)
    return DecodedTraces(len(accepted) + len(rejected), rows, sorted(rejected, key=lambda r: r.index), over_cap)


def _check_all(request: ExportTraceServiceRequest, tenant: str, now_ns: int) -> tuple[list[_Accepted], list]:
    accepted: list[_Accepted] = []
    rejected: list[SpanRejection] = []
    index = 0
    for rs in request.resource_spans:
        resource, resource_error = _attributes_or_error(rs.resource.attributes, "a resource attribute")
        for ss in rs.scope_spans:
            for span in ss.spans:
                attrs, reason = _attributes_or_error(span.attributes, "an attribute")
                reason = resource_error or reason
                claimed = attrs.get(CLIENT_ID_ATTRIBUTE, resource.get(CLIENT_ID_ATTRIBUTE))
                reason = reason or _check_span(span, tenant, claimed, now_ns)
                events: list[dict[str, Any]] = []
                links: list[tuple[Any, dict[str, Any]]] = []
                if reason is None:
                    try:
                        events = [attributes(ev.attributes) for ev in span.events]
                        links = [(link, attributes(link.attributes)) for link in valid_links(span)]
                    except ValueError as exc:
                        reason = f"an event or link attribute: {exc}"
                if reason is None:
                    values = _span_values(span, attrs, events, resource)
                    accepted.append(_Accepted(index, span, resource, attrs, events, values, links))
                else:
                    rejected.append(SpanRejection(index, reason, tenant_mismatch="does not match" in reason))
                index += 1
    return accepted, rejected


def _sealed_row(item: _Accepted, tenant: str, r: Redactor, cipher: TenantCipher, known: KnownValues,
                scrub: KnownValues | None = None) -> SpanRow:
    span = item.span
    trace_id, span_id = span.trace_id.hex(), span.span_id.hex()
    parent = span.parent_span_id.hex() if span.parent_span_id else None
    # Over the cap, a value of the trace could not be known: any of its spans' text may hold it.
    whole = known.over_cap > 0
    payload = {
        "n": r.scrub_identifier(span.name, known),
        "k": SPAN_KINDS.get(span.kind),
        "s": SPAN_STATUSES.get(span.status.code),
        "d": (r.hash_field("text", span.status.message) if whole else r.scrub_text(span.status.message, known))
        if span.status.message else None,
        "a": policy.redact_attributes(item.attrs, r, known, whole=whole),
        "e": [[r.scrub_identifier(ev.name, known), ev.time_unix_nano,
               policy.redact_attributes(attrs, r, known, whole=whole)] for ev, attrs in zip(span.events, item.events,
                                                                                          strict=True)],
        "de": span.dropped_events_count,
        "l": [[link.trace_id.hex(), link.span_id.hex(), policy.redact_attributes(attrs, r, known, whole=whole)]
              for link, attrs in item.links],  # span links: ids as they are, attributes as the span's own
        "r": policy.redact_attributes({k: item.resource[k] for k in RESOURCE_KEYS if k in item.resource}, r, known),
        "sc": {k: r.scrub_value(v, scrub) for k, v in item.attrs.items() if _is_ticket_text(k)} if scrub else {},
        "p": item.values,  # the raw values: keep it LAST (assembly._searchable cuts it off)
    }
    blob = cipher.seal(trace_id, span_id, orjson.dumps(payload, option=orjson.OPT_NON_STR_KEYS))
    return SpanRow(index=item.index, client_id=tenant, trace_id=trace_id, span_id=span_id, parent_span_id=parent,
                   start_ns=span.start_time_unix_nano, end_ns=span.end_time_unix_nano or None, payload=blob)


def _is_ticket_text(key: str) -> bool:
    return key.startswith(TICKET_PREFIX) and key[len(TICKET_PREFIX):].lower() in CONTENT_FIELDS


def rows_by_trace(rows: Iterable[SpanRow]) -> dict[str, list[SpanRow]]:
    out: dict[str, list[SpanRow]] = {}
    for row in rows:
        out.setdefault(row.trace_id, []).append(row)
    return out
