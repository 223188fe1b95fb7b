"""Human review: the review queue page, the ticket page's review form (POST), and the JSON API of
reviews (a ticket's history, recording a review with a review-scope key, the JSONL export).

A review is validated and its note and corrected draft scrubbed with the bridge's PII detectors
(collector_api.contract.review_text), then recorded through store.reviews.writes.
"""
from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import parse_qsl, urlencode

import orjson
from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response, StreamingResponse

from collector_api.contract.review_text import ReviewError, shown_author, validate_review
from collector_api.store.accounts.principals import list_tenants
from collector_api.store.logs.reads import STATUSES
from collector_api.store.reviews.reads import iter_reviewed_tickets, list_reviews, review_queue
from collector_api.store.reviews.writes import Author, TicketNotFound, add_review

from ..auth import Principal, csrf_matches
from ..context import ViewerContext
from ..deps import ApiPrincipal, Context, CurrentPrincipal, ReviewKeyPrincipal
from ..errors import BadRequest, ViewerError
from ..jsonout import dumps
from ..pages import load_ticket
from ..query_params import TicketQuery, parse_log_id, parse_ticket_query
from ..render import render
from ..routing import ApiRoute, PageRoute

logger = logging.getLogger(__name__)
router = APIRouter(include_in_schema=False, route_class=PageRoute)
api_router = APIRouter(prefix="/api/v1", tags=["reviews"], route_class=ApiRoute)
Q = Annotated[str | None, Query()]
QUEUE_PAGE = 50
_AUTH_DOC = {401: {"description": "No session and no valid read- or review-scope API key"}}


def review_json(row: dict, principal: Principal) -> dict[str, Any]:
    """A stored review as the API shows it to `principal` (a provider's email only to providers)."""
    return {"id": row["id"], "ticket": row["log_id"], "client_id": row["client_id"], "verdict": row["verdict"],
            "flags": list(row["flags"]), "note": row["note"], "corrected_draft": row["corrected_draft"],
            "author": shown_author(row, principal.is_provider), "author_kind": row["author_kind"],
            "author_role": row["author_role"], "created_at": row["created_at"].isoformat()}


async def record_review(ctx: ViewerContext, principal: Principal, log_id: int, values: dict[str, Any]) -> dict:
    """Validate `values` (verdict, flags, note, corrected_draft), scrub and store the review.
    A bad field is a 400 naming it; a ticket absent from the principal's scope is a 404."""
    try:
        review = validate_review(values.get("verdict"), values.get("flags"), values.get("note"),
                                 values.get("corrected_draft"), ctx.review_flags)
        author = (Author(principal.key_id or "?", "api_key", "api_key") if principal.via == "api_key"
                  else Author(principal.email or f"user-{principal.user_id}", "user",
                              "provider" if principal.is_provider else "client"))
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
        "tenants": tenants, "statuses": STATUSES, "limit": query.limit,
        "dataset_source": "queue", "dataset_query": query.link(limit=None)})


async def _form(request: Request) -> dict[str, Any]:
    """The review form's fields. Its size was already bounded before this runs: the body guard
    (collector_api.http.body_guard) answers 413 over FLUSSO_MAX_FORM_BYTES; the fields' own
    limits (note, draft, flags) are validate_review's."""
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


# --- the JSON API of reviews ----------------------------------------------------------------

def _json(data: Any, status: int = 200) -> Response:
    return Response(dumps(data), status_code=status, media_type="application/json")


@api_router.get("/tickets/{log_id}/reviews", summary="A ticket's reviews, newest first (the first is its verdict)",
                responses={**_AUTH_DOC, 404: {"description": "No such ticket, or another tenant's"}})
async def get_api_reviews(log_id: str, ctx: Context, principal: ApiPrincipal) -> Response:
    ticket = parse_log_id(log_id)
    await load_ticket(ctx, principal, ticket)  # 404 for an absent or another tenant's ticket
    reviews = [review_json(r, principal) for r in await list_reviews(ctx.pool, principal.scope, ticket)]
    return _json({"ticket": ticket, "verdict": reviews[0]["verdict"] if reviews else None, "reviews": reviews})


@api_router.post("/tickets/{log_id}/reviews", summary="Record a review (review-scope API key)", status_code=201,
                 description="JSON body: `verdict` (correct|needs_work|incorrect), `flags` (list), `note` (at most"
                 " 10,000 characters), `corrected_draft`. Notes and drafts are scrubbed of personal data before they"
                 " are stored. The author is the key's id. 201 with the stored review; 400 names a bad field.",
                 responses={400: {"description": "A field is invalid or the body is not a JSON object"},
                            401: {"description": "No valid API key"}, 403: {"description": "Not a review-scope key"},
                            404: {"description": "No such ticket, or another tenant's"},
                            408: {"description": "The body did not arrive within FLUSSO_BODY_TIMEOUT_SECONDS"},
                            413: {"description": "The body is over FLUSSO_MAX_FORM_BYTES"}})
async def post_api_review(request: Request, log_id: str, ctx: Context, principal: ReviewKeyPrincipal) -> Response:
    ticket = parse_log_id(log_id)
    body = await request.body()  # at most FLUSSO_MAX_FORM_BYTES: the body guard answered 413 beyond it
    try:
        values = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise BadRequest("body: expected a JSON object with verdict, flags, note, corrected_draft") from None
    if not isinstance(values, dict):
        raise BadRequest("body: expected a JSON object with verdict, flags, note, corrected_draft")
    row = await record_review(ctx, principal, ticket, values)
    return _json(review_json(row, principal), status=201)


def export_line(row: dict) -> dict[str, Any]:
    """One reviewed ticket of the JSONL export: its stored (already redacted) row fields, draft and
    ticket section, then the latest verdict, flags, corrected draft and the review count."""
    skip = {"verdict", "flags", "corrected_draft", "review_count", "last_review_at", "draft", "ticket"}
    line = {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in row.items() if k not in skip}
    line.update(ticket=row["ticket"], draft=row["draft"], verdict=row["verdict"], flags=list(row["flags"]),
                corrected_draft=row["corrected_draft"], review_count=row["review_count"],
                last_review_at=row["last_review_at"].isoformat())
    return line


@api_router.get("/reviews/export.jsonl", summary="Every reviewed ticket once, as JSON lines (streamed)",
                description="Takes the ticket search's filters (`client`, `start`, `end`, `status`, `verdict`, `flag`"
                ", ...). One line per reviewed ticket, newest first.",
                responses={200: {"description": "One JSON object per line",
                                 "content": {"application/x-ndjson": {"schema": {"type": "string"}}}},
                           400: {"description": "A bad filter (named in `detail`)"}, **_AUTH_DOC})
async def get_reviews_export(request: Request, ctx: Context, principal: ApiPrincipal, client: Q = None,
                             start: Q = None, end: Q = None, verdict: Q = None, flag: Q = None) -> Response:
    query = parse_ticket_query(request.query_params, principal)  # a bad filter is refused before streaming
    rows = iter_reviewed_tickets(ctx.pool, principal.scope, query.filters)

    async def lines():
        async for row in rows:
            yield dumps(export_line(row)) + b"\n"

    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return StreamingResponse(lines(), media_type="application/x-ndjson", headers={
        "Content-Disposition": f'attachment; filename="reviews-{stamp}.jsonl"'})
