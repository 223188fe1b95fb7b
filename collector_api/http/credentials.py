"""Where a request carries its API key. Header parsing only (no web framework, no SQL), so the
collector and the viewer share it without either importing the other."""
from __future__ import annotations

from collections.abc import Mapping

MAX_KEY_LENGTH = 512  # longer is no key of ours: refused without a database lookup


def presented_api_key(headers: Mapping[str, str]) -> str | None:
    """The API key in `X-API-Key`, else in `Authorization: Bearer <key>`; None when neither is set."""
    key = headers.get("x-api-key")
    if key:
        return key.strip()
    scheme, _, token = headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return None
