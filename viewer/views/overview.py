"""Overview: totals and charts for a date range (default: the last 30 days)."""
from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta

from fastapi import APIRouter, Request
from fastapi.responses import Response

from collector_api.store.accounts.principals import list_tenants

from ..deps import Context, CurrentPrincipal
from ..pages import build_overview
from ..render import render
from ..routing import PageRoute

logger = logging.getLogger(__name__)
router = APIRouter(include_in_schema=False, route_class=PageRoute)


async def _no_tenants() -> list:
    return []


@router.get("/")
async def get_overview(request: Request, ctx: Context, principal: CurrentPrincipal) -> Response:
    data, tenants = await asyncio.gather(build_overview(ctx, principal, request.query_params, critical_nodes=True),
                                         list_tenants(ctx.pool) if principal.is_provider else _no_tenants())
    critical = data["critical_nodes"]
    start = datetime.fromisoformat(data["stats"]["start"]).date()
    last_day = (datetime.fromisoformat(data["stats"]["end"]) - timedelta(microseconds=1)).date()
    return render(request, "overview.html", {"principal": principal, "stats": data["stats"], "client": data["client"],
                                             "tenants": tenants, "start_day": start.isoformat(),
                                             "end_day": last_day.isoformat(), "critical_nodes": critical})
