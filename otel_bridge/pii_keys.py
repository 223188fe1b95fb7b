"""Which keys hold personal data: the exact names, then a rule on the key's words.

Used by otel_bridge.pii (Redactor.scrub_value hashes such a key's value; known_values
collects a ticket's such values to replace them wherever they recur in free text).
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
_ABOUT_WORDS = frozenset({"id", "ids", "count", "type", "kind", "status", "verified", "enabled", "valid",
                          "domain", "template", "format", "provider", "source", "length", "len", "hash",
                          "optin", "consent", "field", "key", "column", "label"})
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
    iban; address/street/zip/postcode (not a server's) and dob/ssn/passport -> text. A key
    whose last word is about the field (``email_verified``, ``phone_type``, ``customer_id``)
    is not personal data."""
    exact = PII_FIELD_TYPES.get(key.lower())
    if exact is not None:
        return exact
    words = key_words(key)
    if not words or words[-1] in _ABOUT_WORDS:
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
