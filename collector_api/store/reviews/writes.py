"""Recording human reviews of tickets (the writer; store.review_reads is the read side).

A review is appended to `ticket_reviews` (never updated or deleted by the application) and
summarized in `ticket_review_state` (the ticket's latest verdict), in one transaction running as
the RLS role. The stored log is never touched. Notes and corrected drafts pass through the
bridge's free-text detectors (`otel_bridge.pii.Redactor.scrub_text`, a pure module) before
they are stored, as logs do in the client. SQL + psycopg only; no web framework.
"""
from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from psycopg import sql
from psycopg_pool import AsyncConnectionPool

from collector_api.store.core.db import Scope, StoreError, scoped_transaction
from collector_api.store.core.scope import tenant_condition
from otel_bridge.pii import Redactor

logger = logging.getLogger(__name__)

VERDICTS = ("correct", "needs_work", "incorrect")
BASE_FLAGS = ("hallucination", "policy", "tone", "wrong_tool")
MAX_NOTE_CHARS = 10_000
MAX_DRAFT_CHARS = 20_000
MAX_FLAGS = 20
REVIEW_COLUMNS = ("id, client_id, log_id, executed_at, verdict, flags, note, corrected_draft, author, author_kind,"
                  " created_at")


class ReviewError(StoreError):
    """A review the store refuses: `field` names the input at fault; `status` is 400 or 404."""

    def __init__(self, field: str, message: str, *, status: int = 400):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.status = status


@dataclass(frozen=True)
class ReviewInput:
    """A validated review, not scrubbed yet."""

    verdict: str
    flags: tuple[str, ...] = ()
    note: str | None = None
    corrected_draft: str | None = None


@dataclass(frozen=True)
class Author:
    name: str  # a user's email or an API key's id
    kind: str  # "user" or "api_key"


def validate_review(verdict: Any, flags: Any, note: Any, corrected_draft: Any,
                    allowed_flags: Sequence[str]) -> ReviewInput:
    """The review described by form or JSON values; ReviewError naming the first bad field."""
    if not isinstance(verdict, str) or verdict.strip() not in VERDICTS:
        shown = verdict[:40] if isinstance(verdict, str) else verdict
        raise ReviewError("verdict", f"expected one of {', '.join(VERDICTS)}, got {shown!r}")
    if flags is None:
        flags = []
    if isinstance(flags, str):
        flags = [flags]
    if not isinstance(flags, list) or not all(isinstance(f, str) for f in flags):
        raise ReviewError("flags", "expected a list of flag names")
    names = [f.strip() for f in flags if f.strip()]
    if len(names) > MAX_FLAGS:
        raise ReviewError("flags", f"at most {MAX_FLAGS} flags")
    for name in names:
        if name not in allowed_flags:
            raise ReviewError("flags", f"unknown flag {name[:40]!r}; expected some of {', '.join(allowed_flags)}")
    return ReviewInput(verdict.strip(), tuple(dict.fromkeys(names)),
                       _text("note", note, MAX_NOTE_CHARS), _text("corrected_draft", corrected_draft, MAX_DRAFT_CHARS))


def _text(field: str, value: Any, limit: int) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ReviewError(field, "expected text")
    value = value.replace("\r\n", "\n").replace("\x00", "").strip()
    if len(value) > limit:
        raise ReviewError(field, f"at most {limit:,} characters, got {len(value):,}")
    return value or None


class Scrubber:
    """The bridge's free-text detectors with a server-side key: secrets, emails, IBANs, cards and
    phone numbers in a note become keyed tokens. Long enough a limit that nothing is truncated."""

    def __init__(self, key: str | bytes):
        self._redactor = Redactor(key, max_string_chars=MAX_DRAFT_CHARS)

    def scrub(self, text: str | None) -> str | None:
        return None if text is None else self._redactor.scrub_text(text)


_FIND_LOG = sql.SQL("SELECT client_id, executed_at, status, overall_confidence, hallucination_risk FROM workflow_logs"
             " WHERE id = %s AND {tenant} LIMIT 1")
_INSERT = ("INSERT INTO ticket_reviews (client_id, log_id, executed_at, verdict, flags, note, corrected_draft,"
           " author, author_kind) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING " + REVIEW_COLUMNS)
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


async def add_review(pool: AsyncConnectionPool, scope: Scope, log_id: int, review: ReviewInput, author: Author,
                     scrubber: Scrubber) -> dict:
    """Append `review` to the ticket `log_id` and return the stored review (scrubbed).

    ReviewError(status=404) when the ticket does not exist in `scope` (another tenant's ticket
    looks absent). A provider's review is written in a transaction narrowed to the ticket's
    tenant, so row-level security checks it like a client's."""
    note, draft = scrubber.scrub(review.note), scrubber.scrub(review.corrected_draft)
    tenant, params = tenant_condition(scope)
    async with scoped_transaction(pool, scope) as conn:
        log = await (await conn.execute(_FIND_LOG.format(tenant=tenant), [log_id, *params])).fetchone()
        if log is None:
            raise ReviewError("id", "no such ticket (or it belongs to another client)", status=404)
        if scope.all_tenants:  # writes go through the tenant policy: name the ticket's tenant
            await conn.execute("SELECT set_config('flusso.tenant', %s, true)", (log["client_id"],))
        row = await (await conn.execute(_INSERT, (
            log["client_id"], log_id, log["executed_at"], review.verdict, list(review.flags), note, draft,
            author.name, author.kind))).fetchone()
        await conn.execute(_UPSERT_STATE, (
            log_id, log["client_id"], log["executed_at"], log["status"], log["overall_confidence"],
            log["hallucination_risk"], row["verdict"], row["flags"], row["corrected_draft"], row["id"],
            row["created_at"]))
    logger.info("review %s of log %s by %s %s: %s", row["id"], log_id, author.kind, author.name, row["verdict"])
    return row


def review_flags(labels: Iterable[str]) -> tuple[str, ...]:
    """The flags a review may carry: the four built in, then `labels` (FLUSSO_REVIEW_LABELS)."""
    return tuple(dict.fromkeys([*BASE_FLAGS, *labels]))
