"""Spans -> workflow log. Pure: no I/O, no globals, no clock.

``build_workflow_log(spans)`` takes the finished spans of one ticket's trace (OTel SDK
``ReadableSpan`` objects) and returns the documented workflow log (docs/workflow-log.md).
Given a ``Redactor``, the log comes back with PII hashed and free text scrubbed; the bridge
always ships the redacted form.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timezone

from otel_bridge import attributes as A
from otel_bridge.pii import Redactor, known_values

logger = logging.getLogger(__name__)

# Names of the metrics the assembler always derives (documented in docs/workflow-log.md).
DERIVED_METRICS = (
    "react_iterations", "overall_confidence", "hallucination_risk", "execution_time_seconds",
    "node_durations_ms", "llm_calls", "input_tokens", "output_tokens", "total_tokens",
    "cost_usd", "tool_calls", "tool_errors", "vision_results", "text_results",
    "retrieval_top_score", "retrieval_mean_score", "evidence_items", "evidence_conflicts",
    "node_errors", "decisions", "draft_length_chars", "span_count", "dropped_spans",
    "retrieval_calls", "mean_react_iteration_ms",
)
# Derived metrics a caller may override through record.metric() / record.outcome().
OVERRIDABLE_METRICS = {"overall_confidence", "hallucination_risk"}
VALID_STATUSES = ("SUCCESS", "PARTIAL", "FAILED")
_MAX_SPAN_ATTRIBUTES = 32
# Attributes the bridge itself writes from code (names, kinds, counts): never personal data,
# so not scanned (this keeps per-ticket work in the worker small).
_SAFE_ATTRIBUTES = frozenset({
    A.KIND, A.WORKFLOW_NAME, A.NODE_NAME, A.TICKET_ID, A.GEN_AI_OPERATION_NAME, A.GEN_AI_AGENT_NAME,
    A.GEN_AI_TOOL_NAME, A.GEN_AI_REQUEST_MODEL, A.GEN_AI_USAGE_INPUT_TOKENS, A.GEN_AI_USAGE_OUTPUT_TOKENS,
    A.GEN_AI_DATA_SOURCE_ID,
})


def build_workflow_log(
    spans: Iterable,
    *,
    identification: Mapping[str, object] | None = None,
    redactor: Redactor | None = None,
    dropped_spans: int = 0,
) -> dict:
    """Build the workflow log of one ticket from its finished spans.

    ``identification`` supplies client_id / environment / workflow_version / service_name
    (client_id is omitted when None: the collector fills it from the API key).
    ``dropped_spans`` > 0, or a missing workflow root span, yields ``outcome.complete: false``.
    """
    spans = sorted((s for s in spans if s is not None and s.end_time is not None), key=lambda s: s.start_time)
    if not spans:
        raise ValueError("build_workflow_log needs at least one finished span")
    root = _find_root(spans)
    complete = dropped_spans == 0 and _attr(root, A.KIND) == A.KIND_WORKFLOW
    t0 = root.start_time
    events = _collect_events(spans)

    ticket = _merge_ticket(events.get(A.EVENT_TICKET, []))
    marked = ticket.pop("_pii", None) or []
    ticket_id = str(ticket.get("ticket_id") or _attr(root, A.TICKET_ID) or f"unknown-{_hex(root.context.trace_id, 32)[:12]}")
    ticket["ticket_id"] = ticket_id

    planning_decisions, output_decisions = [], []
    for span, ev, payload in events.get(A.EVENT_DECISION, []):
        stage = payload.pop("stage", None) or ("planning" if _attr(span, A.KIND) == "planner" else "output")
        (planning_decisions if stage == "planning" else output_decisions).append(payload)

    iterations = _react_iterations(events.get(A.EVENT_REACT_ITERATION, []))
    retrieval, all_scores, retrieval_calls = _retrieval(events.get(A.EVENT_RETRIEVAL, []))
    evidence = _evidence(events.get(A.EVENT_EVIDENCE, []))
    llm = [p for _, _, p in events.get(A.EVENT_LLM_CALL, [])]
    drafts = [p for _, _, p in events.get(A.EVENT_DRAFT, [])]
    draft = str(drafts[-1].get("text", "")) if drafts else None
    outcome_rec: dict = {}
    for _, _, p in events.get(A.EVENT_OUTCOME, []):
        outcome_rec.update(p)
    custom = {}
    for _, _, p in events.get(A.EVENT_METRIC, []):
        custom[str(p.get("name"))] = p.get("value")

    children = [s for s in spans if s is not root]
    root_error = _error_text(root)
    node_errors = sum(1 for s in children if _status(s) == "ERROR")
    tools = [s for s in children if _attr(s, A.KIND) == "tool"]

    status = str(outcome_rec.pop("status", "") or "").upper()
    if root_error is not None:
        status = "FAILED"
    elif status not in VALID_STATUSES:
        status = "PARTIAL" if node_errors else "SUCCESS"
    resolution_status = outcome_rec.pop("resolution_status", None)
    if resolution_status is None and status == "FAILED":
        resolution_status = "unresolved"
    overall_confidence = outcome_rec.pop("overall_confidence", None)
    hallucination_risk = outcome_rec.pop("hallucination_risk", None)

    duration_s = _dur_ms(root) / 1000.0
    input_tokens = sum(_int(p.get("input_tokens")) for p in llm)
    output_tokens = sum(_int(p.get("output_tokens")) for p in llm)
    node_durations: dict[str, float] = {}
    for s in children:
        if _attr(s, A.NODE_NAME) is not None or _attr(s, A.KIND) is not None:
            node_durations[s.name] = round(node_durations.get(s.name, 0.0) + _dur_ms(s), 3)

    metrics = {
        "react_iterations": len(iterations),
        "overall_confidence": _ratio(overall_confidence),
        "hallucination_risk": _ratio(hallucination_risk),
        "execution_time_seconds": round(duration_s, 6),
        "node_durations_ms": node_durations,
        "llm_calls": len(llm),
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "total_tokens": input_tokens + output_tokens,
        "cost_usd": round(sum(_num(p.get("cost_usd")) for p in llm), 8),
        "tool_calls": len(tools),
        "tool_errors": sum(1 for s in tools if _status(s) == "ERROR"),
        "vision_results": len(retrieval.get("vision", {}).get("results", [])),
        "text_results": len(retrieval.get("text", {}).get("results", [])),
        "retrieval_top_score": round(max(all_scores), 6) if all_scores else None,
        "retrieval_mean_score": round(sum(all_scores) / len(all_scores), 6) if all_scores else None,
        "evidence_items": len(evidence.get("items", [])),
        "evidence_conflicts": len(evidence.get("conflicts", [])),
        "node_errors": node_errors,
        "decisions": len(planning_decisions) + len(output_decisions),
        "draft_length_chars": len(draft) if draft is not None else 0,
        "span_count": len(spans),
        "dropped_spans": int(dropped_spans),
        "retrieval_calls": retrieval_calls,
        "mean_react_iteration_ms": (
            round(sum(_num(i.get("duration_ms")) for i in iterations) / len(iterations), 3) if iterations else None
        ),
    }
    for name, value in custom.items():
        if isinstance(value, bool):
            value = int(value)
        if not isinstance(value, (int, float)) or not math.isfinite(value):
            continue
        if name in OVERRIDABLE_METRICS:
            metrics[name] = _ratio(value)
        elif name not in DERIVED_METRICS:
            metrics[name] = value

    ident = {k: v for k, v in (identification or {}).items() if v is not None}
    ident.setdefault("workflow_name", _attr(root, A.WORKFLOW_NAME) or root.name)
    trace_id = _hex(root.context.trace_id, 32)

    log = {
        "schema_version": A.SCHEMA_VERSION_VALUE,
        "trace_id": trace_id,
        "identification": ident,
        "ticket_info": {
            "ticket_id": ticket_id,
            "executed_at": _iso(t0),
            "execution_time_seconds": round(duration_s, 6),
        },
        "outcome": {
            "status": status,
            "resolution_status": None if resolution_status is None else str(resolution_status),
            "complete": bool(complete),
            "error": root_error,
            **outcome_rec,
        },
        "metrics": metrics,
        "trace": {
            "ticket": ticket,
            "planning": {"decisions": planning_decisions},
            "react": {"iterations": iterations},
            "retrieval": retrieval,
            "evidence": evidence,
            "output": {
                "draft": draft,
                "draft_length_chars": metrics["draft_length_chars"],
                "decisions": output_decisions,
            },
            "llm_calls": llm,
            "spans": [_span_entry(s, t0) for s in spans],
        },
    }
    if redactor is not None:
        log = _redact(log, redactor, ticket, marked)
    return log


# --- sections ---

def _find_root(spans: Sequence):
    for s in spans:
        if s.parent is None and _attr(s, A.KIND) == A.KIND_WORKFLOW:
            return s
    for s in spans:
        if _attr(s, A.KIND) == A.KIND_WORKFLOW:
            return s
    return spans[0]


def _collect_events(spans: Sequence) -> dict[str, list]:
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


def _merge_ticket(items: list) -> dict:
    ticket: dict = {}
    for _, _, p in items:
        marked = p.pop("_pii", None)
        ticket.update(p)
        if marked:
            ticket.setdefault("_pii", []).extend(marked)
    return ticket


def _react_iterations(items: list) -> list[dict]:
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


def _retrieval(items: list) -> tuple[dict, list[float], int]:
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


def _evidence(items: list) -> dict:
    ev: dict = {"items": [], "conflicts": [], "resolution": None}
    for _, _, p in items:
        ev["items"].extend(p.pop("items", None) or [])
        ev["conflicts"].extend(p.pop("conflicts", None) or [])
        if p.get("resolution") is not None:
            ev["resolution"] = p.pop("resolution")
        p.pop("resolution", None)
        ev.update(p)
    return ev


def _span_entry(s, t0: int) -> dict:
    attrs = {}
    source = s.attributes or {}
    for i, (k, v) in enumerate(source.items()):
        if i >= _MAX_SPAN_ATTRIBUTES:
            attrs["flusso.attributes_dropped"] = len(source) - _MAX_SPAN_ATTRIBUTES
            break
        if isinstance(v, tuple):
            v = [None if isinstance(x, float) and not math.isfinite(x) else x for x in v]
        elif isinstance(v, float) and not math.isfinite(v):
            v = None
        attrs[k] = v
    kind = source.get(A.KIND) or ("otel." + s.kind.name.lower() if getattr(s, "kind", None) is not None else None)
    status = _status(s)
    return {
        "name": s.name,
        "kind": kind,
        "span_id": _hex(s.context.span_id, 16),
        "parent_span_id": _hex(s.parent.span_id, 16) if s.parent is not None else None,
        "start_offset_ms": round((s.start_time - t0) / 1e6, 3),
        "duration_ms": round(_dur_ms(s), 3),
        "status": "OK" if status == "UNSET" else status,
        "error": _error_text(s) if status == "ERROR" else None,
        "attributes": attrs,
    }


# --- redaction ---

def _redact(log: dict, r: Redactor, raw_ticket: Mapping, marked: Sequence[str]) -> dict:
    known = known_values(raw_ticket, marked)
    marked_l = {str(m).lower() for m in marked}
    trace = log["trace"]
    ticket = {}
    for k, v in trace["ticket"].items():
        if k == "ticket_id":
            ticket[k] = v
        elif str(k).lower() in marked_l:
            ticket[r.scrub_text(str(k), known)] = r.hash_field("text", v)
        else:
            ticket.update(r.scrub_value({k: v}, known))
    trace["ticket"] = ticket
    for key in ("planning", "react", "retrieval", "evidence", "output", "llm_calls"):
        trace[key] = r.scrub_value(trace[key], known)
    for entry in trace["spans"]:  # ids, offsets and status are structural: left as they are
        entry["error"] = r.scrub_value(entry["error"], known)
        attrs = entry["attributes"]
        if not _SAFE_ATTRIBUTES.issuperset(attrs):
            entry["attributes"] = {
                k: v for k, v in (
                    (k, v) if k in _SAFE_ATTRIBUTES else (r.scrub_text(k, known), r.scrub_value(v, known))
                    for k, v in attrs.items())
            }
    # Keys outside the six seed sections that callers may have added.
    for key in list(trace):
        if key not in ("ticket", "planning", "react", "retrieval", "evidence", "output", "llm_calls", "spans"):
            trace[key] = r.scrub_value(trace[key], known)
    out = log["outcome"]
    for key in list(out):
        if key not in ("status", "complete"):
            out[key] = r.scrub_value(out[key], known)
    log["metrics"] = {
        (k if k in DERIVED_METRICS else r.scrub_text(k, known)): (r.scrub_value(v, known) if k == "node_durations_ms" else v)
        for k, v in log["metrics"].items()
    }
    return log


# --- small helpers ---

def _attr(span, key):
    attrs = span.attributes
    return attrs.get(key) if attrs else None


def _status(span) -> str:
    code = getattr(span.status, "status_code", None)
    return getattr(code, "name", "UNSET") if code is not None else "UNSET"


def _error_text(span) -> str | None:
    if _status(span) != "ERROR":
        return None
    desc = span.status.description
    if desc:
        return desc
    for ev in span.events or ():
        if ev.name == "exception":
            a = ev.attributes or {}
            return f"{a.get('exception.type', 'Exception')}: {a.get('exception.message', '')}"
    return "error"


def _dur_ms(span) -> float:
    return max(0, (span.end_time or span.start_time) - span.start_time) / 1e6


def _hex(value: int, width: int) -> str:
    return format(value, f"0{width}x")


def _iso(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _num(v) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        return 0.0
    return float(v)


def _int(v) -> int:
    n = _num(v)
    return int(n) if n > 0 else 0


def _ratio(v):
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
