"""OpenInference conventions (Arize-ai/openinference, openinference-semantic-conventions). Pure.

Lists are flattened: ``llm.input_messages.N.message.content``, ``retrieval.documents.N.document.id``.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from collector_api.traces.conventions.common import count, document, first, indexed, number, text
from otel_bridge.spanrecord import EventRecord

SPAN_KIND = "openinference.span.kind"
KIND_BY_SPAN_KIND = {
    "LLM": "llm", "EMBEDDING": "embedding", "CHAIN": "chain", "RETRIEVER": "retriever", "RERANKER": "reranker",
    "TOOL": "tool", "AGENT": "agent", "GUARDRAIL": "guardrail", "EVALUATOR": "evaluator", "PROMPT": "prompt",
}
MODEL = ("llm.response.model_name", "llm.model_name", "llm.request.model_name", "embedding.model_name",
         "reranker.model_name")
PROVIDER = ("llm.provider", "llm.system")
INPUT_TOKENS = ("llm.token_count.prompt",)
OUTPUT_TOKENS = ("llm.token_count.completion",)
TOTAL_TOKENS = ("llm.token_count.total",)
CACHE_READ = ("llm.token_count.prompt_details.cache_read", "llm.token_count.prompt_details.cache_input")
CACHE_WRITE = ("llm.token_count.prompt_details.cache_write",)
DOCUMENTS = "retrieval.documents."


def cost(attrs: Mapping[str, Any]) -> float | None:
    """``llm.cost.total``, else prompt + completion (either alone when only one is there)."""
    total = number(attrs.get("llm.cost.total"))
    if total is not None:
        return total
    parts = [number(attrs.get("llm.cost.prompt")), number(attrs.get("llm.cost.completion"))]
    known = [p for p in parts if p is not None]
    return round(sum(known), 10) if known else None


def documents(attrs: Mapping[str, Any]) -> list[dict[str, Any]] | None:
    items = indexed(attrs, DOCUMENTS)
    if not items:
        return None
    docs = (document(d.get("document.id"), d.get("document.score")) for d in items.values())
    return [d for d in docs if d]


NAMESPACES = ("openinference.", "llm.", "embedding.", "reranker.", "tool.", "retrieval.")


def applies(attrs: Mapping[str, Any], events: Sequence[EventRecord] = ()) -> bool:
    """Whether `read` can find anything (input/output values count only with a span kind)."""
    return any(k.startswith(NAMESPACES) for k in attrs)


def read(attrs: Mapping[str, Any], events: Sequence[EventRecord] = ()) -> dict[str, Any]:
    """What an OpenInference span says (only the fields it carries)."""
    raw_kind = attrs.get(SPAN_KIND)
    kind = KIND_BY_SPAN_KIND.get(raw_kind.upper()) if isinstance(raw_kind, str) else None
    facts: dict[str, Any] = {
        "kind": kind,
        "model": text(first(attrs, MODEL)),
        "provider": text(first(attrs, PROVIDER)),
        "input_tokens": count(first(attrs, INPUT_TOKENS)),
        "output_tokens": count(first(attrs, OUTPUT_TOKENS)),
        "total_tokens": count(first(attrs, TOTAL_TOKENS)),
        "cache_read": count(first(attrs, CACHE_READ)),
        "cache_write": count(first(attrs, CACHE_WRITE)),
        "cost": cost(attrs),
        "tool_name": text(attrs.get("tool.name")),
        "tool_call_id": text(attrs.get("tool.id")),
        "documents": documents(attrs),
    }
    if kind == "tool":
        facts.update(tool_arguments=attrs.get("input.value"), tool_result=attrs.get("output.value"))
    elif kind == "retriever":
        facts["query"] = attrs.get("input.value")
    return {k: v for k, v in facts.items() if v is not None}
