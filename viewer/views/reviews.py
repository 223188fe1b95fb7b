"""Human review: the review queue page and the ticket page's review form (POST).

A review is validated and its note and corrected draft scrubbed with the bridge's PII detectors
(collector_api.contract.review_text), then recorded through store.reviews.writes.
"""
from __future__ import annotations

import logging
from typing import Any
from urllib.parse import parse_qsl, urlencode

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from collector_api.contract.review_text import ReviewError, validate_review
from collector_api.store.accounts.principals import list_tenants
from collector_api.store.reviews.reads import review_queue
from collector_api.store.reviews.writes import Author, TicketNotFound, add_review

from ..auth import Principal, csrf_matches
from ..context import ViewerContext
from ..deps import Context, CurrentPrincipal
from ..errors import BadRequest, ViewerError
from ..query_params import TicketQuery, parse_ticket_query
from ..render import render
from ..routing import PageRoute
from .ticket import parse_log_id

logger = logging.getLogger(__name__)
router = APIRouter(include_in_schema=False, route_class=PageRoute)
QUEUE_PAGE = 50
MAX_FORM_BYTES = 256 * 1024


def review_json(row: dict) -> dict[str, Any]:
    """A stored review as the API shows it."""
    return {"id": row["id"], "ticket": row["log_id"], "client_id": row["client_id"], "verdict": row["verdict"],
            "flags": list(row["flags"]), "note": row["note"], "corrected_draft": row["corrected_draft"],
            "author": row["author"], "author_kind": row["author_kind"], "created_at": row["created_at"].isoformat()}


async def record_review(ctx: ViewerContext, principal: Principal, log_id: int, values: dict[str, Any]) -> dict:
    """Validate `values` (verdict, flags, note, corrected_draft), scrub and store the review.
    A bad field is a 400 naming it; a ticket absent from the principal's scope is a 404."""
    try:
        review = validate_review(values.get("verdict"), values.get("flags"), values.get("note"),
                                 values.get("corrected_draft"), ctx.review_flags)
        author = (Author(principal.key_id or "?", "api_key") if principal.via == "api_key"
                  else Author(principal.email or f"user-{principal.user_id}", "user"))
        return await add_review(ctx.pool, principal.scope, log_id, ctx.scrubber.scrub_review(review), author)
    except (ReviewError, TicketNotFound) as exc:
        raise ViewerError(str(exc), status=exc.status) from None


def queue_query(params, principal: Principal) -> TicketQuery:
    """The queue's filters: those of the ticket search (sort and pages do not apply)."""
    return parse_ticket_query(params, principal, default_limit=QUEUE_PAGE)


async def next_in_queue(ctx: ViewerContext, principal: Principal, queue: str) -> str:
    """Where "save and next" goes: the first ticket of the queue (with its filters), or the queue."""
    query = queue_query(dict(parse_qsl(queue[:2000])), principal)
    rows = await review_queue(ctx.pool, principal.scope, query.filters, limit=1)
    link = query.link()
    if not rows:
        return "/reviews" + (f"?{link}" if link else "")
    return f"/tickets/{rows[0]['id']}" + (f"?{urlencode({'queue': link})}" if link else "") + "#review"


@router.get("/reviews")
async def get_review_queue(request: Request, ctx: Context, principal: CurrentPrincipal) -> Response:
    query = queue_query(request.query_params, principal)
    rows = await review_queue(ctx.pool, principal.scope, query.filters, limit=query.limit)
    tenants = await list_tenants(ctx.pool) if principal.is_provider else []
    return render(request, "reviews.html", {
        "principal": principal, "tickets": rows, "params": query.params or {}, "queue": query.link(),
        "tenants": tenants, "statuses": ("SUCCESS", "PARTIAL", "FAILED"), "limit": query.limit})


async def _form(request: Request) -> dict[str, Any]:
    if int(request.headers.get("content-length") or 0) > MAX_FORM_BYTES:
        raise ViewerError(f"the review is too large (at most {MAX_FORM_BYTES:,} bytes)", status=413)
    form = await request.form(max_files=0, max_fields=64)
    return {"verdict": form.get("verdict"), "flags": form.getlist("flags"), "note": form.get("note"),
            "corrected_draft": form.get("corrected_draft"), "csrf_token": form.get("csrf_token"),
            "then": form.get("then"), "queue": form.get("queue") or ""}


@router.post("/tickets/{log_id}/reviews")
async def post_review(request: Request, log_id: str, ctx: Context, principal: CurrentPrincipal) -> Response:
    """The ticket page's form: 303 back to the ticket, or to the next queued ticket (`then=next`)."""
    ticket = parse_log_id(log_id)
    values = await _form(request)
    if not csrf_matches(principal.csrf, values["csrf_token"] if isinstance(values["csrf_token"], str) else None):
        raise BadRequest("csrf_token: the review form expired; reload the ticket and try again")
    await record_review(ctx, principal, ticket, values)
    if values["then"] == "next":
        return RedirectResponse(await next_in_queue(ctx, principal, str(values["queue"])), status_code=303)
    return RedirectResponse(f"/tickets/{ticket}#review", status_code=303)
