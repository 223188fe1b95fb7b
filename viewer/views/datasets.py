"""Datasets: the list and one dataset's page, the search and queue pages' "save as dataset" form,
and the JSON API (list, create with a read-scope key, one dataset, its items in keyset pages, the
JSONL export). The data comes from viewer.datasets, for HTML and JSON alike."""
from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import urlencode

import orjson
from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response, StreamingResponse

from collector_api.store.accounts.principals import list_tenants
from collector_api.store.datasets.reads import iter_items, list_items

from ..auth import csrf_matches
from ..datasets import (
    author_of,
    build_dataset_list,
    build_dataset_page,
    create_from_request,
    dataset_json,
    item_json,
    load_dataset,
    parse_after,
    parse_page_limit,
)
from ..deps import ApiPrincipal, Context, CurrentPrincipal, KeyPrincipal
from ..errors import BadRequest
from ..jsonout import dumps
from ..query_params import parse_client
from ..render import render
from ..routing import ApiRoute, PageRoute

router = APIRouter(include_in_schema=False, route_class=PageRoute)
api_router = APIRouter(prefix="/api/v1", tags=["datasets"], route_class=ApiRoute)
Q = Annotated[str | None, Query()]
_ERRORS = {400: {"description": "A bad parameter (named in `detail`)"},
           401: {"description": "No session and no valid read-scope API key"},
           404: {"description": "No such dataset, or another tenant's"}}


def _json(data: Any, status: int = 200) -> Response:
    return Response(dumps(data), status_code=status, media_type="application/json")


def _page_link(name: str, client: str) -> str:
    return f"/datasets/{name}?{urlencode({'client': client})}"


@router.get("/datasets")
async def get_datasets(request: Request, ctx: Context, principal: CurrentPrincipal) -> Response:
    client = parse_client(request.query_params, principal)
    data = await build_dataset_list(ctx, principal, client)
    tenants = await list_tenants(ctx.pool) if principal.is_provider else []
    return render(request, "datasets.html", {"principal": principal, **data, "tenants": tenants,
                                             "client": client or ""})


@router.post("/datasets")
async def post_dataset(request: Request, ctx: Context, principal: CurrentPrincipal) -> Response:
    """The search and queue pages' form: name, source (search|queue), query, client (providers)."""
    form = await request.form(max_files=0, max_fields=16)  # bounded before: the body guard's 413
    token = form.get("csrf_token")
    if not csrf_matches(principal.csrf, token if isinstance(token, str) else None):
        raise BadRequest("csrf_token: the form expired; reload the page and try again")
    source = form.get("source")
    if source not in ("search", "queue"):
        raise BadRequest("source: expected search or queue")
    values = {"name": form.get("name"), "client": form.get("client") or None, source: form.get("query") or "?",
              "limit": form.get("limit") or None}
    row = await create_from_request(ctx, principal, values, author_of(principal))
    return RedirectResponse(_page_link(row["name"], row["client_id"]), status_code=303)


@router.get("/datasets/{name}")
async def get_dataset_page(request: Request, name: str, ctx: Context, principal: CurrentPrincipal) -> Response:
    params = request.query_params
    data = await build_dataset_page(ctx, principal, name, params.get("client"),
                                    after=parse_after(params.get("after")), limit=parse_page_limit(params.get("limit")))
    return render(request, "dataset.html", {"principal": principal, **data})


# --- the JSON API ---------------------------------------------------------------------------

@api_router.get("/datasets", summary="The tenant's datasets, newest first", responses=_ERRORS)
async def get_api_datasets(request: Request, ctx: Context, principal: ApiPrincipal, client: Q = None) -> Response:
    return _json(await build_dataset_list(ctx, principal, parse_client(request.query_params, principal)))


@api_router.post("/datasets", summary="Create a dataset (read-scope API key)", status_code=201,
                 description="JSON body: `name` (1-64 of letters, digits, `_.-`), exactly one source: `search` (a"
                 " /tickets query string, e.g. `verdict=incorrect&start=2026-11-01`), `queue` (the review queue's"
                 " filters, same syntax) or `log_ids` (at most 10,000 ticket ids); `limit` (items, default and"
                 " most 50,000). Items are copies of the tickets' stored input, expected output (the corrected draft"
                 " of the latest review, else the draft) and verdict. 201 with the dataset; 409 when the name is"
                 " taken; 404 when nothing matches (nothing is created).",
                 responses={**_ERRORS, 403: {"description": "Not a read- or review-scope key"},
                            409: {"description": "The name is taken, or too many datasets"},
                            413: {"description": "The body is over FLUSSO_MAX_FORM_BYTES"}})
async def post_api_dataset(request: Request, ctx: Context, principal: KeyPrincipal) -> Response:
    try:
        values = orjson.loads(await request.body())  # at most FLUSSO_MAX_FORM_BYTES (the body guard)
    except orjson.JSONDecodeError:
        raise BadRequest("body: expected a JSON object with name and one of search, queue, log_ids") from None
    if not isinstance(values, dict):
        raise BadRequest("body: expected a JSON object with name and one of search, queue, log_ids")
    row = await create_from_request(ctx, principal, values, author_of(principal))
    return _json(dataset_json(row), status=201)


@api_router.get("/datasets/{name}", summary="A dataset, a page of its items and its experiments",
                responses=_ERRORS)
async def get_api_dataset(name: str, ctx: Context, principal: ApiPrincipal, client: Q = None, after: Q = None,
                          limit: Q = None) -> Response:
    return _json(await build_dataset_page(ctx, principal, name, client, after=parse_after(after),
                                          limit=parse_page_limit(limit)))


@api_router.get("/datasets/{name}/items", summary="A dataset's items in keyset pages (what experiments run on)",
                description="`after` = the previous page's `next_after`; `limit` 1-1000 (default 500).",
                responses=_ERRORS)
async def get_api_items(name: str, ctx: Context, principal: ApiPrincipal, client: Q = None, after: Q = None,
                        limit: Q = None) -> Response:
    row = await load_dataset(ctx, principal, name, client)
    size = parse_page_limit(limit, default=500)
    items = await list_items(ctx.pool, principal.scope, row, after=parse_after(after), limit=size + 1)
    more = len(items) > size
    items = items[:size]
    return _json({"dataset": dataset_json(row), "items": [item_json(i) for i in items],
                  "next_after": items[-1]["id"] if more else None})


@api_router.get("/datasets/{name}/export.jsonl", summary="Every item of a dataset, one JSON line each (streamed)",
                responses={**_ERRORS, 200: {"description": "One JSON object per line",
                                            "content": {"application/x-ndjson": {"schema": {"type": "string"}}}}})
async def get_api_export(name: str, ctx: Context, principal: ApiPrincipal, client: Q = None) -> Response:
    row = await load_dataset(ctx, principal, name, client)
    items = iter_items(ctx.pool, principal.scope, row)

    async def lines():
        async for item in items:
            yield dumps(item_json(item)) + b"\n"

    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return StreamingResponse(lines(), media_type="application/x-ndjson", headers={
        "Content-Disposition": f'attachment; filename="dataset-{row["name"]}-{stamp}.jsonl"'})

