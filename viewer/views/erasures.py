"""Erasures (provider only): the append-only erasure log of every tenant, erasures and retention
runs, with what each asked (counts of ids and tokens, never a value), the rows erased per kind and
its start and finish. The page /erasures and GET /api/v1/erasures show the same data
(store.erasure.reads); a client user or a read key gets 404, as for an address that does not exist.
Receipts are signed and fetched with the tenant's erase key (GET /api/v1/erasures/{request_id})."""
from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from collector_api.store.accounts.principals import list_tenants
from collector_api.store.erasure.reads import list_erasures

from ..auth import Principal
from ..context import ViewerContext
from ..deps import ApiPrincipal, Context, CurrentPrincipal
from ..errors import BadRequest, NotFound
from ..jsonout import dumps
from ..render import render
from ..routing import ApiRoute, PageRoute

router = APIRouter(include_in_schema=False, route_class=PageRoute)
api_router = APIRouter(prefix="/api/v1", tags=["viewer"], route_class=ApiRoute)
LIMIT = 200
TENANT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")  # tenants.client_id's CHECK


def erasure_json(row: dict) -> dict[str, Any]:
    return {"client_id": row["client_id"], "request_id": row["request_id"], "kind": row["kind"],
            "status": row["status"], "requested_by": row["requested_by"],
            "asked": {"ticket_ids": row["n_tickets"], "trace_ids": row["n_traces"], "tokens": row["n_tokens"],
                      **({"retention_days": row["asked"].get("retention_days"), "before": row["asked"].get("before")}
                         if row["kind"] == "retention" else {})},
            "counts": dict(sorted(row["counts"].items())), "erased": sum(row["counts"].values()),
            "started_at": row["started_at"].isoformat(),
            "finished_at": row["finished_at"].isoformat() if row["finished_at"] else None}


async def build_erasures(ctx: ViewerContext, principal: Principal, client: str | None) -> dict[str, Any]:
    if not principal.is_provider:
        raise NotFound("there is no page at this address")
    if client and not TENANT_RE.match(client):
        raise BadRequest("client: not a tenant id (1-64 of A-Z a-z 0-9 _ . -)")
    client = client or None
    rows = await list_erasures(ctx.pool, principal.scope, client=client, limit=LIMIT)
    return {"client_id": client, "limit": LIMIT, "erasures": [erasure_json(r) for r in rows]}


@router.get("/erasures")
async def get_erasures(request: Request, ctx: Context, principal: CurrentPrincipal,
                       client: Annotated[str | None, Query()] = None) -> Response:
    data = await build_erasures(ctx, principal, client)
    return render(request, "erasures.html", {"principal": principal, "tenants": await list_tenants(ctx.pool), **data})


@api_router.get("/erasures", summary="The erasure log: every tenant's erasures and retention runs (provider only)",
                description="Newest first, at most 200; `client` narrows to one tenant. What was asked is counted,"
                " never listed; counts are rows erased per kind of data. A client session or a read key gets 404.",
                responses={400: {"description": "`client` is not a tenant id"},
                           401: {"description": "No session and no valid read-scope API key"},
                           404: {"description": "Not a provider"}})
async def get_api_erasures(ctx: Context, principal: ApiPrincipal,
                           client: Annotated[str | None, Query()] = None) -> Response:
    return Response(dumps(await build_erasures(ctx, principal, client)), media_type="application/json")
