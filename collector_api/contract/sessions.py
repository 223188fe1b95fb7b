"""A log's session key: which customer (or conversation) a ticket belongs to, without storing
who. Pure.

The key is derived from the REDACTED log (what the collector stores anyway): the ticket's
explicit conversation id (`record.ticket(conversation_id=...)`; on /v1/traces
`session.id` / `gen_ai.conversation.id`, collector_api.traces.mapping), else the requester's
token (the keyed hash of the email, else of the phone, else a hashed user id). The key is
`<kind>-<32 hex>`: SHA-256 over a fixed label, the tenant, the kind and the value, so the same
customer at two tenants gets two unrelated keys, and the key reveals nothing the stored log
does not (its inputs are already tokens or identifiers the log keeps). docs/viewer.md "Sessions".
"""
from __future__ import annotations

import hashlib
import re
from typing import Any

SESSION_KEY_RE = re.compile(r"^(conv|email|phone|user)-[0-9a-f]{32}$")
CONVERSATION_FIELDS = ("conversation_id",)
# (kind, fields of trace.ticket), by precedence: the first present value names the session.
REQUESTER_FIELDS = (("email", ("requester_email", "customer_email", "email")),
                    ("phone", ("requester_phone", "customer_phone", "phone")),
                    ("user", ("user_id",)))
MAX_VALUE_CHARS = 512
_LABEL = b"flusso.session.v1\x1f"


_BASE = hashlib.sha256(_LABEL)  # copied per key: the label is hashed once


def derive_session_key(client_id: str, kind: str, value: str) -> str:
    """`<kind>-<32 hex>`: one-way, tenant-specific (the tenant is hashed in)."""
    digest = _BASE.copy()
    digest.update(f"{client_id}\x1f{kind}\x1f{value}".encode("utf-8", "surrogatepass"))
    return f"{kind}-{digest.hexdigest()[:32]}"


def _value(raw: Any, numbers: bool = False) -> str | None:
    if raw.__class__ is str:
        text = raw.strip()
    elif numbers and isinstance(raw, int) and not isinstance(raw, bool):
        text = str(raw)
    else:
        return None
    return text[:MAX_VALUE_CHARS] if text else None


def session_key(client_id: str, document: Any) -> str | None:
    """The session key of a (redacted, validated) log of `client_id`, or None when the ticket
    names neither a conversation nor a requester. Runs once per stored log: kept cheap."""
    try:
        ticket = document["trace"]["ticket"]
    except (KeyError, TypeError, IndexError):
        return None
    if ticket.__class__ is not dict:
        return None
    for name in CONVERSATION_FIELDS:
        value = _value(ticket.get(name), numbers=True)
        if value is not None:
            return derive_session_key(client_id, "conv", value)
    for kind, names in REQUESTER_FIELDS:  # a requester token is text
        for name in names:
            value = _value(ticket.get(name))
            if value is not None:
                return derive_session_key(client_id, kind, value)
    return None


def session_keys_of(rows: list[dict]) -> list[str | None]:
    """session_key for each row with "client_id" and "ticket" (the stored log's trace.ticket):
    the session-backfill job's derivation, the same function the ingest path calls."""
    return [session_key(r["client_id"], {"trace": {"ticket": r["ticket"]}}) for r in rows]
