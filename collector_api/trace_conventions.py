"""OTel GenAI span conventions -> what the bridge's builder reads. Pure: no I/O.

`prepare(records, ...)` picks the trace's root, gives each GenAI span the bridge's
`flusso.kind`, and adds the `flusso.*` events the builder derives sections and metrics from
(`flusso.llm_call` per chat/completion span with model, tokens and cost, `flusso.retrieval`
per retrieval span, `flusso.ticket` on the root). `finish(log, ...)` then applies the rules
the builder does not know: `identification.source`, `outcome.status` (FAILED when the root
errored, PARTIAL when another span did, `flusso.status` overrides), `outcome.complete`,
`react_iterations` as the LLM calls under the agent span, and no metric the spans cannot tell.
Precedence (docs/collector.md): `flusso.*` > OTel GenAI (old and new names) > generic.
"""
from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import otel_bridge.attributes as A
from otel_bridge.spanrecord import STATUS_ERROR, EventRecord, SpanRecord

from .prices import PriceTable

SOURCE = "otlp-traces"
KIND_BY_OPERATION = {
    "chat": "llm", "text_completion": "llm", "generate_content": "llm", "embeddings": "embedding",
    "retrieval": "retriever", "execute_tool": "tool", "invoke_agent": "agent", "create_agent": "agent",
    "invoke_workflow": "chain", "plan": "planner",
}
LLM_KINDS = frozenset({"llm"})
# Metrics of the bridge's log that GenAI spans cannot tell: absent, not zero.
UNKNOWN_METRICS = ("overall_confidence", "hallucination_risk", "evidence_items", "evidence_conflicts", "decisions",
                   "draft_length_chars", "mean_react_iteration_ms", "vision_results")
INPUT_TOKENS = ("gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens")
OUTPUT_TOKENS = ("gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens")
CACHE_READ = ("gen_ai.usage.cache_read.input_tokens", "gen_ai.usage.cache_read_input_tokens")
CACHE_WRITE = ("gen_ai.usage.cache_creation.input_tokens", "gen_ai.usage.cache_creation_input_tokens")
MODEL = ("gen_ai.response.model", "gen_ai.request.model")
PROVIDER = ("gen_ai.provider.name", "gen_ai.system")
DEFAULT_TICKET_ATTRIBUTE = A.TICKET_ID


def first(attrs: Mapping[str, Any], names: Sequence[str]) -> Any:
    for name in names:
        value = attrs.get(name)
        if value is not None and value != "":
            return value
    return None


