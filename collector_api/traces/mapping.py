"""Span conventions -> what the bridge's builder reads. Pure: no I/O.

`prepare(records, ...)` picks the trace's root, gives each span the bridge's `flusso.kind`
from whichever convention it carries (collector_api.traces.conventions: OTel GenAI, OpenInference,
OpenLLMetry; precedence `flusso.*` > GenAI > OpenInference > OpenLLMetry > generic), and adds
the `flusso.*` events the builder derives sections and metrics from (`flusso.llm_call` per LLM
span with model, tokens and cost, `flusso.retrieval` per retriever span, `flusso.ticket` on the
root). `finish(log, ...)` then applies the rules the builder does not know:
`identification.source`, `outcome.status` (FAILED when the root errored, PARTIAL when another
span did, `flusso.status` overrides), `outcome.complete`, `react_iterations` as the LLM calls
under an agent span, and no metric the spans cannot tell. Nothing depends on arrival order:
spans are ordered by (start, span id) before anything is derived. Docs: docs/collector.md.
"""
from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

import otel_bridge.attributes as A
from collector_api.traces.conventions import combine, openllmetry
from collector_api.traces.conventions.content import is_content
from collector_api.traces.conventions.genai import KIND_BY_OPERATION as KIND_BY_OPERATION
from collector_api.traces.conventions.output import final_answer
from collector_api.traces.prices import PriceTable
from otel_bridge.sections import find_root as find_bridge_root
from otel_bridge.spanrecord import STATUS_ERROR, STATUS_UNSET, EventRecord, SpanRecord

SOURCE = "otlp-traces"
LLM_KINDS = frozenset({"llm"})
# Metrics of the bridge's log that the spans cannot tell: absent, not zero.
UNKNOWN_METRICS = ("overall_confidence", "hallucination_risk", "evidence_items", "evidence_conflicts", "decisions",
                   "draft_length_chars", "mean_react_iteration_ms", "vision_results")
DEFAULT_TICKET_ATTRIBUTE = A.TICKET_ID
# Where a trace's session id may be (after the tenant's ticket attribute), by precedence.
SESSION_ATTRIBUTES = ("session.id", "gen_ai.conversation.id", *openllmetry.SESSION_KEYS)


def find_root(records: Sequence[SpanRecord]) -> tuple[SpanRecord, bool]:
    """(the root, whether it is a true root: no parent), by the bridge's one rule
    (otel_bridge.spantree, through sections.find_root): a span without a parent, else the
    earliest whose parent did not arrive; the workflow kind first."""
    root = find_bridge_root(records)
    return root, root.parent_span_id is None


def is_bridge_root(root: SpanRecord) -> bool:
    """A root the bridge's @workflow made: its log comes over /v1/logs."""
    return root.attributes.get(A.KIND) == A.KIND_WORKFLOW and A.WORKFLOW_NAME in root.attributes


def _event(name: str, ts: int, payload: Mapping[str, Any]) -> EventRecord:
    try:  # orjson: ~5x faster; integers beyond 64 bits (a hostile token count) need the stdlib
        text = orjson.dumps(payload, default=str).decode()
    except (TypeError, orjson.JSONEncodeError):
        text = json.dumps(payload, default=str)
    return EventRecord(name, ts, {A.PAYLOAD: text})


def _llm_payload(s: SpanRecord, f: Mapping[str, Any], prices: PriceTable) -> dict[str, Any]:
    t = combine.tokens(f)
    cost = f.get("cost")  # flusso.llm.cost_usd, else OpenInference llm.cost.*
    if cost is None and t.split_known and (t.input is not None or t.output is not None):
        cost = prices.cost(f.get("model"), t.input or 0, t.output or 0, t.cache_read, t.cache_write)
    payload = {"model": f.get("model"), "provider": f.get("provider"), "input_tokens": t.input,
               "output_tokens": t.output, "cost_usd": cost, "span_id": format(s.span_id, "016x")}
    if t.cache_read:
        payload["cache_read_input_tokens"] = t.cache_read
    if t.cache_write:
        payload["cache_creation_input_tokens"] = t.cache_write
    return {k: v for k, v in payload.items() if v is not None}


def _retrieval_payload(f: Mapping[str, Any]) -> dict[str, Any]:
    query = f.get("query")
    payload = {"source": "text", "query": query if isinstance(query, str) else None,
               "results": list(f.get("documents") or ())}
    if f.get("data_source") is not None:
        payload["data_source"] = f["data_source"]
    return payload


