"""Liveness, readiness and the collector's Prometheus metrics."""
from __future__ import annotations

import logging

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST

from collector_api.http.auth import State, metrics_access
from collector_api.http.errors import CollectorError
from collector_api.http.openapi_docs import error_responses
from collector_api.http.responses import CollectorRoute
from collector_api.store.core.health import check_database

logger = logging.getLogger(__name__)
router = APIRouter(route_class=CollectorRoute)


@router.get("/healthz", summary="The process is up")
async def get_healthz() -> dict:
    return {"status": "ok"}


_READY = {"type": "object", "properties": {
    "status": {"type": "string"}, "reason": {"type": "string"},
    "late_jobs": {"type": "array", "items": {"type": "string"},
                  "description": "Provider detail: jobs whose last success is more than 3 intervals ago"},
    "jobs": {"type": "array", "items": {"type": "object"},
             "description": "Provider detail: every background job's lag, interval and last error"}}}


def job_detail(request: Request, state: State) -> dict:
    """The background jobs' lag for the provider (the metrics token, or loopback when none is
    set: the access rule of /metrics); {} for anyone else. A late job does not make the process
    unready: taking it out of rotation would not make the job run."""
    try:
        metrics_access(request, state)
    except CollectorError:
        return {}
    jobs = state.metrics.jobs.snapshot()
    return {"late_jobs": [job.name for job in jobs if job.late],
            "jobs": [{"name": job.name, "interval_s": job.interval_s, "lag_s": round(job.lag_s, 3),
                      "late": job.late, "running_s": job.running_s, "last_error": job.last_error}
                     for job in jobs]}


@router.get("/readyz", summary="The database is reachable and migrated, and the process is not draining;"
            " with the metrics token (or from loopback when none is set), the background jobs' lag",
            responses={200: {"description": "Ready", "content": {"application/json": {"schema": _READY}}},
                       503: {"description": "Draining after SIGTERM, or the database unavailable or not migrated;"
                             " see Retry-After", "content": {"application/json": {"schema": _READY}}}})
async def get_readyz(request: Request, state: State) -> JSONResponse:
    retry = {"Retry-After": str(state.settings.flusso_retry_after_seconds)}
    drain = getattr(request.app.state, "drain", None)
    if drain is not None and drain.draining:  # shutting down: load balancers stop sending here
        return JSONResponse({"status": "draining", "reason": "the process is shutting down"}, status_code=503,
                            headers=retry)
    problem = await check_database(state.pool)
    if problem:
        # Anonymous callers learn only what to do; the database's own words (host names, roles,
        # error texts) go to the log.
        logger.warning("/readyz: %s", problem)
        public = problem if problem.startswith(("schema lacks", "database not migrated")) else "database unavailable"
        return JSONResponse({"status": "unavailable", "reason": public, **job_detail(request, state)},
                            status_code=503, headers=retry)
    return JSONResponse({"status": "ready", **job_detail(request, state)})


@router.get("/metrics", summary="Prometheus metrics (metrics token, or loopback when none is set)",
            dependencies=[Depends(metrics_access)],
            responses={200: {"description": "Prometheus text format", "content": {CONTENT_TYPE_LATEST: {}}},
                       **error_responses(401, 403)})
async def get_metrics(state: State) -> Response:
    return Response(state.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)
