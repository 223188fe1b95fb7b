"""Spans -> workflow log. Pure: no I/O, no globals, no clock.

``build_workflow_log(spans)`` takes the finished spans of one ticket's trace (OTel SDK
``ReadableSpan`` objects) and returns the documented workflow log (docs/workflow-log.md).
Given a ``Redactor``, the log comes back with PII hashed and free text scrubbed; the bridge
always ships the redacted form.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping, Sequence

from otel_bridge import attributes as A
from otel_bridge import sections as S
from otel_bridge.pii import Redactor, known_values

logger = logging.getLogger(__name__)

# Names of the metrics the assembler always derives (documented in docs/workflow-log.md).
DERIVED_METRICS = (
    "react_iterations", "overall_confidence", "hallucination_risk", "execution_time_seconds",
    "node_durations_ms", "llm_calls", "input_tokens", "output_tokens", "total_tokens",
    "cost_usd", "tool_calls", "tool_errors", "vision_results", "text_results",
    "retrieval_top_score", "retrieval_mean_score", "evidence_items", "evidence_conflicts",
    "node_errors", "decisions", "draft_length_chars", "span_count", "dropped_spans",
    "retrieval_calls", "mean_react_iteration_ms", "dropped_events",
)
# Derived metrics a caller may override through record.metric() / record.outcome().
OVERRIDABLE_METRICS = {"overall_confidence", "hallucination_risk"}
VALID_STATUSES = ("SUCCESS", "PARTIAL", "FAILED")
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
    root = S.find_root(spans)
    # The SDK drops events beyond its per-span limit (record.* data): that is a partial log too.
    dropped_events = sum(int(getattr(s, "dropped_events", 0) or 0) for s in spans)
    complete = dropped_spans == 0 and dropped_events == 0 and S.attr(root, A.KIND) == A.KIND_WORKFLOW
    t0 = root.start_time
    events = S.collect_events(spans)

    ticket = S.merge_ticket(events.get(A.EVENT_TICKET, []))
    marked = ticket.pop("_pii", None) or []
    ticket_id = str(ticket.get("ticket_id") or S.attr(root, A.TICKET_ID) or f"unknown-{S.hex_id(root.context.trace_id, 32)[:12]}")
    ticket["ticket_id"] = ticket_id

    planning_decisions, output_decisions = [], []
    for span, ev, payload in events.get(A.EVENT_DECISION, []):
        stage = payload.pop("stage", None) or ("planning" if S.attr(span, A.KIND) == "planner" else "output")
        (planning_decisions if stage == "planning" else output_decisions).append(payload)

    iterations = S.react_iterations(events.get(A.EVENT_REACT_ITERATION, []))
    retrieval, all_scores, retrieval_calls = S.retrieval_sections(events.get(A.EVENT_RETRIEVAL, []))
    evidence = S.evidence_section(events.get(A.EVENT_EVIDENCE, []))
    llm = [p for _, _, p in events.get(A.EVENT_LLM_CALL, [])]
    drafts = [p for _, _, p in events.get(A.EVENT_DRAFT, [])]
    draft = str(drafts[-1].get("text", "")) if drafts else None
    draft_length = drafts[-1].get("length_chars") if drafts else None
    if not isinstance(draft_length, int) or isinstance(draft_length, bool):
        draft_length = len(draft) if draft is not None else 0
    outcome_rec: dict = {}
    for _, _, p in events.get(A.EVENT_OUTCOME, []):
        outcome_rec.update(p)
    custom = {}
    for _, _, p in events.get(A.EVENT_METRIC, []):
        custom[str(p.get("name"))] = p.get("value")

    # One pass over the spans; everything below reads these entries.
    entries = [S.span_entry(s, t0) for s in spans]
    root_entry = entries[next(i for i, s in enumerate(spans) if s is root)]
    children = [e for e in entries if e is not root_entry]
    root_error = root_entry["error"]
    node_errors = sum(1 for e in children if e["status"] == "ERROR")
    tools = [e for e in children if e["kind"] == "tool"]

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

    duration_s = S.dur_ms(root) / 1000.0
    input_tokens = sum(S.to_int(p.get("input_tokens")) for p in llm)
    output_tokens = sum(S.to_int(p.get("output_tokens")) for p in llm)
    node_durations: dict[str, float] = {}
    for e in children:
        if A.NODE_NAME in e["attributes"] or A.KIND in e["attributes"]:
            node_durations[e["name"]] = round(node_durations.get(e["name"], 0.0) + e["duration_ms"], 3)

    metrics = {
        "react_iterations": len(iterations),
        "overall_confidence": S.ratio(overall_confidence),
        "hallucination_risk": S.ratio(hallucination_risk),
        "execution_time_seconds": round(duration_s, 6),
        "node_durations_ms": node_durations,
        "llm_calls": len(llm),
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "total_tokens": input_tokens + output_tokens,
        "cost_usd": round(sum(S.num(p.get("cost_usd")) for p in llm), 8),
        "tool_calls": len(tools),
        "tool_errors": sum(1 for e in tools if e["status"] == "ERROR"),
        "vision_results": len(retrieval.get("vision", {}).get("results", [])),
        "text_results": len(retrieval.get("text", {}).get("results", [])),
        "retrieval_top_score": round(max(all_scores), 6) if all_scores else None,
        "retrieval_mean_score": round(sum(all_scores) / len(all_scores), 6) if all_scores else None,
        "evidence_items": len(evidence.get("items", [])),
        "evidence_conflicts": len(evidence.get("conflicts", [])),
        "node_errors": node_errors,
        "decisions": len(planning_decisions) + len(output_decisions),
        "draft_length_chars": draft_length,
        "span_count": len(spans),
        "dropped_spans": int(dropped_spans),
        "dropped_events": dropped_events,
        "retrieval_calls": retrieval_calls,
        "mean_react_iteration_ms": (
            round(sum(S.num(i.get("duration_ms")) for i in iterations) / len(iterations), 3) if iterations else None
        ),
    }
    for name, value in custom.items():
        if isinstance(value, bool):
            value = int(value)
        if not isinstance(value, (int, float)) or not math.isfinite(value):
            continue
        if name in OVERRIDABLE_METRICS:
            metrics[name] = S.ratio(value)
        elif name not in DERIVED_METRICS:
            metrics[name] = value

    ident = {k: v for k, v in (identification or {}).items() if v is not None}
    ident.setdefault("workflow_name", S.attr(root, A.WORKFLOW_NAME) or root.name)
    trace_id = S.hex_id(root.context.trace_id, 32)

    log = {
        "schema_version": A.SCHEMA_VERSION_VALUE,
        "trace_id": trace_id,
        "identification": ident,
        "ticket_info": {
            "ticket_id": ticket_id,
            "executed_at": S.iso(t0),
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
            "spans": entries,
        },
    }
    if redactor is not None:
        extra = [(str(v), str(p.get("kind") or "text"))
                 for _, _, p in events.get(A.EVENT_PII, []) for v in (p.get("values") or [])]
        log = _redact(log, redactor, ticket, marked, extra)
    return log


# --- redaction ---

def _redact(log: dict, r: Redactor, raw_ticket: Mapping, marked: Sequence[str],
            extra: Sequence[tuple[str, str]] = ()) -> dict:
    known = known_values(raw_ticket, marked, extra)
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
        if str(entry["kind"] or "").startswith("otel."):  # host spans: names like "GET /u/a@b.c"
            entry["name"] = r.scrub_text(entry["name"], known)
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


finite = S.finite
