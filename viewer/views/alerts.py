"""Alert rules (provider only): list, create (the signing secret is shown once, on the page that
answers the form), delete, the firing rules and the webhook delivery log. Plain HTML forms with
the session's CSRF token; a rule is validated by collector_api.alerts.rules and created through
collector_api.alerts.admin, the rest goes through store.alerts.rules. A client user gets 404."""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from collector_api.alerts.admin import create_rule, list_rules
from collector_api.alerts.rules import EVAL_PREFIX, METRICS, OPS, AlertRuleError, validate_rule
from collector_api.evals.admin import list_evaluators
from collector_api.store.alerts.rules import delete_rule, list_delivery_log, list_firing
from config.server import reveal

from ..auth import Principal, csrf_matches
from ..context import ViewerContext
from ..deps import Context, CurrentPrincipal
from ..errors import BadRequest, NotFound
from ..render import render
from ..routing import PageRoute

router = APIRouter(include_in_schema=False, route_class=PageRoute)

Text = Annotated[str, Form(max_length=2000)]
_FIELDS = ("name", "metric", "op", "threshold", "window", "client", "webhook", "min_tickets", "slack")


def _provider_only(principal: Principal) -> None:
    if not principal.is_provider:
        raise NotFound("there is no page at this address")


async def _page(request: Request, ctx: ViewerContext, principal: Principal, *, status: int = 200,
                **extra) -> Response:
    rules = await list_rules(ctx.pool)
    names = {r.id: r.name for r in rules}
    firing = [{**f, "rule_name": names.get(f["rule_id"], "?")} for f in await list_firing(ctx.pool)]
    values = {"principal": principal, "rules": rules, "firing": firing, "log": await list_delivery_log(ctx.pool),
              "metrics": (*METRICS, *(EVAL_PREFIX + s.evaluator.name for s in await list_evaluators(ctx.pool))),
              "ops": OPS, "webhooks_on": bool(ctx.settings.flusso_webhook_allow.strip()),
              "error": None, "created": None, "form": dict.fromkeys(_FIELDS, "")}
    values.update(extra)
    return render(request, "alerts.html", values, status=status)


@router.get("/alerts")
async def get_alerts(request: Request, ctx: Context, principal: CurrentPrincipal) -> Response:
    _provider_only(principal)
    return await _page(request, ctx, principal)


@router.post("/alerts")
async def post_alert(request: Request, ctx: Context, principal: CurrentPrincipal, name: Text = "",
                     metric: Text = "", op: Text = "", threshold: Text = "", window: Text = "", client: Text = "",
                     webhook: Text = "", min_tickets: Text = "0", slack: Text = "",
                     csrf_token: Annotated[str, Form(max_length=200)] = "") -> Response:
    _provider_only(principal)
    if not csrf_matches(principal.csrf, csrf_token):
        raise BadRequest("the form expired; reload the page and try again")
    form = {"name": name, "metric": metric, "op": op, "threshold": threshold, "window": window, "client": client,
            "webhook": webhook, "min_tickets": min_tickets, "slack": bool(slack)}
    try:
        spec = validate_rule(name=name, metric=metric, op=op, threshold=threshold, window=window, client_id=client,
                             webhook_url=webhook, slack=bool(slack), min_tickets=min_tickets)
        new = await create_rule(ctx.pool, spec, reveal(ctx.settings.flusso_alert_secret_key) or "")
    except AlertRuleError as exc:
        return await _page(request, ctx, principal, status=400, error=str(exc), form=form)
    return await _page(request, ctx, principal, status=201, created=new)


@router.post("/alerts/{rule_id}/delete")
async def post_delete_alert(rule_id: int, ctx: Context, principal: CurrentPrincipal,
                            csrf_token: Annotated[str, Form(max_length=200)] = "") -> Response:
    _provider_only(principal)
    if not csrf_matches(principal.csrf, csrf_token):
        raise BadRequest("the form expired; reload the page and try again")
    if not await delete_rule(ctx.pool, rule_id):
        raise NotFound(f"no alert rule {rule_id}")
    return RedirectResponse("/alerts", status_code=303)
