"""An erasure from a validated request to a signed receipt (the route and `flusso-obs erase` share it).

Raw identifiers (email, phone, name) are turned into the tenant's /v1/traces tokens here, with a
Redactor built for this request only (its memo of values is dropped with it), and never logged,
stored or returned: the erasure log and the receipt hold the tokens.
"""
from __future__ import annotations

from collections.abc import Callable

from psycopg_pool import AsyncConnectionPool

from collector_api.contract.receipts import ErasureRequest, ReceiptError, asked_digest, receipt_of, sign
from collector_api.store.erasure.run import BATCH, run_erasure
from collector_api.traces.sealing import hashing_key
from otel_bridge.pii import Redactor


class ErasureUnavailable(ReceiptError):
    """Erasures are off: no FLUSSO_RECEIPT_KEY to sign their receipts."""

    status = 501


def require_receipt_key(receipt_key: str | None) -> str:
    if not receipt_key:
        raise ErasureUnavailable("erasures are refused: FLUSSO_RECEIPT_KEY is not set, so no receipt could be signed"
                                 " (set it to a long random secret; docs/privacy.md)")
    return receipt_key


def asked_of(request: ErasureRequest, client: str, pii_secret: str | None,
             review_token: Callable[[str, str], str] | None = None) -> dict:
    """What the request asks, as recorded: ids and tokens. Raw identifiers become the tenant's
    /v1/traces tokens and, with `review_token`, the tokens review notes hold (the viewer's key)."""
    tokens = set(request.tokens)
    if request.identifiers:
        if not pii_secret:
            raise ReceiptError("identifiers: this server has no FLUSSO_PII_HASH_KEY (no /v1/traces tokens to match);"
                               " send the bridge's tokens instead (otel_bridge.erasure_tokens)")
        redactor = Redactor(hashing_key(pii_secret, client))
        tokens |= {redactor.token(kind, value) for kind, value in request.identifiers}
        if review_token is not None:
            tokens |= {review_token(kind, value) for kind, value in request.identifiers}
    return {"ticket_ids": sorted(request.ticket_ids), "trace_ids": sorted(request.trace_ids), "tokens": sorted(tokens)}


async def erase(pool: AsyncConnectionPool, request: ErasureRequest, *, client: str, receipt_key: str | None,
                pii_secret: str | None, requested_by: str,
                review_token: Callable[[str, str], str] | None = None, batch: int = BATCH) -> dict:
    """Run (or finish, or replay) the erasure; its signed receipt. ReceiptError for a bad request,
    store.erasure.run.ErasureConflict for a request id used before with another request."""
    key = require_receipt_key(receipt_key)
    asked = asked_of(request, client, pii_secret, review_token)
    row = await run_erasure(pool, client, request.request_id, asked, asked_digest(asked), requested_by,
                            batch=max(1, batch))
    return sign(receipt_of(row), key)
