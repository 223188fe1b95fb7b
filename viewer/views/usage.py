"""Usage and cost report: per client, a month (UTC) or a custom range; page, JSON and CSV for billing."""
from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from collector_api.contract.dates import DateError, parse_month
from collector_api.contract.usage_csv import usage_csv
from collector_api.store.accounts.principals import list_tenants
from collector_api.store.logs.recontact import Recontact, get_recontact
from collector_api.store.logs.usage import UsageReport, get_usage

from ..auth import Principal
from ..context import ViewerContext
from ..deps import ApiPrincipal, Context, CurrentPrincipal
from ..errors import BadRequest
from ..jsonout import dumps
from ..pages import rollups_enabled
from ..query_params import parse_client, parse_range
from ..render import render
from ..routing import ApiRoute, PageRoute

router = APIRouter(include_in_schema=False, route_class=PageRoute)
api_router = APIRouter(prefix="/api/v1", tags=["viewer"], route_class=ApiRoute)

_DOC = ("`month` (YYYY-MM, UTC; default: the current month) or a custom range `start`/`end` (YYYY-MM-DD, end day"
        " included, or ISO 8601); `client` narrows a provider's report to one tenant (a read key or a client"
        " user always gets its own). A bad month answers 400 naming it.")
_RESPONSES = {400: {"description": "A bad month, range or client (named in `detail`)"},
              401: {"description": "No session and no valid read-scope API key"}}


def parse_period(params: Mapping[str, str]) -> tuple[datetime, datetime, str | None]:
    """(start, end, month) from `month` or `start`/`end`; the current UTC month by default."""
    month = (params.get("month") or "").strip()
    has_range = any((params.get(k) or "").strip() for k in ("start", "end"))
    if month and has_range:
        raise BadRequest("month: give either month or start/end, not both")
    if has_range:
        start, end = parse_range(params, default_days=None)
        if start is None or end is None:
            raise BadRequest(f"{'start' if start is None else 'end'}: a custom range needs both start and end")
        return start, end, None
    if not month:
        month = datetime.now(UTC).strftime("%Y-%m")
    try:
        start, end = parse_month(month)
    except DateError as exc:
        raise BadRequest(str(exc)) from None
    return start, end, month


async def build_usage(ctx: ViewerContext, principal: Principal, params: Mapping[str, str]) -> tuple[UsageReport,
                                                                                                 dict[str, Any]]:
    start, end, month = parse_period(params)
    client = parse_client(params, principal)
    report, recontact = await asyncio.gather(
        get_usage(ctx.pool, principal.scope, start, end, client_id=client, use_rollups=rollups_enabled(ctx)),
        get_recontact(ctx.pool, principal.scope, start, end, client, use_rollups=rollups_enabled(ctx),
                      window_days=ctx.settings.flusso_recontact_days))
    return report, {"month": month, "client": client, "recontact": recontact}


def usage_json(report: UsageReport, recontact: Recontact) -> dict[str, Any]:
    """The report as JSON-ready data, with the recontact rate per client and overall
    (tickets resolved in the period whose customer came back within the window)."""
    data = report.as_dict()
    blank = {"resolved": 0, "recontacted": 0, "rate": None}
    for c in data["clients"]:
        c["recontact"] = recontact.per_client.get(c["client_id"], blank)
    data["totals"]["recontact"] = {k: recontact.totals[k] for k in ("resolved", "recontacted", "rate")}
    data["recontact_days"] = recontact.window_days
    return data


@router.get("/usage")
async def get_usage_page(request: Request, ctx: Context, principal: CurrentPrincipal) -> Response:
    report, chosen = await build_usage(ctx, principal, request.query_params)
    tenants = await list_tenants(ctx.pool) if principal.is_provider else []
    data = usage_json(report, chosen.pop("recontact"))
    query = request.url.query
    return render(request, "usage.html", {
        "principal": principal, "usage": data, "tenants": tenants, **chosen,
        "start_day": report.start.date().isoformat(),
        "end_day": (report.end - timedelta(microseconds=1)).date().isoformat(),
        "csv_link": "/usage.csv" + (f"?{query}" if query else "")})


@router.get("/usage.csv")
async def get_usage_page_csv(request: Request, ctx: Context, principal: CurrentPrincipal) -> Response:
    report, chosen = await build_usage(ctx, principal, request.query_params)
    return _csv(report, chosen["recontact"])


def _csv(report: UsageReport, recontact: Recontact) -> Response:
    name = f"usage-{report.start.date().isoformat()}-{report.end.date().isoformat()}.csv"
    return Response(usage_csv(report, recontact), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


@api_router.get("/usage", summary="Usage and cost per client for a month or a range", description=_DOC,
                responses=_RESPONSES)
async def get_api_usage(request: Request, ctx: Context, principal: ApiPrincipal, month: str | None = Query(None),
                        start: str | None = Query(None), end: str | None = Query(None),
                        client: str | None = Query(None)) -> Response:
    report, chosen = await build_usage(ctx, principal, request.query_params)
    return Response(dumps({**usage_json(report, chosen["recontact"]), "month": chosen["month"]}),
                    media_type="application/json")


@api_router.get("/usage.csv", summary="The usage report as CSV, for billing", description=_DOC
                + " Per client one line of totals (model `*`, with the tenant's recontact rate: resolved tickets"
                " with a session, those recontacted within FLUSSO_RECONTACT_DAYS, the rate), then one line per"
                " model.",
                responses={200: {"description": "The report as CSV",
                                 "content": {"text/csv": {"schema": {"type": "string"}}}}, **_RESPONSES})
async def get_api_usage_csv(request: Request, ctx: Context, principal: ApiPrincipal, month: str | None = Query(None),
                            start: str | None = Query(None), end: str | None = Query(None),
                            client: str | None = Query(None)) -> Response:
    report, chosen = await build_usage(ctx, principal, request.query_params)
    return _csv(report, chosen["recontact"])
