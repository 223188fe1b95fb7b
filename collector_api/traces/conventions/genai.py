"""OTel GenAI conventions (open-telemetry/semantic-conventions-genai; old and new names). Pure."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from collector_api.traces.conventions.common import count, document, first, json_list, text
from otel_bridge.spanrecord import EventRecord

KIND_BY_OPERATION = {
    "chat": "llm", "text_completion": "llm", "generate_content": "llm", "embeddings": "embedding",
    "retrieval": "retriever", "execute_tool": "tool", "invoke_agent": "agent", "create_agent": "agent",
    "invoke_workflow": "chain", "plan": "planner",
}
OPERATION = "gen_ai.operation.name"
MODEL = ("gen_ai.response.model", "gen_ai.request.model")
PROVIDER = ("gen_ai.provider.name", "gen_ai.system")
INPUT_TOKENS = ("gen_ai.usage.input_tokens",)
OUTPUT_TOKENS = ("gen_ai.usage.output_tokens",)
CACHE_READ = ("gen_ai.usage.cache_read.input_tokens",)
CACHE_WRITE = ("gen_ai.usage.cache_creation.input_tokens",)
SESSION = ("gen_ai.conversation.id",)


def kind_of(operation: Any) -> str | None:
    return KIND_BY_OPERATION.get(operation) if isinstance(operation, str) else None


def _documents(value: Any) -> list[dict[str, Any]] | None:
    if value is None:
        return None
    out = []
    for d in json_list(value):
        doc = document(d.get("id"), d.get("score")) if isinstance(d, dict) else document(d, None)
        if doc:
            out.append(doc)
    return out


def applies(attrs: Mapping[str, Any], events: Sequence[EventRecord] = ()) -> bool:
    """Whether `read` can find anything: it reads only ``gen_ai.*`` and ``error.type``."""
    return "error.type" in attrs or any(k.startswith("gen_ai.") for k in attrs)


def read(attrs: Mapping[str, Any], events: Sequence[EventRecord] = ()) -> dict[str, Any]:
    """What a GenAI span says (only the fields it carries)."""
    facts = {
        "kind": kind_of(attrs.get(OPERATION)),
        "model": text(first(attrs, MODEL)),
        "provider": text(first(attrs, PROVIDER)),
        "input_tokens": count(first(attrs, INPUT_TOKENS)),
        "output_tokens": count(first(attrs, OUTPUT_TOKENS)),
        "cache_read": count(first(attrs, CACHE_READ)),
        "cache_write": count(first(attrs, CACHE_WRITE)),
        "tool_name": text(attrs.get("gen_ai.tool.name")),
        "tool_call_id": text(attrs.get("gen_ai.tool.call.id")),
        "tool_arguments": attrs.get("gen_ai.tool.call.arguments"),
        "tool_result": attrs.get("gen_ai.tool.call.result"),
        "documents": _documents(attrs.get("gen_ai.retrieval.documents")),
        "query": first(attrs, ("gen_ai.retrieval.query.text", "gen_ai.retrieval.query")),
        "data_source": text(attrs.get("gen_ai.data_source.id")),
        "session_id": text(first(attrs, SESSION)),
        "error": text(attrs.get("error.type")),
    }
    return {k: v for k, v in facts.items() if v is not None}
