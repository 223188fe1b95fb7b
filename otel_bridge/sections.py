"""Pure helpers of the assembler: reading spans and events, building the trace sections.

No I/O, no globals. Inputs are OTel SDK ``ReadableSpan`` objects (duck-typed: name,
context, parent, start_time, end_time, status, attributes, events, kind).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from datetime import datetime, timezone

from otel_bridge import attributes as A

MAX_SPAN_ATTRIBUTES = 32

# --- sections ---

def find_root(spans: Sequence):
    for s in spans:
        if s.parent is None and attr(s, A.KIND) == A.KIND_WORKFLOW:
            return s
    for s in spans:
        if attr(s, A.KIND) == A.KIND_WORKFLOW:
            return s
    return spans[0]


def collect_events(spans: Sequence) -> dict[str, list]:
    out: dict[str, list] = {}
    items = []
    for s in spans:
        for ev in s.events or ():
            if ev.name.startswith("flusso."):
                items.append((ev.timestamp, s, ev))
    items.sort(key=lambda t: t[0])
    for _, s, ev in items:
        raw = (ev.attributes or {}).get(A.PAYLOAD)
        try:
            payload = json.loads(raw) if isinstance(raw, str) else {}
        except ValueError:
            payload = {"unparsed": raw}
        if not isinstance(payload, dict):
            payload = {"value": payload}
        out.setdefault(ev.name, []).append((s, ev, payload))
    return out


def merge_ticket(items: list) -> dict:
    ticket: dict = {}
    for _, _, p in items:
        marked = p.pop("_pii", None)
        ticket.update(p)
        if marked:
            ticket.setdefault("_pii", []).extend(marked)
    return ticket


def react_iterations(items: list) -> list[dict]:
    out = []
    last_ts: dict[int, int] = {}
    for n, (span, ev, p) in enumerate(items, start=1):
        sid = span.context.span_id
        prev = last_ts.get(sid, span.start_time)
        last_ts[sid] = ev.timestamp
        entry = {"n": n}
        entry.update(p)
        if entry.get("duration_ms") is None:
            entry["duration_ms"] = round(max(0, ev.timestamp - prev) / 1e6, 3)
        ai = entry.get("action_input")
        if ai is not None and not isinstance(ai, str):
            entry["action_input"] = json.dumps(ai, ensure_ascii=False, default=str)
        out.append(entry)
    return out


def retrieval_sections(items: list) -> tuple[dict, list[float], int]:
    out: dict[str, dict] = {}
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
            if isinstance(r, dict) and isinstance(r.get("score"), (int, float)) and not isinstance(r.get("score"), bool):
                scores.append(float(r["score"]))
    return out, scores, len(items)


def evidence_section(items: list) -> dict:
    ev: dict = {"items": [], "conflicts": [], "resolution": None}
    for _, _, p in items:
        ev["items"].extend(p.pop("items", None) or [])
        ev["conflicts"].extend(p.pop("conflicts", None) or [])
        if p.get("resolution") is not None:
            ev["resolution"] = p.pop("resolution")
        p.pop("resolution", None)
        ev.update(p)
    return ev


def _clean_attribute(v):
    if isinstance(v, tuple):
        return [None if isinstance(x, float) and not math.isfinite(x) else x for x in v]
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def span_entry(s, t0: int) -> dict:
    source = s.attributes or {}
    items = source.items()
    if len(source) > MAX_SPAN_ATTRIBUTES:
        items = list(items)[:MAX_SPAN_ATTRIBUTES]
    attrs = {k: (_clean_attribute(v) if type(v) in (tuple, float) else v) for k, v in items}
    if len(source) > MAX_SPAN_ATTRIBUTES:
        attrs["flusso.attributes_dropped"] = len(source) - MAX_SPAN_ATTRIBUTES
    kind = source.get(A.KIND) or ("otel." + s.kind.name.lower() if getattr(s, "kind", None) is not None else None)
    status = span_status(s)
    parent = s.parent
    return {
        "name": s.name,
        "kind": kind,
        "span_id": format(s.context.span_id, "016x"),
        "parent_span_id": format(parent.span_id, "016x") if parent is not None else None,
        "start_offset_ms": round((s.start_time - t0) / 1e6, 3),
        "duration_ms": round(max(0, s.end_time - s.start_time) / 1e6, 3),
        "status": "OK" if status == "UNSET" else status,
        "error": error_text(s) if status == "ERROR" else None,
        "attributes": attrs,
    }


# --- small helpers ---

def attr(span, key):
    attrs = span.attributes
    return attrs.get(key) if attrs else None


def span_status(span) -> str:
    code = getattr(span.status, "status_code", None)
    return getattr(code, "name", "UNSET") if code is not None else "UNSET"


def error_text(span) -> str | None:
    if span_status(span) != "ERROR":
        return None
    desc = span.status.description
    if desc:
        return desc
    for ev in span.events or ():
        if ev.name == "exception":
            a = ev.attributes or {}
            return f"{a.get('exception.type', 'Exception')}: {a.get('exception.message', '')}"
    return "error"


def dur_ms(span) -> float:
    return max(0, (span.end_time or span.start_time) - span.start_time) / 1e6


def hex_id(value: int, width: int) -> str:
    return format(value, f"0{width}x")


def iso(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def num(v) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        return 0.0
    return float(v)


def to_int(v) -> int:
    n = num(v)
    return int(n) if n > 0 else 0


def ratio(v):
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        return None
    return min(1.0, max(0.0, float(v)))


def finite(value):
    """Replace NaN/inf (not valid JSON) with None, recursively."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [finite(v) for v in value]
    return value
