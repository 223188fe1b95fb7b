"""The one privacy policy of both paths. Pure: no I/O, no SDK.

The bridge (otel_bridge.assemble, on the client) and the collector (collector_api.traces.decode
and .assembly, on /v1/traces) call these functions, so one attribute gets one decision
wherever it comes from:

- an attribute that names a person (otel_bridge.pii_keys.attribute_key_kind: all the words of
  its key) is hashed whole, and its raw value becomes a known value of the trace;
- an identifier (a model, tool, node or span name, an id, a version: ``is_identifier_key``)
  keeps its value but for an email, a secret, a card number or a whole known value
  (Redactor.scrub_identifier): the free-text detectors never see it;
- everything else is free text: the detectors, then the trace's known values; with
  ``whole=True`` (more person values than the trace may hold) it is hashed whole instead;
- an attribute key is an identifier too (an email used as a key is scrubbed);
- a display name written with an email ("Jane Doe <jane.doe@example.com>") is a known value.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Iterable, Mapping
from typing import Any

from otel_bridge.known import KnownValues, known_values
from otel_bridge.pii import Redactor
from otel_bridge.pii_keys import (
    CONTENT_FIELDS,
    TICKET_PREFIX,
    attribute_key_kind,
    field_kind,
    is_identifier_key,
)

_EMAIL_VALUE = re.compile(r"^[^@\s]{1,200}@[^@\s]{1,200}\.[A-Za-z]{2,}$")
# A person's name in an id attribute (``enduser.id = "Annalisa Rossetti"``): 2-5 words of letters
# (with ' - . inside), no digits or @. Known as a `name`, so its parts are replaced too.
_NAME_WORD = r"[^\W\d_]+(?:[-'.][^\W\d_]+)*"  # a separator between letter runs: no ambiguity, linear
_NAME_SHAPED = re.compile(rf"^{_NAME_WORD}(?:\s+{_NAME_WORD}){{1,4}}$")
# "Jane Doe <jane.doe@example.com>", "Jane Doe (jane.doe@example.com)", "\"Doe, Jane\" <jd@x.io>":
# up to four capitalised words right before an email in <> () [] or after a quote. Linear: the
# words are letter runs separated by single spaces, the email's parts are possessive.
_CAP_WORD = r"[^\W\d_a-z](?:[^\W\d_]|['.-](?=[^\W\d_]))*+"
_NAME_WITH_EMAIL = re.compile(
    rf"(?<![^\W\d_])(?<![^\W\d_]['.-])(?P<name>{_CAP_WORD}(?:,? {_CAP_WORD}){{0,3}})\"?\s?[<(\[]\s?"
    r"(?P<email>[A-Za-z0-9._%+-]++@[A-Za-z0-9-]++(?:\.[A-Za-z0-9-]++)*\.[A-Za-z]{2,}+)\s?[>)\]]")
_NOT_A_NAME = frozenset({"hello", "hi", "dear", "from", "to", "cc", "bcc", "i", "me", "contact", "customer",
                         "name", "mr", "mrs", "ms", "dr", "sent", "reply", "by", "with"})
_SPELT = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue", "ß": "ss", "æ": "ae", "ø": "oe", "å": "aa"})
_UNICODE_ESCAPE = re.compile(r"\\u([0-9a-fA-F]{4})")
_JSON_STARTS = ("{", "[", '"')
_JSON_MAX_CHARS = 1_000_000
_NOT_JSON = object()
CONTENT = "content"  # the kind of a ticket's text among a trace's person values (see for_mode)
METADATA = "metadata"  # OpenInference: the app's key/value pairs as one JSON object
METADATA_MAX_CHARS = 65_536


def attribute_kind(key: str, value: object = None) -> str | None:
    """Token kind of an attribute that names a person, else None. A ``session.id`` that is an
    email address is one."""
    if key == "session.id" and isinstance(value, str) and _EMAIL_VALUE.match(value.strip()):
        return "email"
    return attribute_key_kind(key)


def known_kind(kind: str, value: object) -> str:
    """The kind a person value is known by: a name-shaped user id is a `name` (its parts too)."""
    if kind == "user" and isinstance(value, str) and len(value) <= 200 and _NAME_SHAPED.match(value.strip()):
        return "name"
    return kind


def person_values(attrs: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(raw value, kind) of the attributes that name a person, OpenInference's ``metadata``
    object included. A ticket's text (``flusso.ticket.subject``...) is of kind CONTENT: known
    as `text` in content mode "hash", not known in mode "scrub" (``for_mode``)."""
    out: list[tuple[str, str]] = []
    for key, value in attrs.items():
        kind = attribute_kind(key, value)
        if kind == "text" and key.startswith(TICKET_PREFIX) and key[len(TICKET_PREFIX):].lower() in CONTENT_FIELDS:
            kind = CONTENT
        if kind is not None:
            values = value if isinstance(value, (list, tuple)) else (value,)
            out.extend((str(v), known_kind(kind, v)) for v in values
                       if isinstance(v, (str, int)) and not isinstance(v, bool))
    meta = attrs.get(METADATA)
    if meta is not None:
        out.extend(metadata_person_values(meta))
    return out


