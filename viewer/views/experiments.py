"""Experiments: the list, one experiment (per item expected vs new draft, outcome, cost, latency,
totals) and two experiments on one dataset compared; HTML pages and the JSON API (read scope)
from the same builders (viewer.experiments)."""
from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from collector_api.store.accounts.principals import list_tenants

from ..datasets import parse_after
from ..deps import ApiPrincipal, Context, CurrentPrincipal
from ..errors import BadRequest
from ..experiments import build_experiment, build_experiment_comparison, build_experiment_list
from ..jsonout import dumps
from ..query_params import parse_client
from ..render import render
from ..routing import ApiRoute, PageRoute

router = APIRouter(include_in_schema=False, route_class=PageRoute)
api_router = APIRouter(prefix="/api/v1", tags=["experiments"], route_class=ApiRoute)
Q = Annotated[str | None, Query()]
_ERRORS = {400: {"description": "A bad parameter (named in `detail`)"},
           401: {"description": "No session and no valid read-scope API key"},
           404: {"description": "No such experiment, or another tenant's"}}


def _json(data: Any) -> Response:
    return Response(dumps(data), media_type="application/json")


def _pair(a: str | None, b: str | None) -> tuple[str, str]:
    if not a or not b:
        raise BadRequest("a, b: name the two experiments to compare (a=ID&b=ID)")
    if a == b:
        raise BadRequest("b: the same experiment twice; pick two different experiments")
    return a, b


@router.get("/experiments")
async def get_experiments(request: Request, ctx: Context, principal: CurrentPrincipal) -> Response:
    client = parse_client(request.query_params, principal)
    data = await build_experiment_list(ctx, principal, client)
    tenants = await list_tenants(ctx.pool) if principal.is_provider else []
    return render(request, "experiments.html", {"principal": principal, **data, "tenants": tenants,
                                                "client": client or ""})


@router.get("/experiments/compare")
async def get_compare_page(request: Request, ctx: Context, principal: CurrentPrincipal) -> Response:
    params = request.query_params
    data = await build_experiment_comparison(ctx, principal, *_pair(params.get("a"), params.get("b")),
                                             after=parse_after(params.get("after")))
    return render(request, "experiment_compare.html", {"principal": principal, **data})


@router.get("/experiments/{experiment_id}")
async def get_experiment_page(request: Request, experiment_id: str, ctx: Context,
                              principal: CurrentPrincipal) -> Response:
    data = await build_experiment(ctx, principal, experiment_id, after=parse_after(request.query_params.get("after")))
    others = [e for e in (await build_experiment_list(ctx, principal, data["experiment"]["client_id"]
                                                      if principal.is_provider else None))["experiments"]
              if e["dataset_id"] == data["experiment"]["dataset_id"] and e["id"] != experiment_id]
    return render(request, "experiment.html", {"principal": principal, **data, "others": others})


@api_router.get("/experiments", summary="The tenant's experiments, newest first", responses=_ERRORS)
async def get_api_experiments(request: Request, ctx: Context, principal: ApiPrincipal, client: Q = None) -> Response:
    return _json(await build_experiment_list(ctx, principal, parse_client(request.query_params, principal)))


@api_router.get("/experiments/compare", summary="Two experiments on one dataset, item by item",
                description="`a`, `b`: experiment ids. Per item a list of metrics (status, cost_usd, latency_s,"
                " evaluator scores when present), each judged better/worse/same for B against A; `summary` counts"
                " them over every item. `after` pages the items.", responses=_ERRORS)
async def get_api_compare(ctx: Context, principal: ApiPrincipal, a: Q = None, b: Q = None,
                          after: Q = None) -> Response:
    return _json(await build_experiment_comparison(ctx, principal, *_pair(a, b), after=parse_after(after)))


@api_router.get("/experiments/{experiment_id}", summary="One experiment: totals and a page of items with diffs",
                responses=_ERRORS)
async def get_api_experiment(experiment_id: str, ctx: Context, principal: ApiPrincipal, after: Q = None) -> Response:
    return _json(await build_experiment(ctx, principal, experiment_id, after=parse_after(after)))
