"""Liveness, readiness and the collector's Prometheus metrics."""
from __future__ import annotations

import hmac
import ipaddress

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST

from .deps import get_state
from .errors import CollectorError, Unauthorized
from .store.health import check_database

router = APIRouter()


@router.get("/healthz", summary="The process is up")
async def get_healthz() -> dict:
    return {"status": "ok"}


@router.get("/readyz", summary="The database is reachable and migrated")
async def get_readyz(request: Request) -> JSONResponse:
    state = get_state(request)
    problem = await check_database(state.pool)
    if problem:
        return JSONResponse({"status": "unavailable", "reason": problem}, status_code=503,
                            headers={"Retry-After": str(state.settings.flusso_retry_after_seconds)})
    return JSONResponse({"status": "ready"})


def _is_loopback(request: Request) -> bool:
    """A loopback peer that did not come through a proxy: a request relayed by a reverse proxy on
    the same host carries forwarding headers and is treated as remote."""
    if "x-forwarded-for" in request.headers or "forwarded" in request.headers:
        return False
    try:
        return request.client is not None and ipaddress.ip_address(request.client.host).is_loopback
    except ValueError:
        return False


@router.get("/metrics", summary="Prometheus metrics (metrics token, or loopback when none is set)")
async def get_metrics(request: Request) -> Response:
    state = get_state(request)
    token = state.settings.flusso_metrics_token
    if token:
        presented = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
        if not hmac.compare_digest(presented.encode(), token.encode()):
            raise Unauthorized("metrics need Authorization: Bearer <FLUSSO_METRICS_TOKEN>")
    elif not _is_loopback(request):
        raise CollectorError("metrics are served to loopback clients only unless FLUSSO_METRICS_TOKEN is set",
                             status=403)
    return Response(state.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)