def for_mode(pairs: Iterable[Any], content: str) -> list[tuple[str, str]]:
    """The known values of a trace in a content mode: its texts known whole ("hash") or not."""
    if content == "scrub":
        return [(str(v), str(k)) for v, k in pairs if k != CONTENT]
    return [(str(v), "text" if k == CONTENT else str(k)) for v, k in pairs]


def metadata_person_values(value: Any) -> list[tuple[str, str]]:
    """(value, kind) of the person-naming keys of a JSON object given as text (``customer_name``,
    ``user_email``, ``user_id``...); [] for anything else."""
    if not isinstance(value, str) or not value.startswith("{") or len(value) > METADATA_MAX_CHARS:
        return []
    try:
        obj = json.loads(value)
    except (ValueError, RecursionError):
        return []
    out = []
    for key, v in obj.items() if isinstance(obj, dict) else ():
        kind = field_kind(str(key))
        if kind is not None and isinstance(v, (str, int)) and not isinstance(v, bool) and str(v).strip():
            out.append((str(v), known_kind(kind, v)))
    return out


def names_with_email(text: object) -> list[tuple[str, str]]:
    """("Jane Doe", "name") and ("jane.doe@example.com", "email") for every display name written
    with its email address, when one of the name's words is in the address (``Support Team
    <help@x.io>`` names no person). A leading greeting ("Hello", "I", "Dear") is not the name."""
    if not isinstance(text, str) or "@" not in text:
        return []
    out = []
    for m in _NAME_WITH_EMAIL.finditer(text):
        email = m.group("email")
        local = email.split("@", 1)[0].casefold()
        words = [w.strip(",") for w in m.group("name").split()]
        while words and words[0].casefold() in _NOT_A_NAME:
            words.pop(0)
        if words and any(_in_address(w.casefold(), local) for w in words):
            out += [(" ".join(words), "name"), (email, "email")]
    return out


def _in_address(word: str, local: str) -> bool:
    """Whether a name's word is in the address's local part, as written or spelt in ASCII
    (``Jörg`` in ``joerg`` or ``jorg``)."""
    ascii_word = unicodedata.normalize("NFKD", word).encode("ascii", "ignore").decode()
    spelt = word.translate(_SPELT)
    return any(len(w) >= 2 and (w in local or (len(w) >= 4 and w[:4] in local)) for w in {word, ascii_word, spelt})


def discovered_values(texts: Iterable[object]) -> list[tuple[str, str]]:
    """Person values found in free text: names written with their email address (also behind
    JSON escapes: ``jane\\u0040example.com``)."""
    out: list[tuple[str, str]] = []
    for text in texts:
        if not isinstance(text, str):
            continue
        if "\\u" in text:
            text = _UNICODE_ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), text)
        if "@" in text:
            out.extend(names_with_email(text))
    return out


