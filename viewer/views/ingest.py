"""Ingest health (provider only): which tenants are sending, what is rejected and why, who went
silent, and whether the background jobs keep up (each job's lag: now - its last success, late
beyond 3 intervals). The page /ingest and GET /api/v1/ingest-health show the same data
(store.ingest_health, the process's job board); a client user or a read key gets 404, as for an
address that does not exist."""
from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from collector_api.store.core.job_status import LATE_FACTOR, JobLag
from collector_api.store.ingest_health.reads import (
    SILENT_FACTOR,
    SILENT_FLOOR_S,
    WINDOWS,
    TenantHealth,
    read_ingest_health,
)

from ..auth import Principal
from ..context import ViewerContext
from ..deps import ApiPrincipal, Context, CurrentPrincipal
from ..errors import NotFound
from ..jsonout import dumps
from ..render import render
from ..routing import ApiRoute, PageRoute

router = APIRouter(include_in_schema=False, route_class=PageRoute)
api_router = APIRouter(prefix="/api/v1", tags=["viewer"], route_class=ApiRoute)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def tenant_json(item: TenantHealth) -> dict[str, Any]:
    return {
        "client_id": item.client_id, "accepted": item.accepted, "rejected": item.rejected,
        "rejected_by_reason": item.rejected_by_reason,
        "last_rejection": ({"reason": item.last_rejection_reason, "at": _iso(item.last_rejection_at)}
                           if item.last_rejection_at else None),
        "last_seen": _iso(item.last_seen),
        "keys_in_use": {w: [{"key_id": k["key_id"], "last_used_at": _iso(k["last_used_at"])} for k in keys]
                        for w, keys in item.keys_in_use.items()},
        "median_gap_s": item.median_gap_s, "silent_after_s": item.silent_after_s, "silent": item.silent,
    }


def job_json(job: JobLag) -> dict[str, Any]:
    return {"name": job.name, "interval_s": job.interval_s, "lag_s": round(job.lag_s, 3), "late": job.late,
            "last_ok_at": _iso(datetime.fromtimestamp(job.last_ok_at, UTC)) if job.last_ok_at is not None else None,
            "last_error": job.last_error, "running_s": job.running_s, "per_process": job.per_process}


async def build_ingest_health(ctx: ViewerContext, principal: Principal) -> dict[str, Any]:
    if not principal.is_provider:
        raise NotFound("there is no page at this address")
    now = datetime.now(UTC)
    tenants = await read_ingest_health(ctx.pool, principal.scope, now=now)
    return {"generated_at": now.isoformat(), "windows": list(WINDOWS), "silent_floor_s": SILENT_FLOOR_S,
            "silent_factor": SILENT_FACTOR, "tenants": [tenant_json(t) for t in tenants],
            "late_factor": LATE_FACTOR, "jobs": [job_json(j) for j in ctx.jobs.snapshot()]}


@router.get("/ingest")
async def get_ingest(request: Request, ctx: Context, principal: CurrentPrincipal) -> Response:
    if not principal.is_provider:
        raise NotFound("there is no page at this address")
    tenants = await read_ingest_health(ctx.pool, principal.scope)
    return render(request, "ingest.html", {"principal": principal, "tenants": tenants,
                                           "windows": list(WINDOWS), "floor_h": SILENT_FLOOR_S / 3600,
                                           "jobs": ctx.jobs.snapshot(), "late_factor": LATE_FACTOR})


@api_router.get("/ingest-health", summary="Ingest health per tenant, last 24 h and 7 days (provider only)",
                description="Accepted and rejected logs by reason code, last rejection, last seen, keys in use"
                " and the silent flag per tenant (`client_id` \"\" = requests no key identified), and every"
                " background job's lag (`jobs`: late when its last success is more than `late_factor`"
                " intervals ago). A client session or a read key gets 404.",
                responses={401: {"description": "No session and no valid read-scope API key"},
                           404: {"description": "Not a provider"}})
async def get_api_ingest_health(ctx: Context, principal: ApiPrincipal) -> Response:
    return Response(dumps(await build_ingest_health(ctx, principal)), media_type="application/json")
