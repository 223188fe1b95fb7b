"""Request dependencies that authenticate: routes contain no auth code."""
from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Mapping
from typing import Annotated

from fastapi import Depends, Request

from collector_api.http.admission import CollectorState
from collector_api.http.credentials import MAX_KEY_LENGTH, presented_api_key
from collector_api.http.errors import CollectorError, Unauthorized, Unavailable, WrongScope
from collector_api.store.accounts.principals import ApiKey, find_api_key
from collector_api.store.core.db import StoreUnavailable


def get_state(request: Request) -> CollectorState:
    return request.app.state.collector


State = Annotated[CollectorState, Depends(get_state)]


async def authenticate(request: Request, scope: str) -> ApiKey:
    """The active API key of the request with `scope`, checked before the body is read."""
    return await authenticate_key(get_state(request), request.headers, scope)


async def authenticate_key(state: CollectorState, metadata: Mapping[str, str], scope: str) -> ApiKey:
    """The active API key in `metadata` (HTTP headers or gRPC metadata, lowercase names) with
    `scope`: Unauthorized when missing, unknown or revoked, WrongScope for another scope,
    Unavailable when the database cannot be asked. Counted under its reason either way."""
    secret = presented_api_key(metadata)
    if not secret:
        state.metrics.rejected.labels("missing_key", "").inc()
        raise Unauthorized("missing API key: send it in the X-API-Key header or as Authorization: Bearer")
    if len(secret) > MAX_KEY_LENGTH:
        raise Unauthorized("invalid API key")
    try:
        key = await find_api_key(state.pool, secret)
    except StoreUnavailable:
        raise Unavailable("database unavailable; retry later",
                          retry_after=state.settings.flusso_retry_after_seconds) from None
    if key is None:
        state.metrics.rejected.labels("invalid_key", "").inc()
        raise Unauthorized("invalid or revoked API key")
    if key.scope != scope:
        state.metrics.rejected.labels("wrong_scope", key.client_id).inc()
        raise WrongScope(f"this API key has scope {key.scope!r}; this endpoint needs {scope!r}")
    state.metrics.health.key_used(key.key_id)  # "keys in use" of the ingest health page
    return key


async def ingest_key(request: Request) -> ApiKey:
    return await authenticate(request, "ingest")


IngestKey = Annotated[ApiKey, Depends(ingest_key)]


async def erase_key(request: Request) -> ApiKey:
    """An erasure's key: scope `erase` only (another scope's key is a 403: it is known, it may not erase)."""
    try:
        return await authenticate(request, "erase")
    except WrongScope as exc:
        raise CollectorError(exc.message, status=403) from None


EraseKey = Annotated[ApiKey, Depends(erase_key)]


def _is_loopback(request: Request) -> bool:
    """A loopback peer that did not come through a proxy: a request relayed by a reverse proxy on
    the same host carries forwarding headers and is treated as remote."""
    if "x-forwarded-for" in request.headers or "forwarded" in request.headers:
        return False
    try:
        return request.client is not None and ipaddress.ip_address(request.client.host).is_loopback
    except ValueError:
        return False


def metrics_access(request: Request, state: State) -> None:
    """/metrics: the metrics token as `Authorization: Bearer`, or a loopback peer when no token is set."""
    token = state.settings.flusso_metrics_token.get_secret_value() if state.settings.flusso_metrics_token else None
    if token:
        presented = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
        if not hmac.compare_digest(presented.encode(), token.encode()):
            raise Unauthorized("metrics need Authorization: Bearer <FLUSSO_METRICS_TOKEN>")
    elif not _is_loopback(request):
        raise CollectorError("metrics are served to loopback clients only unless FLUSSO_METRICS_TOKEN is set",
                             status=403)
