"""Which keys hold personal data, which hold identifiers, which hold customer text. Pure.

One classification for both paths (the bridge's log builder and the collector's /v1/traces
decoder call these same functions, otel_bridge.policy): the exact names first, then a rule on
ALL the words of the key, whatever its shape (``customer.name``, ``customer_name``,
``customerName`` are one key). Span attributes add the person-naming names of the three span
conventions and the content attributes (prompts, outputs, documents, tool I/O).
"""

from __future__ import annotations

import functools
import re

# Known field names -> token type. Matched on the lower-cased key.
PII_FIELD_TYPES: dict[str, str] = {
    "requester_email": "email",
    "customer_email": "email",
    "email": "email",
    "requester_name": "name",
    "customer_name": "name",
    "full_name": "name",
    "requester_phone": "phone",
    "customer_phone": "phone",
    "phone": "phone",
    "subject": "text",
    "description": "text",
    "body": "text",
    "message": "text",
    "messages": "text",
    "customer_message": "text",
    "customer_messages": "text",
    "address": "text",
}

# Keys outside that table are classified by their words (split on _ - . space and camelCase):
# ``customer_phone_number``, ``firstName``, ``billing-address`` are hashed, while ``model_name``,
# ``tool_name``, ``hostname``, ``ticket_id``, ``email_verified`` stay readable.
_EMAIL_WORDS = frozenset({"email", "emails", "mail", "emailaddress"})
_PHONE_WORDS = frozenset({"phone", "phones", "phonenumber", "mobile", "tel", "telephone", "fax", "cell",
                          "cellphone", "msisdn"})
# One-word person names; ``username`` included: usernames are usually a person's name or email.
_NAME_WORDS = frozenset({"firstname", "lastname", "fullname", "surname", "givenname", "familyname",
                         "middlename", "maidenname", "nickname", "displayname", "username", "login"})
# ``name`` counts as a person's name only next to one of these (``model_name`` does not).
_PERSON_WORDS = frozenset({"first", "last", "full", "given", "family", "middle", "maiden", "sur", "nick",
                           "display", "user", "customer", "requester", "contact", "person", "sender",
                           "recipient", "holder", "cardholder", "billing", "shipping", "legal", "real",
                           "preferred", "patient", "employee", "caller", "owner"})
_ADDRESS_WORDS = frozenset({"address", "addr", "street", "postcode", "postalcode", "zip", "zipcode", "postal"})
_NOT_POSTAL_WORDS = frozenset({"mac", "server", "host", "memory", "bind", "listen", "local", "peer", "base",
                               "web", "url", "wallet", "contract"})
_PERSONAL_WORDS = frozenset({"dob", "birth", "birthday", "birthdate", "ssn", "passport"})
# A last word that says the value is about the field, not the field itself: ``email_verified``.
# ``<person word> id`` is a person's identifier (``customer_id``, ``userId``, ``user.id``): hashed as `user`.
_PERSON_ID_WORDS = frozenset({"user", "enduser", "customer", "requester", "contact", "person", "member",
                              "patient", "employee", "caller", "sender", "recipient"})
_ABOUT_WORDS = frozenset({"id", "ids", "count", "type", "kind", "status", "verified", "enabled", "valid",
                          "domain", "template", "format", "provider", "source", "length", "len", "hash",
                          "optin", "consent", "field", "key", "column", "label"})
# The customer's own words in a ticket: one token each in content mode "hash", kept with every
# personal value inside replaced in mode "scrub" (readable by a reviewer).
CONTENT_FIELDS = frozenset({"subject", "description", "body", "message", "messages", "customer_message",
                            "customer_messages", "question"})
CONTENT_MODES = ("hash", "scrub")
# Ticket fields only (record.ticket): a bare ``name`` there is the customer's.
_TICKET_FIELD_TYPES = {"name": "name"}
_KEY_WORD_RE = re.compile(r"[^A-Za-z0-9]+|(?<=[a-z0-9])(?=[A-Z])")


def key_words(key: str) -> tuple[str, ...]:
    """``"customerPhone_number"`` -> ``("customer", "phone", "number")``."""
    return tuple(w.lower() for w in _KEY_WORD_RE.split(key) if w)


