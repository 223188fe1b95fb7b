"""Evaluators (provider only): the list with this month's judge spend against each cost cap, a
form that creates one, and per evaluator the forms that disable, enable or delete it. Plain HTML
forms with the session's CSRF token (their bodies are capped by the app's body guard like every
form); an evaluator is validated by collector_api.evals.spec and stored through
collector_api.evals.admin. A client user gets 404."""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from collector_api.evals.admin import ACTIONS, change_evaluator, create_evaluator, list_evaluators
from collector_api.evals.policy import MAX_PATTERN_CHARS, MAX_PATTERNS
from collector_api.evals.spec import KINDS, MAX_RUBRIC_CHARS, STATUSES, EvaluatorError, validate_evaluator

from ..auth import Principal, csrf_matches
from ..context import ViewerContext
from ..deps import Context, CurrentPrincipal
from ..errors import BadRequest, NotFound
from ..render import render
from ..routing import PageRoute

router = APIRouter(include_in_schema=False, route_class=PageRoute)

Text = Annotated[str, Form(max_length=300)]
_FIELDS = ("name", "kind", "client", "sample_rate", "workflow", "status", "phrases", "rubric", "cost_cap")


def _provider_only(principal: Principal) -> None:
    if not principal.is_provider:
        raise NotFound("there is no page at this address")


async def _page(request: Request, ctx: ViewerContext, principal: Principal, *, status: int = 200,
                **extra) -> Response:
    values = {"principal": principal, "evaluators": await list_evaluators(ctx.pool), "kinds": KINDS,
              "statuses": STATUSES, "judge_on": bool((ctx.settings.flusso_judge_url or "").strip()),
              "error": None, "created": None, "changed": None, "form": dict.fromkeys(_FIELDS, "")}
    values.update(extra)
    return render(request, "evaluators.html", values, status=status)


@router.get("/evaluators")
async def get_evaluators(request: Request, ctx: Context, principal: CurrentPrincipal) -> Response:
    _provider_only(principal)
    return await _page(request, ctx, principal)


@router.post("/evaluators")
async def post_evaluator(request: Request, ctx: Context, principal: CurrentPrincipal, name: Text = "",
                         kind: Text = "", client: Text = "", sample_rate: Text = "1", workflow: Text = "",
                         status: Text = "", cost_cap: Text = "",
                         phrases: Annotated[str, Form(max_length=MAX_PATTERNS * (MAX_PATTERN_CHARS + 2))] = "",
                         rubric: Annotated[str, Form(max_length=MAX_RUBRIC_CHARS + 200)] = "",
                         csrf_token: Annotated[str, Form(max_length=200)] = "") -> Response:
    _provider_only(principal)
    if not csrf_matches(principal.csrf, csrf_token):
        raise BadRequest("the form expired; reload the page and try again")
    form = {"name": name, "kind": kind, "client": client, "sample_rate": sample_rate, "workflow": workflow,
            "status": status, "phrases": phrases, "rubric": rubric, "cost_cap": cost_cap}
    patterns = [line for line in phrases.splitlines() if line.strip()]
    try:
        spec = validate_evaluator(name=name, kind=kind, client_id=client, sample_rate=sample_rate, workflow=workflow,
                                  status=status, patterns=patterns or None, rubric=rubric, cost_cap=cost_cap or None)
        created = await create_evaluator(ctx.pool, spec)
    except EvaluatorError as exc:
        return await _page(request, ctx, principal, status=400, error=str(exc), form=form)
    return await _page(request, ctx, principal, status=201, created=created)


_DONE = {"disable": "disabled", "enable": "enabled", "delete": "deleted"}


@router.post("/evaluators/{name}/{action}")
async def post_evaluator_change(request: Request, ctx: Context, principal: CurrentPrincipal, name: str, action: str,
                                csrf_token: Annotated[str, Form(max_length=200)] = "") -> Response:
    """Disable, enable or delete one evaluator (deleting keeps its scores: docs/evaluations.md)."""
    _provider_only(principal)
    if action not in ACTIONS:
        raise NotFound("there is no page at this address")
    if not csrf_matches(principal.csrf, csrf_token):
        raise BadRequest("the form expired; reload the page and try again")
    try:
        ev = await change_evaluator(ctx.pool, name[:200], action)
    except EvaluatorError as exc:
        return await _page(request, ctx, principal, status=404, error=str(exc))
    return await _page(request, ctx, principal, changed={"name": ev.name, "done": _DONE[action]})
