"""Customer sessions: the list (latest contact first, keyset pages) and one session's timeline,
as pages and as the JSON API (viewer.session_pages builds both)."""
from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from collector_api.store.accounts.principals import list_tenants

from ..deps import ApiPrincipal, Context, CurrentPrincipal
from ..jsonout import dumps
from ..query_params import parse_session_query
from ..render import render
from ..routing import ApiRoute, PageRoute
from ..session_pages import build_session, build_session_list

router = APIRouter(include_in_schema=False, route_class=PageRoute)
api_router = APIRouter(prefix="/api/v1", tags=["sessions"], route_class=ApiRoute)
Q = Annotated[str | None, Query()]
_DETAIL = {"application/json": {"schema": {"type": "object", "properties": {"detail": {"type": "string"}},
                                            "required": ["detail"]}}}
_ERRORS = {400: {"description": "A bad parameter (named in `detail`)", "content": _DETAIL},
           401: {"description": "No session and no valid read-scope API key", "content": _DETAIL},
           503: {"description": "The database is unavailable", "content": _DETAIL}}
_LIST_DOC = ("Sessions with a ticket in the range, latest contact first: per session its key (a one-way token,"
             " never the customer), tickets, first and last contact, outcomes, resolved tickets, cost and open"
             " reviews (FAILED or PARTIAL tickets without a review), all within the range. `client` (providers"
             " only), `start`/`end` (YYYY-MM-DD or ISO 8601; default the last 30 days), `recontacted` yes (2+"
             " tickets in the range) | no, `limit` 1-500 (default 50), `after` = the previous page's `next_cursor`.")


@router.get("/sessions")
async def get_sessions(request: Request, ctx: Context, principal: CurrentPrincipal) -> Response:
    query = parse_session_query(request.query_params, principal)
    data = await build_session_list(ctx, principal, query)
    tenants = await list_tenants(ctx.pool) if principal.is_provider else []
    return render(request, "sessions.html", {
        "principal": principal, "data": data, "params": query.params or {}, "tenants": tenants,
        "client": query.filters.client_id,
        "start_day": query.filters.start.date().isoformat(),
        "end_day": (query.filters.end - timedelta(microseconds=1)).date().isoformat(),
        "next_link": query.link(after=data["next_cursor"]) if data["next_cursor"] else None,
        "first_link": query.link() if query.after else None})


@router.get("/sessions/{key}")
async def get_session_page(request: Request, key: str, ctx: Context, principal: CurrentPrincipal) -> Response:
    data = await build_session(ctx, principal, key, request.query_params)
    next_link = f"after={data['next_cursor']}" if data["next_cursor"] else None
    return render(request, "session.html", {"principal": principal, "s": data, "next_link": next_link})


@api_router.get("/sessions", summary="Customer sessions (keyset pages)", description=_LIST_DOC, responses=_ERRORS)
async def get_api_sessions(request: Request, ctx: Context, principal: ApiPrincipal, client: Q = None,
                           start: Q = None, end: Q = None, recontacted: Q = None, limit: Q = None,
                           after: Q = None) -> Response:
    data = await build_session_list(ctx, principal, parse_session_query(request.query_params, principal))
    return Response(dumps(data), media_type="application/json")


@api_router.get("/sessions/{key}", summary="One session: its summary and its tickets, oldest first",
                description="Pages of 100 tickets: `after` = the previous page's `next_cursor`.",
                responses={**_ERRORS, 404: {"description": "No such session, or another tenant's",
                                            "content": _DETAIL}})
async def get_api_session(request: Request, key: str, ctx: Context, principal: ApiPrincipal,
                          after: Q = None, client: Q = None) -> Response:
    data = await build_session(ctx, principal, key, request.query_params)
    return Response(dumps(data), media_type="application/json")
