"""Search and filter tickets; CSV and JSON export of the filtered rows."""
from __future__ import annotations

import asyncio
import csv
import io
import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse

from collector_api.store.accounts.principals import list_tenants
from collector_api.store.logs.reads import STATUSES, count_tickets, iter_ticket_rows, list_filter_values, list_tickets

from ..auth import Principal
from ..context import ViewerContext
from ..deps import Context, CurrentPrincipal
from ..jsonout import dumps
from ..query_params import TicketQuery, encode_cursor, parse_ticket_query
from ..render import render
from ..routing import PageRoute

router = APIRouter(include_in_schema=False, route_class=PageRoute)

EXPORT_COLUMNS = ("id", "client_id", "ticket_id", "status", "resolution_status", "executed_at", "environment",
                  "workflow_version", "overall_confidence", "hallucination_risk", "react_iterations",
                  "execution_time_seconds", "input_tokens", "output_tokens", "cost_usd", "complete", "trace_id")


def row_json(row: dict) -> dict:
    """A stored row as JSON-ready values (timestamps as ISO 8601)."""
    return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in row.items() if k != "log_data"}


async def build_ticket_list(ctx: ViewerContext, principal: Principal, query: TicketQuery) -> dict[str, Any]:
    """The data of one page of search results; rendered as HTML by /tickets, as JSON by the API."""
    pool = ctx.pool
    # Two connections at once: the page and its capped count cost about the same on large ranges.
    page, count = await asyncio.gather(
        list_tickets(pool, principal.scope, query.filters, sort=query.sort, descending=query.descending,
                     limit=query.limit, after=query.after),
        count_tickets(pool, principal.scope, query.filters))
    next_cursor = encode_cursor(page.next_cursor) if page.next_cursor else None
    return {"tickets": page.rows, "count": count.value, "count_capped": count.capped, "count_text": str(count),
            "next_cursor": next_cursor, "filters": query.params or {}}


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
    })


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Any) -> Any:
    """Neutralize spreadsheet formulas: a text cell starting with = + - @ (or tab/CR) gets a `'` prefix."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def _export_rows(ctx: ViewerContext, principal: Principal, params: Mapping[str, str]):
    query = parse_ticket_query(params, principal)
    return iter_ticket_rows(ctx.pool, principal.scope, query.filters, max_rows=ctx.settings.flusso_export_max_rows)


def _stamp() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")


def export_csv(ctx: ViewerContext, principal: Principal, params: Mapping[str, str]) -> Response:
    """The filtered rows as a streamed CSV download (a bad filter is refused before it starts)."""
    rows = _export_rows(ctx, principal, params)

    async def chunks():
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(EXPORT_COLUMNS)
        n = 0
        async for row in rows:
            writer.writerow([csv_cell(row.get(c)) for c in EXPORT_COLUMNS])
            n += 1
            if n % 500 == 0:
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
        yield buffer.getvalue()

    return StreamingResponse(chunks(), media_type="text/csv; charset=utf-8", headers={
        "Content-Disposition": f'attachment; filename="tickets-{_stamp()}.csv"'})


def export_json(ctx: ViewerContext, principal: Principal, params: Mapping[str, str]) -> Response:
    """The filtered rows as a streamed JSON array download."""
    rows = _export_rows(ctx, principal, params)

    async def chunks():
        yield b"["
        first = True
        async for row in rows:
            yield (b"" if first else b",\n") + dumps(row_json(row))
            first = False
        yield b"]\n"

    return StreamingResponse(chunks(), media_type="application/json", headers={
        "Content-Disposition": f'attachment; filename="tickets-{_stamp()}.json"'})


@router.get("/tickets/export.csv")
async def get_tickets_csv(request: Request, ctx: Context, principal: CurrentPrincipal) -> Response:
    return export_csv(ctx, principal, request.query_params)


@router.get("/tickets/export.json")
async def get_tickets_json(request: Request, ctx: Context, principal: CurrentPrincipal) -> Response:
    return export_json(ctx, principal, request.query_params)
