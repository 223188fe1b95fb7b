"""Liveness, readiness and the collector's Prometheus metrics."""
from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST

from .deps import State, metrics_access
from .routing import CollectorRoute
from .store.health import check_database

router = APIRouter(route_class=CollectorRoute)


@router.get("/healthz", summary="The process is up")
async def get_healthz() -> dict:
    return {"status": "ok"}


@router.get("/readyz", summary="The database is reachable and migrated, and the process is not draining")
async def get_readyz(request: Request, state: State) -> JSONResponse:
    retry = {"Retry-After": str(state.settings.flusso_retry_after_seconds)}
    drain = getattr(request.app.state, "drain", None)
    if drain is not None and drain.draining:  # shutting down: load balancers stop sending here
        return JSONResponse({"status": "draining", "reason": "the process is shutting down"}, status_code=503,
                            headers=retry)
    problem = await check_database(state.pool)
    if problem:
        return JSONResponse({"status": "unavailable", "reason": problem}, status_code=503, headers=retry)
    return JSONResponse({"status": "ready"})


@router.get("/metrics", summary="Prometheus metrics (metrics token, or loopback when none is set)",
            dependencies=[Depends(metrics_access)])
async def get_metrics(state: State) -> Response:
    return Response(state.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)
