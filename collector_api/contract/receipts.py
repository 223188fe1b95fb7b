"""Erasure requests and receipts, pure: validation of what is asked, the receipt, its HMAC.

A request asks by ticket ids, trace ids, person tokens (``[email:3f2a...]``, as the bridge's
redaction writes them: otel_bridge.erasure_tokens) and, for /v1/traces logs, raw identifiers
(email, phone, name) that the collector turns into the tenant's tokens at once: a raw value is
never stored, logged or put in a receipt.

A receipt is JSON: what was asked (ids and tokens only), the counts per kind of data erased,
start and finish, and ``signature`` = HMAC-SHA256 under FLUSSO_RECEIPT_KEY of the canonical JSON
of everything else (sorted keys, no spaces, ASCII). ``verify`` recomputes it in constant time.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import re
from dataclasses import dataclass
from typing import Any

RECEIPT_FORMAT = "flusso-erasure-receipt/1"
MAX_ITEMS = 100_000  # ids + tokens + identifiers in one request (the body cap bounds it as well)
REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}$")
TRACE_ID_RE = re.compile(r"^([0-9a-f]{32}|(idem|legacy):[0-9a-f]{64})$")  # OTLP, or a legacy log's stored id
TOKEN_RE = re.compile(r"^\[[a-z][a-z0-9_]{0,31}:[0-9a-f]{12,64}\]$")
IDENTIFIER_KINDS = ("email", "phone", "name")


class ReceiptError(ValueError):
    """A bad erasure request (400, naming the field) or receipt."""

    status = 400


@dataclass(frozen=True)
class ErasureRequest:
    request_id: str
    ticket_ids: tuple[str, ...]
    trace_ids: tuple[str, ...]
    tokens: tuple[str, ...]
    identifiers: tuple[tuple[str, str], ...]  # (kind, raw value): hashed by the collector, never kept


def _strings(body: dict, field: str, check, what: str) -> tuple[str, ...]:
    value = body.get(field, [])
    if not isinstance(value, list):
        raise ReceiptError(f"{field}: expected a list of {what}")
    for i, item in enumerate(value):
        if not isinstance(item, str) or not check(item):
            raise ReceiptError(f"{field}[{i}]: expected {what}")
    return tuple(dict.fromkeys(value))


def _ticket_ok(value: str) -> bool:
    return 0 < len(value) <= 256 and "\x00" not in value and value.strip() == value


def _identifiers(body: dict) -> tuple[tuple[str, str], ...]:
    value = body.get("identifiers", {})
    if not isinstance(value, dict):
        raise ReceiptError("identifiers: expected an object {\"email\": [...], \"phone\": [...], \"name\": [...]}")
    out: list[tuple[str, str]] = []
    for kind, values in value.items():
        if kind not in IDENTIFIER_KINDS:
            raise ReceiptError(f"identifiers.{str(kind)[:40]}: expected one of {', '.join(IDENTIFIER_KINDS)}")
        values = [values] if isinstance(values, str) else values
        if not isinstance(values, list) or not all(isinstance(v, str) and 0 < len(v.strip()) <= 1000 and "\x00" not in v
                                                   for v in values):
            raise ReceiptError(f"identifiers.{kind}: expected a list of non-empty strings (at most 1000 characters)")
        out += [(kind, v) for v in values]
    return tuple(dict.fromkeys(out))


def parse_request(body: Any) -> ErasureRequest:
    """An erasure request from its JSON body, or ReceiptError naming the bad field."""
    if not isinstance(body, dict):
        raise ReceiptError("body: expected a JSON object with request_id and ticket_ids, trace_ids, tokens"
                           " or identifiers")
    unknown = set(body) - {"request_id", "ticket_ids", "trace_ids", "tokens", "identifiers"}
    if unknown:
        raise ReceiptError(f"{sorted(map(str, unknown))[0][:40]}: unknown field")
    request_id = body.get("request_id")
    if not isinstance(request_id, str) or not REQUEST_ID_RE.match(request_id):
        raise ReceiptError("request_id: expected 1-100 of A-Z a-z 0-9 _ . : - (your id for this request; the same"
                           " id returns the same receipt)")
    request = ErasureRequest(
        request_id, _strings(body, "ticket_ids", _ticket_ok, "ticket ids (1-256 characters)"),
        _strings(body, "trace_ids", TRACE_ID_RE.match,
                 "trace ids (32 lowercase hex digits, or a legacy log's idem:/legacy: id)"),
        _strings(body, "tokens", TOKEN_RE.match, "tokens like [email:3f2a9c01b7de] (otel_bridge.erasure_tokens)"),
        _identifiers(body))
    size = len(request.ticket_ids) + len(request.trace_ids) + len(request.tokens) + len(request.identifiers)
    if size == 0:
        raise ReceiptError("body: nothing to erase: give ticket_ids, trace_ids, tokens or identifiers")
    if size > MAX_ITEMS:
        raise ReceiptError(f"body: {size} ids, tokens and identifiers; at most {MAX_ITEMS} in one request")
    return request


def canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def asked_digest(asked: dict) -> str:
    return hashlib.sha256(canonical(asked)).hexdigest()


def receipt_of(row: dict) -> dict:
    """The unsigned receipt of a finished erasure_log row."""
    return {"format": RECEIPT_FORMAT, "request_id": row["request_id"], "client_id": row["client_id"],
            "kind": row["kind"], "asked": row["asked"], "asked_sha256": row["asked_sha256"],
            "counts": dict(sorted(row["counts"].items())), "status": row["status"],
            "started_at": row["started_at"].isoformat(),
            "finished_at": row["finished_at"].isoformat() if row["finished_at"] else None}


def _mac(receipt: dict, key: str) -> str:
    body = {k: v for k, v in receipt.items() if k != "signature"}
    return hmac.new(key.encode(), canonical(body), hashlib.sha256).hexdigest()


def sign(receipt: dict, key: str) -> dict:
    if not key:
        raise ReceiptError("FLUSSO_RECEIPT_KEY is not set")
    return {**receipt, "signature": {"alg": "HMAC-SHA256", "value": _mac(receipt, key)}}


def verify(receipt: Any, key: str) -> bool:
    """True when `receipt` carries a valid HMAC-SHA256 under `key` of everything else in it."""
    if not key or not isinstance(receipt, dict):
        return False
    signature = receipt.get("signature")
    if not isinstance(signature, dict) or signature.get("alg") != "HMAC-SHA256":
        return False
    value = signature.get("value")
    return isinstance(value, str) and hmac.compare_digest(value.encode(), _mac(receipt, key).encode())
