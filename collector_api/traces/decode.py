"""OTLP/HTTP traces (protobuf or JSON) -> redacted, sealed span rows for staging. Pure: no I/O.

Everything that would make the assembled log invalid is checked here, on arrival, so nothing
acknowledged is refused later: ids (16/8 bytes, not zero), times (the start within
`executed_at`'s bounds, the end not before it), and a `flusso.client_id` that differs from the
key's tenant. Each accepted span is redacted with the bridge's rules (otel_bridge.pii): the
attributes that name a person are hashed with the tenant's key, free text is scrubbed by the
pattern detectors and for the person values seen anywhere in the request; the raw person values
go into the sealed payload only, so the assembler can replace them in text of spans that arrive
later. The payload (name, attributes, events, links, status message, resource) is sealed with AES-GCM
under the tenant's staging key (collector_api.traces.sealing).
"""
from __future__ import annotations

import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import orjson
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from collector_api.http.otlp import attributes
from collector_api.store.traces.staging import SpanRow
from collector_api.traces.conventions.content import (
    METADATA,
    PERSON_KEYS,
    is_content,
    metadata_person_values,
    person_key_kind,
)
from collector_api.traces.otlp_spans import SPAN_KINDS, SPAN_STATUSES, valid_links
from collector_api.traces.sealing import TenantCipher
from otel_bridge.pii import KnownValues, Redactor, known_values
from otel_bridge.pii_keys import field_kind, ticket_field_kind

# executed_at bounds: a root may start no earlier than 2000-01-01 and no later than a day ahead.
MIN_START_NS = 946_684_800 * 10**9
MAX_CLOCK_SKEW_NS = 86_400 * 10**9
CLIENT_ID_ATTRIBUTE = "flusso.client_id"
TICKET_PREFIX = "flusso.ticket."
# Attributes that name a person -> token kind (all three conventions: collector_api.traces.conventions.content).
# Hashed on arrival; raw values kept sealed only.
PERSON_ATTRIBUTES = PERSON_KEYS
_EMAIL = re.compile(r"^[^@\s]{1,200}@[^@\s]{1,200}\.[A-Za-z]{2,}$")
# A person's name in an id attribute (``enduser.id = "Annalisa Rossetti"``): 2-5 words of letters
# (with ' - . inside), no digits or @. Known as a `name`, so its parts are replaced too: agents
# greet customers by first name ("Dear Annalisa").
_NAME_WORD = r"[^\W\d_]+(?:[-'.][^\W\d_]+)*"  # a separator between letter runs: no ambiguity, linear
_NAME_SHAPED = re.compile(rf"^{_NAME_WORD}(?:\s+{_NAME_WORD}){{1,4}}$")
_HASHED_KINDS = frozenset({"email", "phone", "name", "card", "iban"})
RESOURCE_KEYS = ("service.name", "service.version", "deployment.environment.name", "deployment.environment")


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
    """Token kind of an attribute that names a person, else None."""
    if key == "session.id" and isinstance(value, str) and _EMAIL.match(value.strip()):
        return "email"
    return _key_kind(key)


@lru_cache(maxsize=4096)
def _key_kind(key: str) -> str | None:
    """person_kind for every key but session.id (decided by the key alone; keys recur)."""
    kind = person_key_kind(key)  # user.id, user.email, ... and OpenLLMetry's association user_id
    if kind is not None:
        return kind
    if key.startswith(TICKET_PREFIX):
        return ticket_field_kind(key[len(TICKET_PREFIX):])
    if is_content(key):  # prompts, outputs, documents, tool I/O: scrubbed as text and sealed
        return None
    # Other keys by the bridge's key rule on their last part (``customer.email``); content keys
    # (``...message``, ``...body``) are not hashed: they are scrubbed and sealed instead.
    kind = field_kind(key.rsplit(".", 1)[-1])
    return kind if kind in _HASHED_KINDS else None


