"""Tokens to erase a customer: exactly the tokens the bridge's redaction writes into the logs.

    from otel_bridge import erasure_tokens
    tokens = erasure_tokens(email="ann@example.com", phone="+39 333 123 4567", name="Ann Rossi")
    # -> ["[email:...]", "[name:...]", "[phone:...]"]: POST them to /api/v1/erasures as "tokens"

The tokens are HMAC-SHA256 under PII_HASH_KEY (which only the client holds), normalized as the
redaction normalizes (email lower-cased, phone digits only, name lower-cased with single spaces),
`FLUSSO_PII_TOKEN_HEX_CHARS` long, so the collector can find the logs without ever seeing the
values. A phone is matched by its digits: "+39 333..." and "333..." are two different tokens, so
pass every form your systems used. `name_parts=True` adds one token per word of the name (the
bridge also replaces the parts of a known name inside free text; a part such as "Ann" may name
other customers too).
"""

from __future__ import annotations

from collections.abc import Iterable

from otel_bridge.known import MIN_VALUE_CHARS
from otel_bridge.pii import Redactor


def _values(value: str | Iterable[str] | None) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else [v for v in value if isinstance(v, str)]


def erasure_tokens(*, email: str | Iterable[str] | None = None, phone: str | Iterable[str] | None = None,
                   name: str | Iterable[str] | None = None, key: str | bytes | None = None,
                   hex_chars: int | None = None, name_parts: bool = False) -> list[str]:
    """The sorted tokens of these identifiers under `key` (default: PII_HASH_KEY from the environment
    or .env, resolved exactly as configure() resolves it) and `hex_chars` (default: FLUSSO_PII_TOKEN_HEX_CHARS)."""
    if key is None or hex_chars is None:
        from config.bridge import BridgeSettings
        from otel_bridge.pipeline import resolve_hash_key

        settings = BridgeSettings()
        key = resolve_hash_key(settings) if key is None else key
        hex_chars = settings.pii_token_hex_chars if hex_chars is None else hex_chars
    redactor = Redactor(key, hex_chars=hex_chars)
    tokens = {redactor.token("email", v) for v in _values(email) if v.strip()}
    tokens |= {redactor.token("phone", v) for v in _values(phone) if any(c.isdigit() for c in v)}
    for full in (v for v in _values(name) if v.strip()):
        tokens.add(redactor.token("name", full))
        if name_parts:
            tokens |= {redactor.token("name", part) for part in full.split() if len(part) >= MIN_VALUE_CHARS}
    return sorted(tokens)