def count(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return int(value) if isinstance(value, (int, float)) and value >= 0 else None


def find_root(records: Sequence[SpanRecord]) -> tuple[SpanRecord, bool]:
    """(the root, whether it is a true root: no parent). Else the earliest span whose parent
    did not arrive (records are sorted by start)."""
    for r in records:
        if r.parent_span_id is None:
            return r, True
    ids = {r.span_id for r in records}
    return next((r for r in records if r.parent_span_id not in ids), records[0]), False


def is_bridge_root(root: SpanRecord) -> bool:
    """A root the bridge's @workflow made: its log comes over /v1/logs."""
    return root.attributes.get(A.KIND) == A.KIND_WORKFLOW and A.WORKFLOW_NAME in root.attributes


def _event(name: str, ts: int, payload: Mapping[str, Any]) -> EventRecord:
    return EventRecord(name, ts, {A.PAYLOAD: json.dumps(payload, default=str)})


def _llm_payload(s: SpanRecord, prices: PriceTable) -> dict[str, Any]:
    a = s.attributes
    inp, out = count(first(a, INPUT_TOKENS)), count(first(a, OUTPUT_TOKENS))
    cache_read, cache_write = count(first(a, CACHE_READ)) or 0, count(first(a, CACHE_WRITE)) or 0
    model = first(a, MODEL)
    cost = a.get(A.LLM_COST_USD)
    if not isinstance(cost, (int, float)) or isinstance(cost, bool):
        cost = prices.cost(model, inp or 0, out or 0, cache_read, cache_write) if inp is not None or out is not None \
            else None
    payload = {"model": model, "provider": first(a, PROVIDER), "input_tokens": inp, "output_tokens": out,
               "cost_usd": cost, "span_id": format(s.span_id, "016x")}
    if cache_read:
        payload["cache_read_input_tokens"] = cache_read
    return {k: v for k, v in payload.items() if v is not None}


def _documents(value: Any) -> list[Any]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return []
    return list(value) if isinstance(value, (list, tuple)) else []


def _retrieval_payload(s: SpanRecord) -> dict[str, Any]:
    a = s.attributes
    results = [d if isinstance(d, dict) else {"id": str(d)} for d in _documents(a.get("gen_ai.retrieval.documents"))]
    payload = {"source": "text", "query": first(a, ("gen_ai.retrieval.query.text", "gen_ai.retrieval.query")),
               "results": results}
    if a.get(A.GEN_AI_DATA_SOURCE_ID) is not None:
        payload["data_source"] = a[A.GEN_AI_DATA_SOURCE_ID]
    return payload


def ticket_id(records: Sequence[SpanRecord], root: SpanRecord, attribute: str | None) -> str:
    """The tenant's ticket attribute (default flusso.ticket_id), else session.id, else the trace id:
    on the root first, then on any span."""
    ordered = [root, *(r for r in records if r is not root)]
    for name in (attribute or DEFAULT_TICKET_ATTRIBUTE, "session.id"):
        for r in ordered:
            value = r.attributes.get(name)
            if isinstance(value, (str, int)) and not isinstance(value, bool) and str(value).strip():
                return str(value).strip()[:256]
    return format(root.trace_id, "032x")


def _ticket_payload(records: Sequence[SpanRecord], root: SpanRecord, attribute: str | None) -> dict[str, Any]:
    payload: dict[str, Any] = {}
    for r in records:
        for key, value in r.attributes.items():
            if key.startswith("flusso.ticket."):
                payload.setdefault(key.removeprefix("flusso.ticket."), value)
    payload["ticket_id"] = ticket_id(records, root, attribute)
    return payload


@dataclass(frozen=True)
class Prepared:
    records: list[SpanRecord]
    root: SpanRecord
    true_root: bool


def prepare(records: list[SpanRecord], prices: PriceTable, ticket_attribute: str | None) -> Prepared:
    """`records` (finished, sorted by start) with the bridge's kinds and flusso.* events added."""
    root, true_root = find_root(records)
    out = []
    for r in records:
        attrs = dict(r.attributes)
        kind = attrs.get(A.KIND) or KIND_BY_OPERATION.get(str(attrs.get(A.GEN_AI_OPERATION_NAME, "")))
        events = list(r.events)
        if r is root:
            kind = A.KIND_WORKFLOW
            events.append(_event(A.EVENT_TICKET, r.start_time, _ticket_payload(records, root, ticket_attribute)))
        elif kind == A.KIND_WORKFLOW:
            kind = "chain"  # one workflow per log: the root
        if kind is not None:
            attrs[A.KIND] = kind
        end = r.end_time or r.start_time
        if kind in LLM_KINDS:
            events.append(_event(A.EVENT_LLM_CALL, end, _llm_payload(r, prices)))
        elif kind == "retriever":
            events.append(_event(A.EVENT_RETRIEVAL, end, _retrieval_payload(r)))
        out.append(replace(r, attributes=attrs, events=tuple(events)))
    return Prepared(out, out[records.index(root)], true_root)


def is_agent(r: SpanRecord) -> bool:
    """An agent span (also the root, whose kind became "workflow")."""
    return r.attributes.get(A.KIND) == "agent" or KIND_BY_OPERATION.get(
        str(r.attributes.get(A.GEN_AI_OPERATION_NAME, ""))) == "agent"


def _has_agent_ancestor(r: SpanRecord, by_id: Mapping[int, SpanRecord]) -> bool:
    seen = 0
    parent = by_id.get(r.parent_span_id) if r.parent_span_id is not None else None
    while parent is not None and seen < 1000:
        if is_agent(parent):
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
    for name in UNKNOWN_METRICS:
        if metrics.get(name) is None or name not in ("overall_confidence", "hallucination_risk"):
            metrics.pop(name, None)
    _token_metrics(metrics, log["trace"]["llm_calls"])
    by_id = {r.span_id: r for r in records}
    llm = [r for r in records if r.attributes.get(A.KIND) in LLM_KINDS]
    if any(is_agent(r) for r in records):
        metrics["react_iterations"] = sum(1 for r in llm if _has_agent_ancestor(r, by_id))
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
