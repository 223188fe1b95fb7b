"""Overview: totals and charts for a date range (default: the last 30 days)."""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from collector_api.store.accounts.principals import list_tenants
from collector_api.store.logs.reads import get_stats
from collector_api.store.logs.usage import get_critical_nodes
from collector_api.store.reviews.reads import get_calibration

from ..auth import Principal
from ..context import ViewerContext
from ..deps import Context, CurrentPrincipal
from ..query_params import DEFAULT_RANGE_DAYS, parse_client, parse_range
from ..render import render
from ..routing import PageRoute

logger = logging.getLogger(__name__)
router = APIRouter(include_in_schema=False, route_class=PageRoute)


def rollups_enabled(ctx) -> bool:
    """Whether the overview may read rollups: the server's rollup-refresh job keeps them current
    (flusso_obs/server.py); with FLUSSO_ROLLUP_REFRESH_SECONDS=0 there is no job and every
    request aggregates raw logs. Days not rolled up yet are aggregated live by get_stats."""
    return ctx.settings.flusso_rollup_refresh_seconds > 0


def stats_json(stats) -> dict[str, Any]:
    """The stats as JSON-ready data: what /api/v1/stats answers and what the charts plot."""
    return {
        "start": stats.start.isoformat(), "end": stats.end.isoformat(),
        "totals": stats.totals, "per_day": stats.per_day, "duration_histogram": stats.duration_histogram,
        "node_durations": stats.node_durations,
        "per_client": [{**c, "last_ticket_at": c["last_ticket_at"].isoformat() if c.get("last_ticket_at") else None}
                       for c in stats.per_client],
    }


async def build_overview(ctx: ViewerContext, principal: Principal, params: Mapping[str, str], *,
                         critical_nodes: bool = False) -> dict[str, Any]:
    """Parse the range (and client, for providers) from `params` and compute the stats once; with
    `critical_nodes` also the nodes most often on the critical path. The queries run side by side
    (each in its own pooled connection): the page waits for the slowest, not for their sum."""
    start, end = parse_range(params, default_days=DEFAULT_RANGE_DAYS)
    client = parse_client(params, principal)
    use_rollups = rollups_enabled(ctx)
    reads = [get_stats(ctx.pool, principal.scope, start, end, client_id=client, use_rollups=use_rollups),
             get_calibration(ctx.pool, principal.scope, start, end, client)]
    if critical_nodes:
        reads.append(get_critical_nodes(ctx.pool, principal.scope, start, end, client_id=client,
                                        use_rollups=use_rollups))
    stats, calibration, *critical = await asyncio.gather(*reads)
    data = stats_json(stats)
    data["calibration"] = calibration  # issue 17: confidence against reviewers' verdicts
    return {"stats": data, "client": client, "critical_nodes": critical[0] if critical else []}


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
