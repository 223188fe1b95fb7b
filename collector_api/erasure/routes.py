"""POST /api/v1/erasures and GET /api/v1/erasures/{request_id}: an `erase` key of the tenant only.

The body went through the body guard first (FLUSSO_MAX_ERASURE_BYTES, FLUSSO_BODY_TIMEOUT_SECONDS).
The answer comes when the erasure is done: the signed receipt (200). The same request id again
returns the same receipt; a crashed erasure is finished by its retry.
"""
from __future__ import annotations

import logging

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from collector_api.contract.receipts import ReceiptError, parse_request, receipt_of, sign
from collector_api.erasure.service import erase, require_receipt_key
from collector_api.http.auth import EraseKey, State
from collector_api.http.errors import CollectorError, Unavailable
from collector_api.http.responses import CollectorRoute
from collector_api.store.core.db import StoreUnavailable
from collector_api.store.erasure.reads import get_erasure
from collector_api.store.erasure.run import ErasureConflict
from config.server import reveal

logger = logging.getLogger(__name__)
router = APIRouter(route_class=CollectorRoute, tags=["erasure"])
_ERRORS = {400: {"description": "A field is invalid (named)"}, 401: {"description": "No valid API key"},
           403: {"description": "Not an erase-scope key"}, 408: {"description": "The body was too slow"},
           409: {"description": "The request id was used for another request"},
           413: {"description": "The body is over FLUSSO_MAX_ERASURE_BYTES"},
           501: {"description": "FLUSSO_RECEIPT_KEY is not set: erasures are refused"},
           503: {"description": "The database is unavailable; retry (the erasure resumes)"}}


@router.post("/api/v1/erasures", summary="Erase a customer's data (erase-scope key); answered when done",
             description="JSON body: `request_id` (yours; idempotent), and any of `ticket_ids`, `trace_ids` (32 hex),"
             " `tokens` (the bridge's, from otel_bridge.erasure_tokens) and `identifiers` {email, phone, name: [...]}"
             " (hashed at once under the tenant's /v1/traces key; never stored). 200: the signed receipt.",
             responses=_ERRORS)
async def post_erasure(request: Request, state: State, key: EraseKey) -> JSONResponse:
    settings = state.settings
    require_receipt_key_or_501(reveal(settings.flusso_receipt_key))
    try:
        body = orjson.loads(await request.body())
    except orjson.JSONDecodeError:
        raise CollectorError("body: expected a JSON object (request_id, ticket_ids, trace_ids, tokens,"
                             " identifiers)") from None
    try:
        ask = parse_request(body)
        secret = getattr(getattr(request.app.state, "traces", None), "secret", None)
        receipt = await erase(state.pool, ask, client=key.client_id, receipt_key=reveal(settings.flusso_receipt_key),
                              pii_secret=secret, requested_by=key.key_id,
                              review_token=getattr(request.app.state, "erasure_review_token", None))
    except (ReceiptError, ErasureConflict) as exc:
        raise CollectorError(str(exc), status=exc.status) from None
    except StoreUnavailable:
        raise Unavailable("database unavailable; retry the same request (the erasure resumes where it stopped)",
                          retry_after=settings.flusso_retry_after_seconds) from None
    logger.info("erasure %s of tenant %s done: %s", ask.request_id, key.client_id, receipt["counts"])
    return JSONResponse(receipt)


def require_receipt_key_or_501(receipt_key: str | None) -> str:
    try:
        return require_receipt_key(receipt_key)
    except ReceiptError as exc:
        raise CollectorError(str(exc), status=exc.status) from None


@router.get("/api/v1/erasures/{request_id}", summary="The signed receipt of one of the tenant's erasures",
            responses={**_ERRORS, 404: {"description": "No such request id for this tenant"}})
async def get_erasure_receipt(request_id: str, state: State, key: EraseKey) -> JSONResponse:
    receipt_key = require_receipt_key_or_501(reveal(state.settings.flusso_receipt_key))
    row = await get_erasure(state.pool, key.client_id, request_id[:200])
    if row is None:
        raise CollectorError("no erasure with this request_id for your tenant", status=404)
    return JSONResponse(sign(receipt_of(row), receipt_key))
