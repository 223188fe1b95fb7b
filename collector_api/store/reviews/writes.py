"""Recording human reviews of tickets (the writer; store.reviews.reads is the read side).

A review is appended to `ticket_reviews` (never updated or deleted by the application) and
summarized in `ticket_review_state` (the ticket's latest verdict), in one transaction running as
the RLS role. The stored log is never touched. The caller validates and scrubs the review first
(collector_api.contract.review_text): this module stores what it is given. SQL + psycopg only.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Protocol

from psycopg import sql
from psycopg_pool import AsyncConnectionPool

from collector_api.store.core.db import Scope, StoreError, scoped_transaction, set_local
from collector_api.store.core.scope import tenant_condition

logger = logging.getLogger(__name__)

REVIEW_COLUMNS = ("id, client_id, log_id, executed_at, verdict, flags, note, corrected_draft, author, author_kind,"
                  " author_role, created_at")


class TicketNotFound(StoreError):
    """The reviewed ticket does not exist in the scope (another tenant's ticket looks absent)."""

    field = "id"
    status = 404

    def __init__(self) -> None:
        super().__init__("id: no such ticket (or it belongs to another client)")


class Review(Protocol):
    """What a review brings (collector_api.contract.review_text.ReviewInput, validated and scrubbed)."""

    @property
    def verdict(self) -> str: ...
    @property
    def flags(self) -> tuple[str, ...]: ...
    @property
    def note(self) -> str | None: ...
    @property
    def corrected_draft(self) -> str | None: ...


@dataclass(frozen=True)
class Author:
    name: str  # a user's email or an API key's id
    kind: str  # "user" or "api_key"
    role: str  # "provider", "client" or "api_key": what a tenant is shown of a provider's review


_FIND_LOG = sql.SQL("SELECT client_id, executed_at, status, overall_confidence, hallucination_risk FROM workflow_logs"
             " WHERE id = %s AND {tenant} LIMIT 1")
_INSERT = ("INSERT INTO ticket_reviews (client_id, log_id, executed_at, verdict, flags, note, corrected_draft,"
           " author, author_kind, author_role) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING "
           + REVIEW_COLUMNS)
# The latest review (highest id) sets the verdict and flags, whatever order concurrent
# reviews commit in; a corrected draft stays until a later review brings another.
_UPSERT_STATE = (
    "INSERT INTO ticket_review_state AS s (log_id, client_id, executed_at, status, overall_confidence,"
    " hallucination_risk, verdict, flags, corrected_draft, review_count, last_review_id, last_review_at)"
    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, 1, %s, %s)"
    " ON CONFLICT (log_id) DO UPDATE SET review_count = s.review_count + 1,"
    " verdict = CASE WHEN EXCLUDED.last_review_id > s.last_review_id THEN EXCLUDED.verdict ELSE s.verdict END,"
    " flags = CASE WHEN EXCLUDED.last_review_id > s.last_review_id THEN EXCLUDED.flags ELSE s.flags END,"
    " corrected_draft = CASE WHEN EXCLUDED.last_review_id > s.last_review_id"
    "   THEN COALESCE(EXCLUDED.corrected_draft, s.corrected_draft) ELSE s.corrected_draft END,"
    " last_review_at = greatest(s.last_review_at, EXCLUDED.last_review_at),"
    " last_review_id = greatest(s.last_review_id, EXCLUDED.last_review_id)"
)


async def add_review(pool: AsyncConnectionPool, scope: Scope, log_id: int, review: Review, author: Author) -> dict:
    """Append `review` (already scrubbed) to the ticket `log_id` and return the stored review.

    TicketNotFound when the ticket does not exist in `scope` (another tenant's ticket looks
    absent). A provider's review is written in a transaction narrowed to the ticket's tenant, so
    row-level security checks it like a client's."""
    note, draft = review.note, review.corrected_draft
    tenant, params = tenant_condition(scope)
    async with scoped_transaction(pool, scope) as conn:
        log = await (await conn.execute(_FIND_LOG.format(tenant=tenant), [log_id, *params])).fetchone()
        if log is None:
            raise TicketNotFound
        if scope.all_tenants:  # writes go through the tenant policy: name the ticket's tenant
            await set_local(conn, {"flusso.tenant": log["client_id"]})
        row = await (await conn.execute(_INSERT, (
            log["client_id"], log_id, log["executed_at"], review.verdict, list(review.flags), note, draft,
            author.name, author.kind, author.role))).fetchone()
        await conn.execute(_UPSERT_STATE, (
            log_id, log["client_id"], log["executed_at"], log["status"], log["overall_confidence"],
            log["hallucination_risk"], row["verdict"], row["flags"], row["corrected_draft"], row["id"],
            row["created_at"]))
    logger.info("review %s of log %s by %s %s: %s", row["id"], log_id, author.kind, author.name, row["verdict"])
    return row

