"""Overview: totals and charts for a date range (default: the last 30 days)."""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from collector_api.store.accounts import list_tenants
from collector_api.store.reads import get_stats, refresh_rollups

from ..auth import Principal
from ..context import ViewerContext
from ..deps import Context, CurrentPrincipal
from ..query_params import DEFAULT_RANGE_DAYS, parse_client, parse_range
from ..render import render
from ..routing import PageRoute

logger = logging.getLogger(__name__)
router = APIRouter(include_in_schema=False, route_class=PageRoute)


async def _refresh_in_background(ctx) -> None:
    try:
        await refresh_rollups(ctx.pool)
        ctx.rollups_refreshed_at = time.monotonic()
    except Exception:  # noqa: BLE001 - retried on a later request; the overview keeps serving
        logger.exception("background rollup refresh failed")
    finally:
        ctx.rollup_task = None


async def ensure_rollups(ctx) -> bool:
    """Whether the overview may read rollups; starts a background refresh when they are stale.

    Never waits: days not rolled up yet are aggregated live by get_stats, so the numbers are
    right from the first request on, only slower until the first refresh has run.
    """
    interval = ctx.settings.flusso_rollup_refresh_seconds
    if interval <= 0:
        return False
    stale = ctx.rollups_refreshed_at is None or time.monotonic() - ctx.rollups_refreshed_at > interval
    if stale and ctx.rollup_task is None:
        ctx.rollup_task = asyncio.create_task(_refresh_in_background(ctx))
    return True


def stats_json(stats) -> dict[str, Any]:
    """The stats as JSON-ready data: what /api/v1/stats answers and what the charts plot."""
    return {
        "start": stats.start.isoformat(), "end": stats.end.isoformat(),
        "totals": stats.totals, "per_day": stats.per_day, "duration_histogram": stats.duration_histogram,
        "node_durations": stats.node_durations,
        "per_client": [{**c, "last_ticket_at": c["last_ticket_at"].isoformat() if c.get("last_ticket_at") else None}
                       for c in stats.per_client],
    }


async def build_overview(ctx: ViewerContext, principal: Principal, params: Mapping[str, str]) -> dict[str, Any]:
    """Parse the range (and client, for providers) from `params` and compute the stats once."""
    start, end = parse_range(params, default_days=DEFAULT_RANGE_DAYS)
    client = parse_client(params, principal)
    use_rollups = await ensure_rollups(ctx)
    stats = await get_stats(ctx.pool, principal.scope, start, end, client_id=client, use_rollups=use_rollups)
    return {"stats": stats_json(stats), "client": client}


@router.get("/")
async def get_overview(request: Request, ctx: Context, principal: CurrentPrincipal) -> Response:
    data = await build_overview(ctx, principal, request.query_params)
    tenants = await list_tenants(ctx.pool) if principal.is_provider else []
    start = datetime.fromisoformat(data["stats"]["start"]).date()
    last_day = (datetime.fromisoformat(data["stats"]["end"]) - timedelta(microseconds=1)).date()
    return render(request, "overview.html", {"principal": principal, "stats": data["stats"], "client": data["client"],
                                             "tenants": tenants, "start_day": start.isoformat(),
                                             "end_day": last_day.isoformat()})
