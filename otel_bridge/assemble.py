"""Spans -> workflow log. Pure: no I/O, no globals, no clock, no OpenTelemetry import.

``build_workflow_log(spans)`` takes the finished spans of one ticket's trace (``SpanRecord``
objects; OTel SDK ``ReadableSpan`` objects are converted) and returns the documented workflow
log (docs/workflow-log.md).
Given a ``Redactor``, the log comes back with PII hashed and free text scrubbed; the bridge
always ships the redacted form.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from otel_bridge import attributes as A
from otel_bridge import policy as P
from otel_bridge import sections as S
from otel_bridge.numbers import finite_number
from otel_bridge.pii import REDACTION_FAILED, KnownValues, Redactor
from otel_bridge.pii_keys import CONTENT_FIELDS
from otel_bridge.schema_check import drop_invalid_fields
from otel_bridge.sections import EventItem
from otel_bridge.spanrecord import SpanRecord, from_sdk_span

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
MAX_TICKET_ID = 256
DROPPED_FIELDS = "flusso.dropped_fields"  # how many fields the schema check dropped (metrics)


def build_workflow_log(
    spans: Iterable[Any],
    *,
    identification: Mapping[str, object] | None = None,
    redactor: Redactor | None = None,
    dropped_spans: int = 0,
    content: str = "hash",
) -> dict[str, Any]:
    """Build the workflow log of one ticket from its finished spans.

    ``content`` (with a ``redactor``): "hash" makes each of the ticket's texts (subject,
    description, body, messages) one token; "scrub" keeps them with every personal value inside
    replaced by its token. The mode is recorded as ``identification.content``.

    ``identification`` supplies client_id / environment / workflow_version / service_name
    (client_id is omitted when None: the collector fills it from the API key).
    ``dropped_spans`` > 0, or a missing workflow root span, yields ``outcome.complete: false``.
    """
    records = finished_records(spans)
    if not records:
        raise ValueError("build_workflow_log needs at least one finished span")
    root = S.find_root(records)
    events = S.collect_events(records)
    ticket = S.merge_ticket(events.get(A.EVENT_TICKET, []))
    marked = ticket.pop("_pii", None) or []
    ticket["ticket_id"] = _ticket_id(ticket, root)
    sections = _trace_sections(records, root, events, ticket)
    # The SDK drops events beyond its per-span limit (record.* data): that is a partial log too.
    complete = dropped_spans == 0 and all(s.dropped_events == 0 for s in records) \
        and S.attr(root, A.KIND) == A.KIND_WORKFLOW
    outcome = _outcome(events, sections, complete)
    metrics = _metrics(records, root, events, sections, outcome, dropped_spans)
    ident = {k: v for k, v in (identification or {}).items() if v is not None}
    ident.setdefault("workflow_name", S.attr(root, A.WORKFLOW_NAME) or root.name)
    experiment = {key: S.attr(root, name) for name, key in A.EXPERIMENT_KEYS.items() if S.attr(root, name) is not None}
    if experiment:
        ident["experiment"] = experiment
    log = {
        "schema_version": A.SCHEMA_VERSION_VALUE,
        "trace_id": S.hex_id(root.trace_id, 32),
        "identification": ident,
        "ticket_info": {
            "ticket_id": ticket["ticket_id"],
            "executed_at": S.iso(root.start_time),
            "execution_time_seconds": metrics["execution_time_seconds"],
        },
        "outcome": outcome.fields,
        "metrics": metrics,
        "trace": sections.trace,
    }
    if redactor is not None:
        extra = [(str(v), str(p.get("kind") or "text"))
                 for _, _, p in events.get(A.EVENT_PII, []) for v in (p.get("values") or [])]
        known = P.trace_known_values(records, ticket, marked, extra, _payload_texts(records), content)
        log = _redact(log, redactor, ticket, marked, known, content)
        ident["content"] = content  # the same object as log["identification"]
    return log


def _payload_texts(records: Sequence[SpanRecord]) -> Iterable[object]:
    """The raw text of every event payload and string attribute (where a "Name <email>" may be)."""
    for s in records:
        if not P.SAFE_ATTRIBUTES.issuperset(s.attributes):
            yield from s.attributes.values()
        for ev in s.events:
            yield ev.attributes.get(A.PAYLOAD)


def finished_records(spans: Iterable[Any]) -> list[SpanRecord]:
    """The spans that ended, as SpanRecords, by start time."""
    records = (s if isinstance(s, SpanRecord) else from_sdk_span(s) for s in spans if s is not None)
    return sorted((r for r in records if r.end_time is not None), key=lambda r: r.start_time)


def _ticket_id(ticket: Mapping[str, Any], root: SpanRecord) -> str:
    tid = str(ticket.get("ticket_id") or S.attr(root, A.TICKET_ID) or f"unknown-{S.hex_id(root.trace_id, 32)[:12]}")
    if len(tid) > MAX_TICKET_ID:  # the schema's bound: the ticket ships under a stable shorter id
        tid = f"{tid[:MAX_TICKET_ID - 13]}~{hashlib.sha256(tid.encode('utf-8', 'surrogatepass')).hexdigest()[:12]}"
    return tid


def checked_for_shipping(log: dict[str, Any]) -> list[str]:
    """Drop the fields the collector's schema would refuse (otel_bridge.schema_check), and say
    how many in the log (``metrics["flusso.dropped_fields"]``); returns their paths. A field
    may be lost, never the ticket."""
    dropped = drop_invalid_fields(log)
    if dropped and isinstance(log.get("metrics"), dict):
        log["metrics"][DROPPED_FIELDS] = len(dropped)
    return dropped


@dataclass
class _Sections:
    """The "trace" object under construction, plus what the metrics read from it."""

    trace: dict[str, Any]
    entries: list[dict[str, Any]]  # trace.spans, the root's entry included
    root_entry: dict[str, Any]
    retrieval_scores: list[float]
    retrieval_calls: int
    draft_length: Any


def _trace_sections(records: list[SpanRecord], root: SpanRecord, events: Mapping[str, list[EventItem]],
                    ticket: dict[str, Any]) -> _Sections:
    planning, output = _decisions(events.get(A.EVENT_DECISION, []))
    retrieval, scores, calls = S.retrieval_sections(events.get(A.EVENT_RETRIEVAL, []))
    drafts = [p for _, _, p in events.get(A.EVENT_DRAFT, [])]
    draft = str(drafts[-1].get("text", "")) if drafts else None
    entries = [S.span_entry(s, root.start_time) for s in records]
    draft_length = drafts[-1].get("length_chars") if drafts else None
    if not isinstance(draft_length, int) or isinstance(draft_length, bool):
        draft_length = len(draft) if draft is not None else 0
    trace = dict.fromkeys(S.TRACE_SECTIONS)
    trace.update(
        ticket=ticket,
        planning={"decisions": planning},
        react={"iterations": S.react_iterations(events.get(A.EVENT_REACT_ITERATION, []))},
        retrieval=retrieval,
        evidence=S.evidence_section(events.get(A.EVENT_EVIDENCE, [])),
        output={"draft": draft, "draft_length_chars": draft_length, "decisions": output},
        llm_calls=[p for _, _, p in events.get(A.EVENT_LLM_CALL, [])],
        spans=entries,
    )
    root_entry = entries[next(i for i, s in enumerate(records) if s is root)]
    return _Sections(trace, entries, root_entry, scores, calls, draft_length)


def _decisions(items: list[EventItem]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    planning: list[dict[str, Any]] = []
    output: list[dict[str, Any]] = []
    for span, _, payload in items:
        stage = payload.pop("stage", None) or ("planning" if S.attr(span, A.KIND) == "planner" else "output")
        (planning if stage == "planning" else output).append(payload)
    return planning, output


@dataclass
class _Outcome:
    fields: dict[str, Any]  # the log's "outcome" object
    overall_confidence: Any
    hallucination_risk: Any
    node_errors: int


def _outcome(events: Mapping[str, list[EventItem]], sections: _Sections, complete: bool) -> _Outcome:
    recorded: dict[str, Any] = {}
    for _, _, p in events.get(A.EVENT_OUTCOME, []):
        recorded.update(p)
    root_error = sections.root_entry["error"]
    node_errors = sum(1 for e in sections.entries if e is not sections.root_entry and e["status"] == "ERROR")
    status = str(recorded.pop("status", "") or "").upper()
    if root_error is not None:
        status = "FAILED"
    elif status not in VALID_STATUSES:
        status = "PARTIAL" if node_errors else "SUCCESS"
    resolution_status = recorded.pop("resolution_status", None)
    if resolution_status is None and status == "FAILED":
        resolution_status = "unresolved"
    overall_confidence = recorded.pop("overall_confidence", None)
    hallucination_risk = recorded.pop("hallucination_risk", None)
    fields = {
        "status": status,
        "resolution_status": None if resolution_status is None else str(resolution_status),
        "complete": bool(complete),
        "error": root_error,
        **recorded,
    }
    return _Outcome(fields, overall_confidence, hallucination_risk, node_errors)


def _metrics(records: list[SpanRecord], root: SpanRecord, events: Mapping[str, list[EventItem]],
             sections: _Sections, outcome: _Outcome, dropped_spans: int) -> dict[str, Any]:
    trace = sections.trace
    children = [e for e in sections.entries if e is not sections.root_entry]
    tools = [e for e in children if e["kind"] == "tool"]
    llm = trace["llm_calls"]
    iterations = trace["react"]["iterations"]
    scores = sections.retrieval_scores
    input_tokens = sum(S.to_int(p.get("input_tokens")) for p in llm)
    output_tokens = sum(S.to_int(p.get("output_tokens")) for p in llm)
    metrics = {
        "react_iterations": len(iterations),
        "overall_confidence": S.ratio(outcome.overall_confidence),
        "hallucination_risk": S.ratio(outcome.hallucination_risk),
        "execution_time_seconds": round(S.dur_ms(root) / 1000.0, 6),
        "node_durations_ms": _node_durations(children),
        "llm_calls": len(llm),
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "total_tokens": input_tokens + output_tokens,
        "cost_usd": round(sum(S.num(p.get("cost_usd")) for p in llm), 8),
        "tool_calls": len(tools),
        "tool_errors": sum(1 for e in tools if e["status"] == "ERROR"),
        "vision_results": len(trace["retrieval"].get("vision", {}).get("results", [])),
        "text_results": len(trace["retrieval"].get("text", {}).get("results", [])),
        "retrieval_top_score": round(max(scores), 6) if scores else None,
        "retrieval_mean_score": round(sum(scores) / len(scores), 6) if scores else None,
        "evidence_items": len(trace["evidence"].get("items", [])),
        "evidence_conflicts": len(trace["evidence"].get("conflicts", [])),
        "node_errors": outcome.node_errors,
        "decisions": len(trace["planning"]["decisions"]) + len(trace["output"]["decisions"]),
        "draft_length_chars": sections.draft_length,
        "span_count": len(records),
        "dropped_spans": int(dropped_spans),
        "dropped_events": sum(s.dropped_events for s in records),
        "retrieval_calls": sections.retrieval_calls,
        "mean_react_iteration_ms": (
            round(sum(S.num(i.get("duration_ms")) for i in iterations) / len(iterations), 3) if iterations else None
        ),
    }
    _apply_custom_metrics(metrics, events.get(A.EVENT_METRIC, []))
    return metrics


def _node_durations(children: list[dict[str, Any]]) -> dict[str, float]:
    out: dict[str, float] = {}
    for e in children:
        if A.NODE_NAME in e["attributes"] or A.KIND in e["attributes"]:
            out[e["name"]] = round(out.get(e["name"], 0.0) + e["duration_ms"], 3)
    return out


def _apply_custom_metrics(metrics: dict[str, Any], items: list[EventItem]) -> None:
    custom = {}
    for _, _, p in items:
        custom[str(p.get("name"))] = p.get("value")
    for name, value in custom.items():
        if isinstance(value, bool):
            value = int(value)
        if finite_number(value) is None:  # NaN, inf, 10**400, text: not a metric
            continue
        if name in OVERRIDABLE_METRICS:
            metrics[name] = S.ratio(value)
        elif name not in DERIVED_METRICS:
            metrics[name] = value


# --- redaction (the policy: otel_bridge.policy) ---

def _redact(log: dict[str, Any], r: Redactor, raw_ticket: Mapping[str, Any], marked: Sequence[str],
            known: KnownValues, content: str = "hash") -> dict[str, Any]:
    if known.over_cap:
        logger.warning("otel_bridge: ticket %s has %d person values beyond the %d known ones: its free text is "
                       "hashed whole", log["ticket_info"]["ticket_id"], known.over_cap, len(known))
        r = P.WholeText(r)
    trace = log["trace"]
    trace["ticket"] = _redact_ticket(trace["ticket"], r, known, {str(m).lower() for m in marked}, content)
    for key in S.FREE_SECTIONS:
        trace[key] = P.redact_section(key, trace[key], r, known)
    for entry in trace["spans"]:
        P.redact_span_entry(entry, r, known)
    # Keys beyond the known sections that callers may have added.
    for key in list(trace):
        if key not in S.TRACE_SECTIONS:
            trace[key] = r.scrub_value(trace[key], known)
    out = log["outcome"]
    for key in list(out):
        if key not in ("status", "complete"):
            out[key] = r.scrub_value(out[key], known)
    # Metric names and node names are identifiers, and a metric stays a number: a node called
    # validate_address is not an address.
    metrics = log["metrics"]
    log["metrics"] = {(k if k in DERIVED_METRICS else str(r.scrub_identifier(k, known))): v for k, v in metrics.items()}
    durations = metrics.get("node_durations_ms")
    if isinstance(durations, dict):
        log["metrics"]["node_durations_ms"] = {str(r.scrub_identifier(str(k), known)): v for k, v in durations.items()}
    return log


def _redact_ticket(ticket: Mapping[str, Any], r: Redactor, known: KnownValues, marked: set[str],
                   content: str = "hash") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in ticket.items():
        if k == "ticket_id":
            out[k] = v
        elif str(k).lower() in marked:
            out[r.scrub_text(str(k), known)] = r.hash_field("text", v)
        elif content == "scrub" and str(k).lower() in CONTENT_FIELDS:
            out[k] = r.scrub_value(v, known)  # the text kept, its personal values tokens
        else:
            scrubbed = r.scrub_value({k: v}, known)
            # A mapping in gives a mapping out, or the failure marker (the raw key is not kept).
            out.update(scrubbed if isinstance(scrubbed, dict) else {REDACTION_FAILED: scrubbed})
    return out


finite = S.finite
