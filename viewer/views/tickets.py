"""Search and filter tickets; CSV and JSON export of the filtered rows."""
from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from fastapi import APIRouter, Request
from fastapi.responses import Response

from collector_api.store.accounts.principals import list_tenants
from collector_api.store.logs.reads import STATUSES, list_filter_values

from ..auth import Principal
from ..context import ViewerContext
from ..deps import Context, CurrentPrincipal
from ..exports import export_csv, export_json
from ..pages import build_ticket_list
from ..query_params import parse_ticket_query
from ..render import render
from ..routing import PageRoute

router = APIRouter(include_in_schema=False, route_class=PageRoute)
MENU_TTL_S = 300.0


async def filter_menus(ctx: ViewerContext, principal: Principal) -> dict[str, list[str]]:
    """Values offered in the filter menus, cached per tenant for MENU_TTL_S (they change rarely)."""
    key = "*" if principal.is_provider else principal.client_id
    hit = ctx.menu_cache.get(key)
    if hit and time.monotonic() - hit[0] < MENU_TTL_S:
        return hit[1]
    since = datetime.now(UTC) - timedelta(days=90)
    menus = await list_filter_values(ctx.pool, principal.scope, since)
    ctx.menu_cache[key] = (time.monotonic(), menus)
    return menus


@router.get("/tickets")
async def get_tickets(request: Request, ctx: Context, principal: CurrentPrincipal) -> Response:
    query = parse_ticket_query(request.query_params, principal)
    data = await build_ticket_list(ctx, principal, query)
    menus = await filter_menus(ctx, principal)
    tenants = await list_tenants(ctx.pool) if principal.is_provider else []
    return render(request, "tickets.html", {
        "principal": principal, "data": data, "query": query, "params": query.params or {}, "menus": menus,
        "statuses": STATUSES, "tenants": tenants,
        "next_link": query.link(after=data["next_cursor"]) if data["next_cursor"] else None,
        "first_link": query.link() if query.after else None,
        "export_query": query.link(),
        "review_flags": ctx.review_flags,
        "dataset_source": "search", "dataset_query": query.link(after=None, sort=None, order=None, limit=None),
    })


@router.get("/tickets/export.csv")
async def get_tickets_csv(request: Request, ctx: Context, principal: CurrentPrincipal) -> Response:
    return export_csv(ctx, principal, request.query_params)


@router.get("/tickets/export.json")
async def get_tickets_json(request: Request, ctx: Context, principal: CurrentPrincipal) -> Response:
    return export_json(ctx, principal, request.query_params)
