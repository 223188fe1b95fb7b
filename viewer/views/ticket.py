"""One ticket: header, span waterfall, ReACT iterations, retrieval, evidence, decisions, raw JSON,
its evaluation scores, and its review form with the review history.

Everything inside a log is untrusted model output: it only ever reaches the page through
Jinja's autoescaping, never as markup, URL or script.
"""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from collector_api.contract.review_text import VERDICTS, shown_author
from collector_api.store.reviews.reads import list_reviews

from ..auth import Principal
from ..context import ViewerContext
from ..deps import Context, CurrentPrincipal
from ..evaluations import ticket_evaluations
from ..jsonout import dumps
from ..pages import load_ticket, resolve_links, ticket_sections
from ..query_params import parse_log_id
from ..render import render
from ..routing import PageRoute
from ..session_pages import other_tickets

router = APIRouter(include_in_schema=False, route_class=PageRoute)


@router.get("/tickets/{log_id}")
async def get_ticket_page(request: Request, log_id: str, ctx: Context, principal: CurrentPrincipal) -> Response:
    row = await load_ticket(ctx, principal, parse_log_id(log_id))
    review = await review_section(ctx, principal, row["id"], request.query_params.get("queue", ""))
    sections = ticket_sections(row)
    await resolve_links(ctx, principal, row, sections["waterfall"])
    others = await other_tickets(ctx, principal, row)
    evaluations = await ticket_evaluations(ctx, principal, row["id"])
    return render(request, "ticket.html", {"principal": principal, "row": row, **sections, **review,
                                           "other_tickets": others, "evaluations": evaluations})


async def review_section(ctx: ViewerContext, principal: Principal, log_id: int, queue: str) -> dict[str, Any]:
    """The review form's choices and the ticket's review history, newest first."""
    history = [{**r, "author": shown_author(r, principal.is_provider)}
               for r in await list_reviews(ctx.pool, principal.scope, log_id)]
    return {"reviews": history, "verdict": history[0]["verdict"] if history else None,
            "verdicts": VERDICTS, "review_flags": ctx.review_flags, "queue": queue[:2000]}


@router.get("/tickets/{log_id}/raw")
async def get_ticket_raw(log_id: str, ctx: Context, principal: CurrentPrincipal) -> Response:
    row = await load_ticket(ctx, principal, parse_log_id(log_id))
    body = dumps(row["log_data"], indent=True)
    name = f"ticket-{row['id']}.json"
    return Response(body, media_type="application/json",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})
