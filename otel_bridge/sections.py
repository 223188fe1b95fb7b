"""Pure helpers of the assembler: reading span records and events, building the trace sections.

No I/O, no globals. Inputs are ``SpanRecord`` objects (otel_bridge.spanrecord).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from otel_bridge import attributes as A
from otel_bridge.numbers import finite_number
from otel_bridge.spanrecord import STATUS_ERROR, STATUS_UNSET, EventRecord, SpanRecord
from otel_bridge.spantree import Node, root_index

MAX_SPAN_ATTRIBUTES = 32

# The sections of the log's "trace" object, in order. The builder writes them; the redaction
# pass scrubs every one of them except "ticket" and "spans", which it treats field by field.
TRACE_SECTIONS = ("ticket", "planning", "react", "retrieval", "evidence", "output", "llm_calls", "spans")
FREE_SECTIONS = tuple(k for k in TRACE_SECTIONS if k not in ("ticket", "spans"))

# (span, event, payload) of one flusso.* event.
EventItem = tuple[SpanRecord, EventRecord, dict[str, Any]]

# --- sections ---

def find_root(spans: Sequence[SpanRecord]) -> SpanRecord:
    """The trace's root by the one rule (otel_bridge.spantree); the first span when every span
    hangs under another (a parent cycle), since a log needs a root."""
    index = root_index([Node(s.span_id, s.parent_span_id, attr(s, A.KIND) == A.KIND_WORKFLOW, s.start_time)
                        for s in spans])
    return spans[0] if index is None else spans[index]


def collect_events(spans: Sequence[SpanRecord]) -> dict[str, list[EventItem]]:
    out: dict[str, list[EventItem]] = {}
    items = []
    for s in spans:
        for ev in s.events:
            if ev.name.startswith("flusso."):
                items.append((ev.timestamp, s, ev))
    items.sort(key=lambda t: t[0])
    for _, s, ev in items:
        raw = ev.attributes.get(A.PAYLOAD)
        payload: Any
        try:
            payload = json.loads(raw) if isinstance(raw, str) else {}
        except ValueError:
            payload = {"unparsed": raw}
        if not isinstance(payload, dict):
            payload = {"value": payload}
        out.setdefault(ev.name, []).append((s, ev, payload))
    return out


def merge_ticket(items: list[EventItem]) -> dict[str, Any]:
    ticket: dict[str, Any] = {}
    for _, _, p in items:
        marked = p.pop("_pii", None)
        ticket.update(p)
        if marked:
            ticket.setdefault("_pii", []).extend(marked)
    return ticket


def react_iterations(items: list[EventItem]) -> list[dict[str, Any]]:
    out = []
    last_ts: dict[int, int] = {}
    for n, (span, ev, p) in enumerate(items, start=1):
        sid = span.span_id
        prev = last_ts.get(sid, span.start_time)
        last_ts[sid] = ev.timestamp
        entry: dict[str, Any] = {"n": n}
        entry.update(p)
        if entry.get("duration_ms") is None:
            entry["duration_ms"] = round(max(0, ev.timestamp - prev) / 1e6, 3)
        ai = entry.get("action_input")
        if ai is not None and not isinstance(ai, str):
            entry["action_input"] = json.dumps(ai, ensure_ascii=False, default=str)
        out.append(entry)
    return out


def retrieval_sections(items: list[EventItem]) -> tuple[dict[str, dict[str, Any]], list[float], int]:
    out: dict[str, dict[str, Any]] = {}
    scores: list[float] = []
    for _, _, p in items:
        source = str(p.get("source") or "other")
        sec = out.setdefault(source, {"query": p.get("query"), "results": []})
        if sec["query"] != p.get("query"):
            sec.setdefault("queries", [sec["query"]]).append(p.get("query"))
        results = p.get("results") or []
        if not isinstance(results, list):
            results = [results]
        sec["results"].extend(results)
        for key, value in p.items():
            if key not in ("source", "query", "results"):
                sec[key] = value
        for r in results:
            score = r.get("score") if isinstance(r, dict) else None
            if isinstance(score, (int, float)) and not isinstance(score, bool):
                scores.append(float(score))
    return out, scores, len(items)


def evidence_section(items: list[EventItem]) -> dict[str, Any]:
    ev: dict[str, Any] = {"items": [], "conflicts": [], "resolution": None}
    for _, _, p in items:
        ev["items"].extend(p.pop("items", None) or [])
        ev["conflicts"].extend(p.pop("conflicts", None) or [])
        if p.get("resolution") is not None:
            ev["resolution"] = p.pop("resolution")
        p.pop("resolution", None)
        ev.update(p)
    return ev


def _clean_attribute(v: Any) -> Any:
    if isinstance(v, tuple):
        return [None if isinstance(x, float) and not math.isfinite(x) else x for x in v]
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def span_entry(s: SpanRecord, t0: int) -> dict[str, Any]:
    end = s.end_time if s.end_time is not None else s.start_time
    source = s.attributes
    n = len(source)
    items: Any = source.items()
    if n > MAX_SPAN_ATTRIBUTES:
        items = list(items)[:MAX_SPAN_ATTRIBUTES]
    attrs = {k: (_clean_attribute(v) if type(v) in (tuple, float) else v) for k, v in items}
    if n > MAX_SPAN_ATTRIBUTES:
        attrs["flusso.attributes_dropped"] = n - MAX_SPAN_ATTRIBUTES
    kind = source.get(A.KIND) or ("otel." + s.kind if s.kind is not None else None)
    status = s.status
    parent = s.parent_span_id
    entry = {
        "name": s.name,
        "kind": kind,
        "span_id": format(s.span_id, "016x"),
        "parent_span_id": format(parent, "016x") if parent is not None else None,
        "start_offset_ms": round((s.start_time - t0) / 1e6, 3),
        "duration_ms": round(max(0, end - s.start_time) / 1e6, 3),
        "status": "OK" if status == STATUS_UNSET else status,
        "error": error_text(s) if status == STATUS_ERROR else None,
        "attributes": attrs,
    }
    if s.links:  # only when there are any: logs without links keep their exact shape
        entry["links"] = [{"trace_id": format(link.trace_id, "032x"), "span_id": format(link.span_id, "016x"),
                           "attributes": {k: (_clean_attribute(v) if type(v) in (tuple, float) else v)
                                          for k, v in link.attributes.items()}} for link in s.links]
    return entry


# --- small helpers ---

def attr(span: SpanRecord, key: str) -> Any:
    return span.attributes.get(key)


def error_text(span: SpanRecord) -> str | None:
    if span.status != STATUS_ERROR:
        return None
    desc = span.status_description
    if desc:
        return desc
    for ev in span.events:
        if ev.name == "exception":
            a: Mapping[str, Any] = ev.attributes
            return f"{a.get('exception.type', 'Exception')}: {a.get('exception.message', '')}"
    return "error"


def dur_ms(span: SpanRecord) -> float:
    return max(0, (span.end_time or span.start_time) - span.start_time) / 1e6


def hex_id(value: int, width: int) -> str:
    return format(value, f"0{width}x")


def iso(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def num(v: Any) -> float:
    number = finite_number(v)
    return 0.0 if number is None else number


def to_int(v: Any) -> int:
    n = num(v)
    return int(n) if n > 0 else 0


def ratio(v: Any) -> float | None:
    number = finite_number(v)
    return None if number is None else min(1.0, max(0.0, number))


def finite(value: Any) -> Any:
    """Replace NaN/inf (not valid JSON) with None, recursively."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [finite(v) for v in value]
    return value
