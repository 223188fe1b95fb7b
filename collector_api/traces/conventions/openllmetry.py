"""OpenLLMetry (Traceloop) conventions: traceloop/openllmetry, opentelemetry-semantic-conventions-ai
0.4 (``gen_ai.usage.prompt_tokens``, ``llm.request.type``) and 0.5 (GenAI names, read by `genai`
first). Pure."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from collector_api.traces.conventions.common import count, document, first, text
from otel_bridge.spanrecord import EventRecord

SPAN_KIND = "traceloop.span.kind"
KIND_BY_SPAN_KIND = {"workflow": "chain", "task": "chain", "agent": "agent", "tool": "tool"}
KIND_BY_REQUEST_TYPE = {"chat": "llm", "completion": "llm", "embedding": "embedding", "rerank": "reranker"}
INPUT_TOKENS = ("gen_ai.usage.prompt_tokens", "llm.usage.prompt_tokens")
OUTPUT_TOKENS = ("gen_ai.usage.completion_tokens", "llm.usage.completion_tokens")
TOTAL_TOKENS = ("llm.usage.total_tokens", "gen_ai.usage.total_tokens")
CACHE_READ = ("gen_ai.usage.cache_read_input_tokens",)
CACHE_WRITE = ("gen_ai.usage.cache_creation_input_tokens",)
ASSOCIATION = "traceloop.association.properties."
SESSION_KEYS = tuple(ASSOCIATION + k for k in ("session_id", "sessionId", "conversation_id", "thread_id",
                                              "chat_id"))
USER_KEYS = tuple(ASSOCIATION + k for k in ("user_id", "userId", "end_user_id", "customer_id")) + (
    "llm.user", "gen_ai.user")
# Vector-database spans carry one event per result: ``<event>.id``, ``<event>.score``, ...
RESULT_EVENTS = ("db.query.result", "db.search.result", "vector_db.query.result")


def documents(events: Sequence[EventRecord]) -> list[dict[str, Any]] | None:
    found = False
    out = []
    for ev in events:
        if ev.name in RESULT_EVENTS:
            found = True
            doc = document(ev.attributes.get(ev.name + ".id"), ev.attributes.get(ev.name + ".score"))
            if doc:
                out.append(doc)
    return out if found else None


def _kind(attrs: Mapping[str, Any], docs: list | None) -> str | None:
    span_kind = attrs.get(SPAN_KIND)
    if isinstance(span_kind, str) and span_kind in KIND_BY_SPAN_KIND:
        return KIND_BY_SPAN_KIND[span_kind]
    request_type = attrs.get("llm.request.type")
    if isinstance(request_type, str) and request_type in KIND_BY_REQUEST_TYPE:
        return KIND_BY_REQUEST_TYPE[request_type]
    return "retriever" if docs is not None else None


NAMESPACES = ("traceloop.", "llm.")
_GENAI_NAMES = frozenset(INPUT_TOKENS + OUTPUT_TOKENS + TOTAL_TOKENS + CACHE_READ + CACHE_WRITE + USER_KEYS)


def applies(attrs: Mapping[str, Any], events: Sequence[EventRecord] = ()) -> bool:
    """Whether `read` can find anything: result events, its namespaces, or its older GenAI names."""
    return bool(events) or any(k.startswith(NAMESPACES) or k in _GENAI_NAMES for k in attrs)


def read(attrs: Mapping[str, Any], events: Sequence[EventRecord] = ()) -> dict[str, Any]:
    """What an OpenLLMetry span says (only the fields it carries)."""
    docs = documents(events)
    kind = _kind(attrs, docs)
    facts: dict[str, Any] = {
        "kind": kind,
        "input_tokens": count(first(attrs, INPUT_TOKENS)),
        "output_tokens": count(first(attrs, OUTPUT_TOKENS)),
        "total_tokens": count(first(attrs, TOTAL_TOKENS)),
        "cache_read": count(first(attrs, CACHE_READ)),
        "cache_write": count(first(attrs, CACHE_WRITE)),
        "documents": docs,
        "session_id": text(first(attrs, SESSION_KEYS)),
        "user_id": text(first(attrs, USER_KEYS)),
    }
    if kind == "tool":
        facts.update(tool_name=text(attrs.get("traceloop.entity.name")),
                     tool_arguments=attrs.get("traceloop.entity.input"),
                     tool_result=attrs.get("traceloop.entity.output"))
    elif kind == "retriever":
        facts["query"] = attrs.get("traceloop.entity.input")
    return {k: v for k, v in facts.items() if v is not None}
