"""Request dependencies that authenticate: routes contain no auth code."""
from __future__ import annotations

from fastapi import Request

from .errors import Unauthorized, Unavailable
from .state import CollectorState
from .store.accounts import ApiKey, find_api_key
from .store.db import StoreUnavailable


def get_state(request: Request) -> CollectorState:
    return request.app.state.collector


def presented_key(request: Request) -> str | None:
    key = request.headers.get("x-api-key")
    if key:
        return key.strip()
    auth = request.headers.get("authorization", "")
    scheme, _, token = auth.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return None


async def authenticate(request: Request, scope: str) -> ApiKey:
    """The active API key of the request with `scope`, checked before the body is read."""
    state = get_state(request)
    secret = presented_key(request)
    if not secret:
        state.metrics.rejected.labels("missing_key", "").inc()
        raise Unauthorized("missing API key: send it in the X-API-Key header or as Authorization: Bearer")
    if len(secret) > 512:
        raise Unauthorized("invalid API key")
    try:
        key = await find_api_key(state.pool, secret)
    except StoreUnavailable:
        raise Unavailable("database unavailable; retry later", retry_after=state.settings.flusso_retry_after_seconds)
    if key is None:
        state.metrics.rejected.labels("invalid_key", "").inc()
        raise Unauthorized("invalid or revoked API key")
    if key.scope != scope:
        state.metrics.rejected.labels("wrong_scope", key.client_id).inc()
        raise Unauthorized(f"this API key has scope {key.scope!r}; this endpoint needs {scope!r}")
    return key


async def ingest_key(request: Request) -> ApiKey:
    return await authenticate(request, "ingest")


async def read_key(request: Request) -> ApiKey:
    return await authenticate(request, "read")