def _person_values(attrs: Mapping[str, Any]) -> list[tuple[str, str]]:
    out = []
    for key, value in attrs.items():
        kind = person_kind(key, value)
        if kind is not None:
            values = value if isinstance(value, (list, tuple)) else (value,)
            out.extend((str(v), _known_kind(kind, v)) for v in values
                       if isinstance(v, (str, int)) and not isinstance(v, bool))
    out.extend(metadata_person_values(attrs.get(METADATA)))
    return out


def _known_kind(kind: str, value: object) -> str:
    """The kind a person value is known by at replacement: a name-shaped user id is a `name`."""
    if kind == "user" and isinstance(value, str) and len(value) <= 200 and _NAME_SHAPED.match(value.strip()):
        return "name"
    return kind


def _redact_attributes(attrs: Mapping[str, Any], r: Redactor, known: KnownValues) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in attrs.items():
        kind = person_kind(key, value)
        if kind is not None:
            out[key] = r.hash_field(kind, value)
        elif isinstance(value, (bool, int, float)) or value is None:
            out[key] = value
        else:
            out[key] = r.scrub_value(value, known)
    return out


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


def decode_spans(request: ExportTraceServiceRequest, tenant: str, redactor: Redactor,
                 cipher: TenantCipher, *, now_ns: int | None = None) -> DecodedTraces:
    """Every span of the request, checked, redacted and sealed (or rejected with a reason)."""
    now_ns = now_ns or time.time_ns()
    items = []  # (index, span, resource attrs, span attrs)
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
                if reason is None:
                    items.append((index, span, resource, attrs))
                else:
                    rejected.append(SpanRejection(index, reason, tenant_mismatch="does not match" in reason))
                index += 1
    pairs = [p for _, _, res, attrs in items for p in _person_values(attrs)]
    known = known_values({}, (), pairs)
    rows = []
    for i, span, res, attrs in items:
        try:
            rows.append(_sealed_row(i, span, res, attrs, tenant, redactor, cipher, known))
        except ValueError as exc:  # an event or link attribute nested beyond the limit
            rejected.append(SpanRejection(i, f"an event or link attribute: {exc}"))
    return DecodedTraces(index, rows, sorted(rejected, key=lambda r: r.index))


def _sealed_row(index: int, span: Span, resource: Mapping[str, Any], attrs: Mapping[str, Any], tenant: str,
                r: Redactor, cipher: TenantCipher, known: KnownValues) -> SpanRow:
    trace_id, span_id = span.trace_id.hex(), span.span_id.hex()
    parent = span.parent_span_id.hex() if span.parent_span_id else None
    payload = {
        "n": r.scrub_text(span.name, known),
        "k": SPAN_KINDS.get(span.kind),
        "s": SPAN_STATUSES.get(span.status.code),
        "d": r.scrub_text(span.status.message, known) if span.status.message else None,
        "a": _redact_attributes(attrs, r, known),
        "e": [[r.scrub_text(ev.name, known), ev.time_unix_nano,
               _redact_attributes(attributes(ev.attributes), r, known)] for ev in span.events],
        "de": span.dropped_events_count,
        "l": [[link.trace_id.hex(), link.span_id.hex(), _redact_attributes(attributes(link.attributes), r, known)]
              for link in valid_links(span)],  # span links: ids as they are, attributes as the span's own
        "r": {k: r.scrub_value(resource[k], known) for k in RESOURCE_KEYS if k in resource},
        "p": _person_values(attrs),  # the raw values: keep it LAST (trace_assembly._searchable cuts it off)
    }
    blob = cipher.seal(trace_id, span_id, orjson.dumps(payload, option=orjson.OPT_NON_STR_KEYS))
    return SpanRow(index=index, client_id=tenant, trace_id=trace_id, span_id=span_id, parent_span_id=parent,
                   start_ns=span.start_time_unix_nano, end_ns=span.end_time_unix_nano or None, payload=blob)


def rows_by_trace(rows: Iterable[SpanRow]) -> dict[str, list[SpanRow]]:
    out: dict[str, list[SpanRow]] = {}
    for row in rows:
        out.setdefault(row.trace_id, []).append(row)
    return out
