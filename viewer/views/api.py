"""JSON API: the pages' data (viewer.pages), for a session or a read-scope API key, tenant-scoped the
same way."""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from ..deps import ApiPrincipal, Context, CurrentPrincipal
from ..evaluations import ticket_evaluations
from ..exports import export_csv, export_json
from ..jsonout import dumps
from ..pages import build_overview, build_ticket_list, load_ticket, row_json
from ..query_params import parse_log_id, parse_ticket_query
from ..render import render
from ..routing import ApiRoute, PageRoute

router = APIRouter(prefix="/api/v1", tags=["viewer"], route_class=ApiRoute)
Q = Annotated[str | None, Query()]
_DETAIL = {"application/json": {"schema": {"type": "object", "properties": {"detail": {"type": "string"}},
                                            "required": ["detail"]}}}
_AUTH_DOC = {400: {"description": "A bad parameter (named in `detail`)", "content": _DETAIL},
             401: {"description": "No session and no valid read-scope API key", "content": _DETAIL},
             503: {"description": "The database is unavailable", "content": _DETAIL}}
_LIST_DOC = {200: {"description": "One page of tickets",
                   "content": {"application/json": {"schema": {"type": "object"}}},
                  "links": {"OpenTheFirstTicket": {"operationRef": "#/paths/~1api~1v1~1tickets~1{log_id}/get",
                                                   "parameters": {"log_id": "$response.body#/tickets/0/id"}}}}}
_CSV_DOC = {200: {"description": "The rows as CSV", "content": {"text/csv": {"schema": {"type": "string"}}}}}


def _json(data, status: int = 200) -> Response:
    return Response(dumps(data), status_code=status,
                    media_type="application/json")


def _ticket_params(client: Q = None, start: Q = None, end: Q = None, status: Q = None, resolution: Q = None,
                   environment: Q = None, version: Q = None, ticket: Q = None, min_confidence: Q = None,
                   max_confidence: Q = None, min_duration: Q = None, sort: Q = None, order: Q = None,
                   after: Q = None, limit: Q = None,
                   verdict: Q = None, flag: Q = None, reviewed: Q = None,  # review filters
                   eval: Q = None, min_score: Q = None, max_score: Q = None) -> None:  # noqa: A002 - the query name
    """Declares the filters for /openapi.json; values are read and validated from the query string."""


_FILTER_DOC = (
    "Filters: `client` (providers only), `start`/`end` (YYYY-MM-DD, end day included, or ISO 8601),"
    " `status` (SUCCESS|PARTIAL|FAILED), `resolution`, `environment`, `version`, `ticket` (id prefix),"
    " `min_confidence`/`max_confidence` (0-1), `min_duration` (seconds); `sort` time|confidence|duration,"
    " `order` desc|asc. A bad value answers 400 with the field named in `detail`."
    " Reviews: `verdict` (correct|needs_work|incorrect, the latest review's), `flag` (of the latest review),"
    " `reviewed` (yes|no). Evaluations: `eval` (an evaluator's name) with `min_score`/`max_score` (0-1): the"
    " latest version's score of that evaluator; every listed ticket carries `scores` ({evaluator: score})."
)


@router.get("/tickets", summary="Search tickets (keyset pages)", dependencies=[Depends(_ticket_params)],
            description=_FILTER_DOC + " Pages: `limit` (1-500, default 50), `after` = the previous page's"
            " `next_cursor`. `count` is exact up to 10,000 (`count_capped` true beyond).",
            responses={**_LIST_DOC, **_AUTH_DOC})
async def get_api_tickets(request: Request, ctx: Context, principal: ApiPrincipal) -> Response:
    query = parse_ticket_query(request.query_params, principal)
    data = await build_ticket_list(ctx, principal, query)
    data["tickets"] = [row_json(r) for r in data["tickets"]]
    return _json(data)


@router.get("/tickets/export.csv", summary="Export the filtered tickets as CSV", description=_FILTER_DOC,
            dependencies=[Depends(_ticket_params)], responses={**_CSV_DOC, **_AUTH_DOC})
async def get_api_tickets_csv(request: Request, ctx: Context, principal: ApiPrincipal) -> Response:
    return export_csv(ctx, principal, request.query_params)


@router.get("/tickets/export.json", summary="Export the filtered tickets as a JSON array", description=_FILTER_DOC,
            dependencies=[Depends(_ticket_params)], responses=_AUTH_DOC)
async def get_api_tickets_json(request: Request, ctx: Context, principal: ApiPrincipal) -> Response:
    return export_json(ctx, principal, request.query_params)


@router.get("/tickets/{log_id}", summary="One ticket: its row and its full workflow log",
            responses={**_AUTH_DOC, 404: {"description": "No such ticket, or another tenant's", "content": _DETAIL}})
async def get_api_ticket(log_id: str, ctx: Context, principal: ApiPrincipal) -> Response:
    row = await load_ticket(ctx, principal, parse_log_id(log_id))
    return _json({"ticket": row_json(row), "log": row["log_data"],
                  "evaluations": await ticket_evaluations(ctx, principal, row["id"])})


@router.get("/stats", summary="Overview statistics for a date range (default: the last 30 days)",
            description="`start`/`end` as for /tickets; `client` narrows a provider's view to one tenant.",
            responses=_AUTH_DOC)
async def get_api_stats(request: Request, ctx: Context, principal: ApiPrincipal, start: Q = None, end: Q = None,
                        client: Q = None) -> Response:
    data = await build_overview(ctx, principal, request.query_params)
    return _json(data["stats"])


docs_router = APIRouter(include_in_schema=False, route_class=PageRoute)


@docs_router.get("/api/docs")
async def get_api_docs(request: Request, principal: CurrentPrincipal) -> Response:
    """Swagger UI from vendored static files (FastAPI's /docs would load a CDN and an inline script)."""
    return render(request, "api_docs.html", {"principal": principal})
