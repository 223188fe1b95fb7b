"""Search and filter tickets; CSV and JSON export of the filtered rows."""
from __future__ import annotations

import asyncio
import csv
import io
import time
from datetime import datetime, timedelta, timezone
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response, StreamingResponse

from collector_api.store.accounts import list_tenants
from collector_api.store.reads import STATUSES, count_tickets, iter_ticket_rows, list_filter_values, list_tickets

from ..auth import Principal, page_principal
from ..filters import TicketQuery, encode_cursor, parse_ticket_query
from ..jsonout import dumps
from ..render import render

router = APIRouter(include_in_schema=False)

EXPORT_COLUMNS = ("id", "client_id", "ticket_id", "status", "resolution_status", "executed_at", "environment",
                  "workflow_version", "overall_confidence", "hallucination_risk", "react_iterations",
                  "execution_time_seconds", "input_tokens", "output_tokens", "cost_usd", "complete", "trace_id")


def row_json(row: dict) -> dict:
    """A stored row as JSON-ready values (timestamps as ISO 8601)."""
    return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in row.items() if k != "log_data"}


async def build_ticket_list(request: Request, principal: Principal, query: TicketQuery) -> dict[str, Any]:
    """The data of one page of search results; rendered as HTML by /tickets, as JSON by the API."""
    pool = request.app.state.viewer.pool
    # Two connections at once: the page and its capped count cost about the same on large ranges.
    page, count = await asyncio.gather(
        list_tickets(pool, principal.scope, query.filters, sort=query.sort, descending=query.descending,
                     limit=query.limit, after=query.after),
        count_tickets(pool, principal.scope, query.filters))
    next_cursor = encode_cursor(page.next_cursor) if page.next_cursor else None
    return {"tickets": page.rows, "count": count.value, "count_capped": count.capped, "count_text": str(count),
            "next_cursor": next_cursor, "filters": query.params or {}}


MENU_TTL_S = 300.0


async def filter_menus(request: Request, principal: Principal) -> dict[str, list[str]]:
    """Values offered in the filter menus, cached per tenant for MENU_TTL_S (they change rarely)."""
    ctx = request.app.state.viewer
    key = "*" if principal.is_provider else principal.client_id
    hit = ctx.menu_cache.get(key)
    if hit and time.monotonic() - hit[0] < MENU_TTL_S:
        return hit[1]
    since = datetime.now(timezone.utc) - timedelta(days=90)
    menus = await list_filter_values(ctx.pool, principal.scope, since)
    ctx.menu_cache[key] = (time.monotonic(), menus)
    return menus


@router.get("/tickets")
async def get_tickets(request: Request, principal: Annotated[Principal, Depends(page_principal)]) -> Response:
    ctx = request.app.state.viewer
    query = parse_ticket_query(request.query_params, principal)
    data = await build_ticket_list(request, principal, query)
    menus = await filter_menus(request, principal)
    tenants = await list_tenants(ctx.pool) if principal.is_provider else []
    return render(request, "tickets.html", {
        "principal": principal, "data": data, "query": query, "params": query.params or {}, "menus": menus,
        "statuses": STATUSES, "tenants": tenants,
        "next_link": query.link(after=data["next_cursor"]) if data["next_cursor"] else None,
        "first_link": query.link() if query.after else None,
        "export_query": query.link(),
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


async def _export_rows(request: Request, principal: Principal):
    ctx = request.app.state.viewer
    query = parse_ticket_query(request.query_params, principal)
    return iter_ticket_rows(ctx.pool, principal.scope, query.filters, max_rows=ctx.settings.flusso_export_max_rows)


def _stamp() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")


async def export_csv(request: Request, principal: Principal) -> Response:
    rows = await _export_rows(request, principal)

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


async def export_json(request: Request, principal: Principal) -> Response:
    rows = await _export_rows(request, principal)

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
async def get_tickets_csv(request: Request, principal: Annotated[Principal, Depends(page_principal)]) -> Response:
    return await export_csv(request, principal)


@router.get("/tickets/export.json")
async def get_tickets_json(request: Request, principal: Annotated[Principal, Depends(page_principal)]) -> Response:
    return await export_json(request, principal)