@functools.lru_cache(maxsize=4096)
def field_kind(key: str) -> str | None:
    """Token kind of a field whose value is personal data, by its key; None for other keys.

    The exact names of PII_FIELD_TYPES first, then the key's words: any email word -> email;
    phone word -> phone; a one-word name (firstname, username) or ``name`` with a person word
    (first, last, customer, requester, contact, ...) -> name; card + number -> card; iban ->
    iban; address/street/zip/postcode (not a server's) and dob/ssn/passport -> text; a person
    word + id (``customer_id``, ``userId``) -> user. Any other key whose last word is about the
    field (``email_verified``, ``phone_type``, ``ticket_id``) is not personal data."""
    exact = PII_FIELD_TYPES.get(key.lower())
    if exact is not None:
        return exact
    words = key_words(key)
    if not words:
        return None
    if words[-1] in ("id", "ids") and len(words) >= 2 and not _PERSON_ID_WORDS.isdisjoint(words[:-1]):
        return "user"
    if words[-1] in _ABOUT_WORDS:
        return None
    ws = set(words)
    if ws & _EMAIL_WORDS:
        return "email"
    if ws & _PHONE_WORDS:
        return "phone"
    if ws & _NAME_WORDS or (ws & {"name", "names"} and ws & _PERSON_WORDS):
        return "name"
    if "iban" in ws:
        return "iban"
    if ws & {"card", "creditcard"} and ws & {"number", "num", "no", "pan"} or "cardnumber" in ws:
        return "card"
    if ws & _ADDRESS_WORDS and not ws & _NOT_POSTAL_WORDS or ws & _PERSONAL_WORDS:
        return "text"
    return None


def ticket_field_kind(key: str) -> str | None:
    """field_kind for a ticket field, where a bare ``name`` is the customer's."""
    return _TICKET_FIELD_TYPES.get(key.lower()) or field_kind(key)


# --- span attributes (both paths: the bridge's host spans, /v1/traces) ---

# Attributes that name a person by their exact name, all three span conventions -> token kind.
PERSON_ATTRIBUTES = {
    "user.full_name": "name", "user.name": "name", "user.email": "email", "user.id": "user", "enduser.id": "user",
    "enduser.pseudo.id": "user", "llm.user": "user", "gen_ai.user": "user", "gen_ai.request.user": "user",
}
ASSOCIATION = "traceloop.association.properties."  # OpenLLMetry: the app's key/value pairs
TICKET_PREFIX = "flusso.ticket."  # a ticket field as a span attribute
# Where customer text lives (prompts, outputs, documents, tool I/O): scrubbed as text, never
# hashed by its key's words. Flattened lists are matched by prefix.
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
# A key whose last word is one of these names a thing of the code (a model, a node, a tool, an
# id, a version): its value is an identifier, never run through the free-text detectors.
IDENTIFIER_WORDS = frozenset({"model", "models", "provider", "system", "version", "kind", "type", "operation",
                              "tool", "node", "action", "source", "id", "ids", "name", "names"})


@functools.lru_cache(maxsize=8192)
def is_content(key: str) -> bool:
    """Whether the attribute `key` holds customer text (prompts, outputs, documents, tool I/O)."""
    return key in CONTENT_KEYS or key.startswith(CONTENT_PREFIXES)


@functools.lru_cache(maxsize=8192)
def attribute_key_kind(key: str) -> str | None:
    """Token kind of a span attribute that names a person, by its key alone; else None.

    The conventions' exact names (``user.id``, ``user.email``, ``gen_ai.request.user``), an
    OpenLLMetry association property or a ``flusso.ticket.*`` field by its own words, never a
    content attribute, then every other key by all its words (``customer.name``,
    ``billing.name``, ``customer.date_of_birth``, ``contact.email``)."""
    kind = PERSON_ATTRIBUTES.get(key)
    if kind is not None:
        return kind
    if key.startswith(ASSOCIATION):
        return field_kind(key[len(ASSOCIATION):])
    if key.startswith(TICKET_PREFIX):
        return ticket_field_kind(key[len(TICKET_PREFIX):])
    if is_content(key):
        return None
    return field_kind(key)


@functools.lru_cache(maxsize=8192)
def is_identifier_key(key: str) -> bool:
    """A key whose value names a thing of the code (``gen_ai.request.model``, ``tool_name``,
    ``gen_ai.tool.call.id``, ``service.version``): not personal data, not content."""
    words = key_words(key)
    return bool(words) and words[-1] in IDENTIFIER_WORDS and attribute_key_kind(key) is None \
        and not is_content(key)