def scrub_content(value: Any, r: Redactor, known: KnownValues | None) -> Any:
    """Free text; a JSON document given as text (``gen_ai.input.messages``, tool arguments, an
    output that is a JSON string) is scrubbed as the structure it is, so a value behind a JSON
    escape is seen and a personal key inside it (``{"customer_name": ...}``) is hashed as it
    would be anywhere else; it stays text."""
    if isinstance(value, str) and value[:1] in _JSON_STARTS and len(value) <= _JSON_MAX_CHARS:
        try:
            decoded = json.loads(value)
        except (ValueError, RecursionError):
            decoded = _NOT_JSON
        if decoded is not _NOT_JSON and not isinstance(decoded, (int, float, bool)) and decoded is not None:
            return json.dumps(r.scrub_value(decoded, known), ensure_ascii=False)
    return r.scrub_value(value, known)


def redact_attributes(attrs: Mapping[str, Any], r: Redactor, known: KnownValues | None, *,
                      whole: bool = False) -> dict[str, Any]:
    """Span or event attributes by the policy (see the module docstring)."""
    out: dict[str, Any] = {}
    for key, value in attrs.items():
        name = r.scrub_identifier(key, known) if isinstance(key, str) else str(key)
        kind = attribute_kind(key, value)
        if kind is not None:
            out[str(name)] = r.hash_field(kind, value)
        elif value is None or isinstance(value, (bool, int, float)):
            out[str(name)] = value
        elif is_identifier_key(key):
            out[str(name)] = redact_identifier(value, r, known)
        elif whole:
            out[str(name)] = r.hash_field("text", value)
        else:
            out[str(name)] = scrub_content(value, r, known)
    return out


def redact_identifier(value: Any, r: Redactor, known: KnownValues | None) -> Any:
    """An identifier's value: a string or a list of them by Redactor.scrub_identifier; any
    other structure as free text."""
    if isinstance(value, str):
        return r.scrub_identifier(value, known)
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return [r.scrub_identifier(v, known) for v in value]
    return r.scrub_value(value, known)


# --- the bridge's log (its fields are known: the schema says which are identifiers) ---

# Attributes the bridge itself writes from code (names, kinds, counts): never personal data,
# so not scanned (this keeps per-ticket work in the worker small).
SAFE_ATTRIBUTES = frozenset({
    "flusso.kind", "flusso.workflow.name", "flusso.node.name", "flusso.ticket_id", "gen_ai.operation.name",
    "gen_ai.agent.name", "gen_ai.tool.name", "gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens",
    # experiment tags (otel_bridge.experiments): ids, and names the developer chose in code
    "flusso.experiment.id", "flusso.experiment.name", "flusso.dataset.id", "flusso.dataset.name",
    "flusso.dataset.item_id",
})
_PAYLOAD_ONLY = frozenset({"flusso.payload"})  # a record.* event: its payload is read as text
# Sections of a log's "trace" whose items are records (dicts) of the bridge's record.* helpers.
_RECORD_LISTS = {"llm_calls": (), "react": ("iterations",), "planning": ("decisions",), "output": ("decisions",),
                 "evidence": ("items",)}


def trace_known_values(records: Iterable[Any], ticket: Mapping[str, Any], marked: Iterable[str],
                       extra: Iterable[tuple[str, str]], texts: Iterable[object],
                       content: str = "hash") -> KnownValues:
    """A trace's known values: ``extra`` (record.pii), the person attributes of its spans and
    events, the names written with an email in ``texts``, then its ticket's personal fields
    (not its texts in content mode "scrub": they are kept, scrubbed, not replaced whole)."""
    pairs = list(extra)
    for span in records:
        if not SAFE_ATTRIBUTES.issuperset(span.attributes):  # the bridge's own spans: nothing to find
            pairs += person_values(span.attributes)
        for event in span.events:
            if not _PAYLOAD_ONLY.issuperset(event.attributes):
                pairs += person_values(event.attributes)
        for link in getattr(span, "links", ()):
            pairs += person_values(link.attributes)
        if "@" in span.name or span.status_description and "@" in span.status_description:
            pairs += names_with_email(span.name) + names_with_email(span.status_description)
    pairs += discovered_values(texts)
    return known_values(ticket, marked, pairs, skip=CONTENT_FIELDS if content == "scrub" else ())