def _scalar(value: Any) -> str | None:
    if isinstance(value, (str, int)) and not isinstance(value, bool) and str(value).strip():
        return str(value).strip()[:256]
    return None


def _first_attribute(records: Sequence[SpanRecord], root: SpanRecord, names: Sequence[str]) -> str | None:
    """The first of `names` any span carries: the root first, then the others (ordered by start,
    so arrival order does not matter)."""
    ordered = [root, *(r for r in records if r is not root)]
    for name in names:
        for r in ordered:
            value = _scalar(r.attributes.get(name))
            if value is not None:
                return value
    return None


def ticket_id(records: Sequence[SpanRecord], root: SpanRecord, attribute: str | None) -> str:
    """The tenant's ticket attribute (default flusso.ticket_id), else a session id (`session.id`,
    `gen_ai.conversation.id`, OpenLLMetry's association `session_id`...), else the trace id: on
    the root first, then on any span (ordered by start, so arrival order does not matter)."""
    value = _first_attribute(records, root, (attribute or DEFAULT_TICKET_ATTRIBUTE, *SESSION_ATTRIBUTES))
    return value if value is not None else format(root.trace_id, "032x")


def _ticket_payload(records: Sequence[SpanRecord], root: SpanRecord, attribute: str | None,
                    user: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {}
    for r in records:
        for key, value in r.attributes.items():
            if key.startswith("flusso.ticket."):
                payload.setdefault(key.removeprefix("flusso.ticket."), value)
    if user is not None:
        payload.setdefault("user_id", user)  # hashed on arrival (traces_decode)
    payload["ticket_id"] = ticket_id(records, root, attribute)
    conversation = _first_attribute(records, root, SESSION_ATTRIBUTES)
    if conversation is not None:  # the session of the ticket (collector_api.contract.sessions)
        payload.setdefault("conversation_id", conversation)
    return payload


@dataclass(frozen=True)
class Prepared:
    records: list[SpanRecord]
    root: SpanRecord
    true_root: bool
    agents: frozenset[int] = frozenset()  # span ids of agent spans (the root's kind became "workflow")


def _mapped(r: SpanRecord, f: Mapping[str, Any], kind: str | None, events: list[EventRecord]) -> SpanRecord:
    """`r` with its kind, the tool's name and id under the GenAI names, content attributes last
    (the builder keeps a span's first attributes), an ``error.type`` as an error status."""
    head: dict[str, Any] = {A.KIND: kind} if kind is not None else {}
    if kind == "tool":
        for name, field in ((A.GEN_AI_TOOL_NAME, "tool_name"), ("gen_ai.tool.call.id", "tool_call_id")):
            if f.get(field) is not None:
                head[name] = f[field]
    attrs = r.attributes
    ordered = {**head, **{k: v for k, v in attrs.items() if k not in head and not is_content(k)},
               **{k: v for k, v in attrs.items() if k not in head and is_content(k)}}
    status, description = r.status, r.status_description
    if status == STATUS_UNSET and f.get("error") is not None:
        status, description = STATUS_ERROR, description or str(f["error"])
    # SpanRecord(...) directly: dataclasses.replace inspects the fields on every call (~5 us per span)
    return SpanRecord(r.name, r.trace_id, r.span_id, r.parent_span_id, r.start_time, r.end_time, status,
                      description, ordered, tuple(events), r.kind, r.dropped_events, r.links)


def _draft_event(records: list[SpanRecord], root: SpanRecord, all_facts: list[dict[str, Any]],
                 redact: Callable[[str], str] | None) -> list[EventRecord]:
    """The trace's final answer as the bridge's draft event (the log's draft response), if any,
    redacted like the bridge's draft once decoded (its JSON escapes hid values from the pass on
    arrival: ``\u0040`` is an '@')."""
    llm = [r for r, f in zip(records, all_facts, strict=True) if f.get("kind") in LLM_KINDS]
    answer = final_answer(records, root, llm)
    if answer is None:
        return []
    if redact is not None:
        answer = redact(answer)
    return [_event(A.EVENT_DRAFT, root.end_time or root.start_time, {"text": answer, "length_chars": len(answer)})]


def prepare(records: list[SpanRecord], prices: PriceTable, ticket_attribute: str | None,
            redact: Callable[[str], str] | None = None) -> Prepared:
    """`records` (finished) with the bridge's kinds and flusso.* events added; `redact` is applied
    to the final answer that becomes the draft."""
    records = sorted(records, key=lambda r: (r.start_time, r.span_id))
    root, true_root = find_root(records)
    all_facts = [combine.facts(r) for r in records]
    user = next((f["user_id"] for f in [all_facts[records.index(root)], *all_facts] if "user_id" in f), None)
    out, agents = [], set()
    for r, f in zip(records, all_facts, strict=True):
        kind = f.get("kind")
        if kind == "agent":
            agents.add(r.span_id)
        events = list(r.events)
        if r is root:
            kind = A.KIND_WORKFLOW
            events.append(_event(A.EVENT_TICKET, r.start_time, _ticket_payload(records, root, ticket_attribute, user)))
            events += _draft_event(records, root, all_facts, redact)
        elif kind == A.KIND_WORKFLOW:
            kind = "chain"  # one workflow per log: the root
        end = r.end_time or r.start_time
        if kind in LLM_KINDS:
            events.append(_event(A.EVENT_LLM_CALL, end, _llm_payload(r, f, prices)))
        elif kind == "retriever":
            events.append(_event(A.EVENT_RETRIEVAL, end, _retrieval_payload(f)))
        out.append(_mapped(r, f, kind, events))
    return Prepared(out, out[records.index(root)], true_root, frozenset(agents))


def _has_agent_ancestor(r: SpanRecord, by_id: Mapping[int, SpanRecord], agents: frozenset[int]) -> bool:
    seen = 0
    parent = by_id.get(r.parent_span_id) if r.parent_span_id is not None else None
    while parent is not None and seen < 1000:
        if parent.span_id in agents:
            return True
        parent = by_id.get(parent.parent_span_id) if parent.parent_span_id is not None else None
        seen += 1
    return False


def _status_override(prepared: Prepared) -> str | None:
    for r in (prepared.root, *prepared.records):
        value = r.attributes.get(A.STATUS)
        if isinstance(value, str) and value.upper() in ("SUCCESS", "PARTIAL", "FAILED"):
            return value.upper()
    return None


def finish(log: dict[str, Any], prepared: Prepared, *, dropped_spans: int) -> dict[str, Any]:
    """The builder's log with the /v1/traces rules applied (see the module docstring)."""
    records, root = prepared.records, prepared.root
    log["identification"]["source"] = SOURCE
    outcome = log["outcome"]
    errors = sum(1 for r in records if r is not root and r.status == STATUS_ERROR)
    status = "FAILED" if root.status == STATUS_ERROR else "PARTIAL" if errors else "SUCCESS"
    outcome["status"] = _status_override(prepared) or status
    if outcome["status"] == "FAILED" and outcome.get("resolution_status") is None:
        outcome["resolution_status"] = "unresolved"
    outcome["complete"] = prepared.true_root and dropped_spans == 0 and all(r.dropped_events == 0 for r in records)
    metrics = log["metrics"]
    known = ("overall_confidence", "hallucination_risk") + (
        ("draft_length_chars",) if log["trace"].get("output", {}).get("draft") is not None else ())
    for name in UNKNOWN_METRICS:
        if metrics.get(name) is None or name not in known:
            metrics.pop(name, None)
    _token_metrics(metrics, log["trace"]["llm_calls"])
    by_id = {r.span_id: r for r in records}
    llm = [r for r in records if r.attributes.get(A.KIND) in LLM_KINDS]
    if prepared.agents:
        metrics["react_iterations"] = sum(1 for r in llm if _has_agent_ancestor(r, by_id, prepared.agents))
    else:
        metrics.pop("react_iterations", None)
    metrics["models"] = sorted({str(c["model"]) for c in log["trace"]["llm_calls"] if c.get("model")})
    if not metrics.get("retrieval_calls"):
        metrics.pop("text_results", None)
    return log


def _token_metrics(metrics: dict[str, Any], calls: list[dict[str, Any]]) -> None:
    """Tokens and cost only when the spans carry them: every LLM call with tokens has a cost, or
    the cost is absent (a partial sum would understate it)."""
    with_tokens = [c for c in calls if "input_tokens" in c or "output_tokens" in c]
    if not with_tokens:
        for name in ("input_tokens", "output_tokens", "total_tokens"):
            metrics.pop(name, None)
    if not calls or any("cost_usd" not in c for c in calls):
        metrics.pop("cost_usd", None)
