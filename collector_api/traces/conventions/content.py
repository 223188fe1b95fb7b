"""Which span attributes hold customer text (content) and which name a person. Pure.

Content: every attribute of the three conventions where prompts, outputs, documents and tool
I/O live. Flattened lists (``llm.input_messages.N.message.content``, ``gen_ai.prompt.N.content``,
``retrieval.documents.N.document.content``) are matched by prefix, not by a fixed list. On
arrival (collector_api.traces.decode) content is scrubbed as text (never hashed by its key's
words) and sealed; in the assembled log it comes after the other attributes of its span, so
the per-span attribute cap drops content first, never the model or the token counts.
"""
from __future__ import annotations

from typing import Any

from collector_api.contract.jsontext import loads_bounded
from otel_bridge.pii_keys import ASSOCIATION as ASSOCIATION
from otel_bridge.pii_keys import CONTENT_KEYS as CONTENT_KEYS
from otel_bridge.pii_keys import CONTENT_PREFIXES as CONTENT_PREFIXES
from otel_bridge.pii_keys import PERSON_ATTRIBUTES, attribute_key_kind, field_kind
from otel_bridge.pii_keys import is_content as is_content

# The tables live in the bridge's pure otel_bridge.pii_keys: the bridge classifies the same
# attributes of its host spans by the same rule.
PERSON_KEYS = PERSON_ATTRIBUTES
METADATA = "metadata"  # OpenInference: the app's key/value pairs as one JSON object (using_metadata)
METADATA_MAX_CHARS = 65_536


def person_key_kind(key: str) -> str | None:
    """Token kind of an attribute that names a person by its exact name, or an OpenLLMetry
    association property that names a person (``user_id``, ``customerId``, ``customer_email``);
    else None."""
    kind = PERSON_KEYS.get(key)
    if kind is not None or not key.startswith(ASSOCIATION):
        return kind
    return attribute_key_kind(key)


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
        if kind is not None and isinstance(v, (str, int)) and not isinstance(v, bool) and str(v).strip():
            out.append((str(v), kind))
    return out
