"""Which span attributes hold customer text (content) and which name a person. Pure.

The tables and rules are the bridge's (otel_bridge.pii_keys, otel_bridge.policy): one policy
for both paths; this module names them for the conventions' code.

Content: every attribute of the three conventions where prompts, outputs, documents and tool
I/O live. Flattened lists (``llm.input_messages.N.message.content``, ``gen_ai.prompt.N.content``,
``retrieval.documents.N.document.content``) are matched by prefix, not by a fixed list. On
arrival (collector_api.traces.decode) content is scrubbed as text (never hashed by its key's
words) and sealed; in the assembled log it comes after the other attributes of its span, so
the per-span attribute cap drops content first, never the model or the token counts.
"""
from __future__ import annotations

from otel_bridge.pii_keys import ASSOCIATION as ASSOCIATION
from otel_bridge.pii_keys import CONTENT_KEYS as CONTENT_KEYS
from otel_bridge.pii_keys import CONTENT_PREFIXES as CONTENT_PREFIXES
from otel_bridge.pii_keys import PERSON_ATTRIBUTES, attribute_key_kind
from otel_bridge.pii_keys import is_content as is_content
from otel_bridge.policy import METADATA as METADATA
from otel_bridge.policy import METADATA_MAX_CHARS as METADATA_MAX_CHARS
from otel_bridge.policy import metadata_person_values as metadata_person_values

# The tables live in the bridge's pure otel_bridge.pii_keys: the bridge classifies the same
# attributes of its host spans by the same rule.
PERSON_KEYS = PERSON_ATTRIBUTES


def person_key_kind(key: str) -> str | None:
    """Token kind of an attribute that names a person by its exact name, or an OpenLLMetry
    association property that names a person (``user_id``, ``customerId``, ``customer_email``);
    else None."""
    kind = PERSON_KEYS.get(key)
    if kind is not None or not key.startswith(ASSOCIATION):
        return kind
    return attribute_key_kind(key)