class WholeText(Redactor):
    """The Redactor of a ticket with more person values than the cap: free text is hashed whole
    (a value beyond the cap cannot be searched for); identifiers and personal fields as usual."""

    def __init__(self, r: Redactor):  # the same keys and memos as `r` (no super().__init__)
        self.__dict__.update(r.__dict__)

    def scrub_text(self, text: str, known: KnownValues | None = None) -> str:
        return str(self.hash_field("text", text))

    def scrub_value(self, value: object, known: KnownValues | None = None, depth: int = 0) -> object:
        """The structure kept (keys as identifiers), every string in it one token."""
        if value is None or isinstance(value, (bool, int, float)):
            return value
        if isinstance(value, Mapping) and depth <= 32:
            return {str(self.scrub_identifier(str(k), known)): self.scrub_value(v, known, depth + 1)
                    for k, v in value.items()}
        if isinstance(value, (list, tuple)) and depth <= 32:
            return [self.scrub_value(v, known, depth + 1) for v in value]
        return self.hash_field("text", value)


def redact_record(item: Any, r: Redactor, known: KnownValues | None) -> Any:
    """One record of the log (an LLM call, a ReAct iteration, a decision): identifier fields
    (``model``, ``provider``, ``action``, ``span_id``) keep their value but for
    Redactor.scrub_identifier; the others are scrubbed (personal keys hashed)."""
    if not isinstance(item, dict):
        return r.scrub_value(item, known)
    out: dict[str, Any] = {}
    for key, value in item.items():
        if isinstance(key, str) and key not in ("name", "names") and is_identifier_key(key) \
                and isinstance(value, str):
            out[str(r.scrub_identifier(key, known))] = r.scrub_identifier(value, known)
        else:
            scrubbed = r.scrub_value({key: value}, known)
            out.update(scrubbed if isinstance(scrubbed, dict) else {"redaction": scrubbed})
    return out


def redact_section(name: str, section: Any, r: Redactor, known: KnownValues | None) -> Any:
    """A section of the log's trace: its lists of records field by field, the retrieval
    sections' names (``text``, ``vision``, a source's name) as identifiers, the rest scrubbed."""
    if name == "retrieval" and isinstance(section, dict):
        return {str(r.scrub_identifier(str(k), known)): r.scrub_value(v, known) for k, v in section.items()}
    if name not in _RECORD_LISTS:
        return r.scrub_value(section, known)
    path = _RECORD_LISTS[name]
    if not path:
        return [redact_record(i, r, known) for i in section] if isinstance(section, list) \
            else r.scrub_value(section, known)
    if not isinstance(section, dict):
        return r.scrub_value(section, known)
    out = {k: r.scrub_value(v, known) for k, v in section.items() if k not in path}
    for key in path:
        items = section.get(key)
        out[key] = [redact_record(i, r, known) for i in items] if isinstance(items, list) \
            else r.scrub_value(items, known)
    return out


def redact_span_entry(entry: dict[str, Any], r: Redactor, known: KnownValues | None) -> None:
    """A span of the log: its name is an identifier (a node's, a tool's, a host span's), its
    error free text, its attributes by the policy; ids, offsets and status are structural."""
    entry["name"] = r.scrub_identifier(entry["name"], known)
    entry["error"] = r.scrub_value(entry["error"], known)
    attrs = entry["attributes"]
    if not SAFE_ATTRIBUTES.issuperset(attrs):
        entry["attributes"] = {**{k: v for k, v in attrs.items() if k in SAFE_ATTRIBUTES},
                               **redact_attributes({k: v for k, v in attrs.items() if k not in SAFE_ATTRIBUTES},
                                                   r, known)}
    for link in entry.get("links", ()):  # a link's attributes: the same policy as the span's own
        link["attributes"] = redact_attributes(link["attributes"], r, known)
