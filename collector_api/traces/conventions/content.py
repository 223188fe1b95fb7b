"""Which span attributes hold customer text (content) and which name a person. Pure.

Content: every attribute of the three conventions where prompts, outputs, documents and tool
I/O live. Flattened lists (``llm.input_messages.N.message.content``, ``gen_ai.prompt.N.content``,
``retrieval.documents.N.document.content``) are matched by prefix, not by a fixed list. On
arrival (collector_api.traces.decode) content is scrubbed as text (never hashed by its key's
words) and sealed; in the assembled log it comes after the other attributes of its span, so
the per-span attribute cap drops content first, never the model or the token counts.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Any

from collector_api.contract.jsontext import loads_bounded
from otel_bridge.pii_keys import field_kind, key_words

CONTENT_KEYS = frozenset({
    # OTel GenAI (attributes and event attributes)
    "gen_ai.input.messages", "gen_ai.output.messages", "gen_ai.system_instructions", "gen_ai.prompt",
    "gen_ai.completion", "gen_ai.tool.call.arguments", "gen_ai.tool.call.result", "gen_ai.retrieval.query.text",
    "gen_ai.retrieval.query", "gen_ai.retrieval.documents", "gen_ai.tool.definitions", "gen_ai.choice",
    "content", "body", "message",
    # OpenInference
    "input.value", "output.value", "tool.parameters", "llm.function_call", "llm.prompt_template.template",
    "llm.prompt_template.variables", "reranker.query", "metadata", "llm.invocation_parameters",
    "embedding.invocation_parameters",
    # OpenLLMetry
    "traceloop.entity.input", "traceloop.entity.output", "traceloop.prompt.template",
    "traceloop.prompt.template_variables", "llm.content.completion.chunk", "gen_ai.content.completion.chunk",
    "mcp.request.argument", "mcp.response.value", "llm.request.functions", "gen_ai.request.structured_output_schema",
    # exceptions (a message may quote the customer)
    "exception.message", "exception.stacktrace",
})
CONTENT_PREFIXES = (
    "llm.input_messages.", "llm.output_messages.", "llm.prompts.", "llm.choices.", "llm.tools.",
    "retrieval.documents.", "reranker.input_documents.", "reranker.output_documents.", "embedding.embeddings.",
    "gen_ai.prompt.", "gen_ai.completion.", "gen_ai.input.messages.", "gen_ai.output.messages.",
    "gen_ai.request.functions.", "llm.request.functions.", "gen_ai.tool.definitions.",
    "db.query.result.", "db.search.result.", "vector_db.query.result.", "llm.prompt_template.variables.",
    "traceloop.entity.input.", "traceloop.entity.output.", "metadata.",
)
# Attributes that name a person, all three conventions -> token kind (hashed on arrival).
PERSON_KEYS = {
    "user.full_name": "name", "user.name": "name", "user.email": "email", "user.id": "user", "enduser.id": "user",
    "enduser.pseudo.id": "user", "llm.user": "user", "gen_ai.user": "user", "gen_ai.request.user": "user",
}
ASSOCIATION = "traceloop.association.properties."
METADATA = "metadata"  # OpenInference: the app's key/value pairs as one JSON object (using_metadata)
METADATA_MAX_CHARS = 65_536
_HASHED_KINDS = frozenset({"email", "phone", "name", "card", "iban"})
_PERSON_ID_WORDS = frozenset({"user", "enduser", "customer", "requester", "contact", "person", "member",
                              "patient", "employee", "caller", "sender", "recipient"})


@lru_cache(maxsize=8192)
def is_content(key: str) -> bool:
    """Whether the attribute `key` holds customer text (prompts, outputs, documents, tool I/O)."""
    return key in CONTENT_KEYS or key.startswith(CONTENT_PREFIXES)


def person_key_kind(key: str) -> str | None:
    """Token kind of an attribute that names a person by its exact name, or an OpenLLMetry
    association property that is a person's id (``user_id``, ``customerId``); else None."""
    kind = PERSON_KEYS.get(key)
    if kind is not None or not key.startswith(ASSOCIATION):
        return kind
    return _id_kind(key[len(ASSOCIATION):])


def _id_kind(key: str) -> str | None:
    words = key_words(key)
    if len(words) >= 2 and words[-1] in ("id", "ids") and _PERSON_ID_WORDS & set(words[:-1]):
        return "user"
    return None


def metadata_person_values(value: Any) -> list[tuple[str, str]]:
    """(value, kind) of the person-naming keys of OpenInference's ``metadata`` JSON object
    (``customer_name``, ``user_email``, ``user_id``...), so a name that has no pattern is known
    and replaced wherever it recurs; [] for anything else."""
    if not isinstance(value, str) or not value.startswith("{") or len(value) > METADATA_MAX_CHARS:
        return []
    try:
        obj = loads_bounded(value)
    except ValueError:
        return []
    out = []
    for key, v in obj.items() if isinstance(obj, dict) else ():
        kind = field_kind(str(key))
        kind = kind if kind in _HASHED_KINDS else _id_kind(str(key))
        if kind is not None and isinstance(v, (str, int)) and not isinstance(v, bool) and str(v).strip():
            out.append((str(v), kind))
    return out
