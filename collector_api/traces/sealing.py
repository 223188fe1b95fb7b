"""Per-tenant keys from the one server secret FLUSSO_PII_HASH_KEY, and AES-GCM of staged spans.

hashing key = HMAC-SHA256(secret, "flusso-tenant:" + client_id): the Redactor's key, so one
email gives unrelated tokens in two tenants. staging key = HMAC-SHA256(secret,
"flusso-staging:" + client_id): the AES-256-GCM key of the tenant's staged span payloads. The
associated data binds a blob to its tenant, trace and span: a blob copied to another row or
tenant does not decrypt. Pure: no I/O.
"""
from __future__ import annotations

import hashlib
import hmac
import os
from functools import lru_cache

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from otel_bridge.pii import Redactor

NONCE_BYTES = 12


class PayloadError(Exception):
    """A staged payload that does not decrypt under its tenant's key (tampered or misplaced)."""


def derive(secret: str, label: str, client_id: str) -> bytes:
    return hmac.new(secret.encode(), f"{label}:{client_id}".encode(), hashlib.sha256).digest()


def hashing_key(secret: str, client_id: str) -> bytes:
    return derive(secret, "flusso-tenant", client_id)


def staging_key(secret: str, client_id: str) -> bytes:
    return derive(secret, "flusso-staging", client_id)


def _aad(client_id: str, trace_id: str, span_id: str) -> bytes:
    return f"{client_id}\x1f{trace_id}\x1f{span_id}".encode()


class TenantCipher:
    """AES-GCM under one tenant's staging key."""

    __slots__ = ("client_id", "_aead")

    def __init__(self, secret: str, client_id: str):
        self.client_id = client_id
        self._aead = AESGCM(staging_key(secret, client_id))

    def seal(self, trace_id: str, span_id: str, plaintext: bytes) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, plaintext, _aad(self.client_id, trace_id, span_id))

    def open(self, trace_id: str, span_id: str, blob: bytes) -> bytes:
        try:
            return self._aead.decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], _aad(self.client_id, trace_id, span_id))
        except Exception as exc:  # InvalidTag, or a blob too short to hold a nonce
            raise PayloadError(f"span {span_id} of trace {trace_id} does not decrypt") from exc


@lru_cache(maxsize=256)
def cipher(secret: str, client_id: str) -> TenantCipher:
    return TenantCipher(secret, client_id)


@lru_cache(maxsize=256)
def redactor_for(secret: str, client_id: str) -> Redactor:
    """The tenant's Redactor: tokens under its hashing key (never the client's PII_HASH_KEY)."""
    return Redactor(hashing_key(secret, client_id))
