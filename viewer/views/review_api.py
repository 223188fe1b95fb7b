"""JSON API of reviews: a ticket's history, recording a review with a review-scope key, the export."""
from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query, Request
from fastapi.responses import Response, StreamingResponse

from collector_api.store.reviews.reads import iter_reviewed_tickets, list_reviews

from ..deps import ApiPrincipal, Context, ReviewKeyPrincipal
from ..errors import BadRequest
from ..jsonout import dumps
from ..query_params import parse_ticket_query
from ..routing import ApiRoute
from .reviews import record_review, review_json
from .ticket import build_ticket_detail, parse_log_id

router = APIRouter(prefix="/api/v1", tags=["reviews"], route_class=ApiRoute)
Q = Annotated[str | None, Query()]
MAX_BODY_BYTES = 256 * 1024
_AUTH_DOC = {401: {"description": "No session and no valid read- or review-scope API key"}}


def _json(data: Any, status: int = 200) -> Response:
    return Response(dumps(data), status_code=status, media_type="application/json")


@router.get("/tickets/{log_id}/reviews", summary="A ticket's reviews, newest first (the first is its verdict)",
            responses={**_AUTH_DOC, 404: {"description": "No such ticket, or another tenant's"}})
async def get_api_reviews(log_id: str, ctx: Context, principal: ApiPrincipal) -> Response:
    ticket = parse_log_id(log_id)
    await build_ticket_detail(ctx, principal, ticket)  # 404 for an absent or another tenant's ticket
    reviews = [review_json(r) for r in await list_reviews(ctx.pool, principal.scope, ticket)]
    return _json({"ticket": ticket, "verdict": reviews[0]["verdict"] if reviews else None, "reviews": reviews})


@router.post("/tickets/{log_id}/reviews", summary="Record a review (review-scope API key)", status_code=201,
             description="JSON body: `verdict` (correct|needs_work|incorrect), `flags` (list), `note` (at most"
             " 10,000 characters), `corrected_draft`. Notes and drafts are scrubbed of personal data before they"
             " are stored. The author is the key's id. 201 with the stored review; 400 names a bad field.",
             responses={400: {"description": "A field is invalid or the body is not a JSON object"},
                        401: {"description": "No valid API key"}, 403: {"description": "Not a review-scope key"},
                        404: {"description": "No such ticket, or another tenant's"},
                        408: {"description": "The body did not arrive within FLUSSO_BODY_TIMEOUT_SECONDS"},
                        413: {"description": "The body is over the 1 MiB limit of non-ingest routes"}})
async def post_api_review(request: Request, log_id: str, ctx: Context, principal: ReviewKeyPrincipal) -> Response:
    ticket = parse_log_id(log_id)
    body = await request.body()
    if len(body) > MAX_BODY_BYTES:
        raise BadRequest(f"body: at most {MAX_BODY_BYTES:,} bytes")
    try:
        values = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise BadRequest("body: expected a JSON object with verdict, flags, note, corrected_draft") from None
    if not isinstance(values, dict):
        raise BadRequest("body: expected a JSON object with verdict, flags, note, corrected_draft")
    row = await record_review(ctx, principal, ticket, values)
    return _json(review_json(row), status=201)


def export_line(row: dict) -> dict[str, Any]:
    """One reviewed ticket of the JSONL export: its stored (already redacted) row fields, draft and
    ticket section, then the latest verdict, flags, corrected draft and the review count."""
    skip = {"verdict", "flags", "corrected_draft", "review_count", "last_review_at", "draft", "ticket"}
    line = {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in row.items() if k not in skip}
    line.update(ticket=row["ticket"], draft=row["draft"], verdict=row["verdict"], flags=list(row["flags"]),
                corrected_draft=row["corrected_draft"], review_count=row["review_count"],
                last_review_at=row["last_review_at"].isoformat())
    return line


@router.get("/reviews/export.jsonl", summary="Every reviewed ticket once, as JSON lines (streamed)",
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
