"""The webhook delivery queue and log (migration 0012), SQL only; sending is collector_api.alerts.webhooks.

A delivery is pending until a 2xx answer, retried with backoff (RETRY_DELAYS_S), and failed
after the last; every attempt is a row of `alert_delivery_attempts`. Both are kept 30 days.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from psycopg_pool import AsyncConnectionPool

from collector_api.store.core.db import owner_connection

RETRY_DELAYS_S = (10, 30, 120, 600, 1800)  # after attempts 1..5; attempt 6 is the last
MAX_ATTEMPTS = len(RETRY_DELAYS_S) + 1
KEEP_DAYS = 30


@dataclass(frozen=True)
class DueDelivery:
    id: str
    client_id: str
    state: str
    body: bytes
    attempts: int
    webhook_url: str | None  # None: the rule was deleted
    secret_salt: bytes | None


@dataclass(frozen=True)
class AttemptResult:
    http_status: int | None
    error: str | None
    duration_ms: float

    @property
    def ok(self) -> bool:
        return self.http_status is not None and 200 <= self.http_status < 300


async def due_deliveries(pool: AsyncConnectionPool, now: datetime, *, limit: int = 50) -> list[DueDelivery]:
    """Pending deliveries whose next attempt is due, oldest first, with their rule's target."""
    async with owner_connection(pool) as conn:
        rows = await (await conn.execute(
            "SELECT d.id::text AS id, d.client_id, d.state, d.body, d.attempts, r.webhook_url, r.secret_salt"
            " FROM alert_deliveries d LEFT JOIN alert_rules r ON r.id = d.rule_id"
            " WHERE d.status = 'pending' AND d.next_attempt_at <= %s ORDER BY d.next_attempt_at, d.created_at"
            " LIMIT %s", (now, limit))).fetchall()
    return [DueDelivery(**{**r, "body": bytes(r["body"]),
                           "secret_salt": bytes(r["secret_salt"]) if r["secret_salt"] is not None else None})
            for r in rows]


async def record_attempt(pool: AsyncConnectionPool, delivery: DueDelivery, result: AttemptResult,
                         at: datetime) -> str:
    """Log one attempt and move the delivery on; returns its new status."""
    attempt = delivery.attempts + 1
    if result.ok:
        status, next_at = "delivered", at
    elif attempt >= MAX_ATTEMPTS or delivery.webhook_url is None:
        status, next_at = "failed", at
    else:
        status, next_at = "pending", at + timedelta(seconds=RETRY_DELAYS_S[attempt - 1])
    async with owner_connection(pool) as conn, conn.transaction():
        await conn.execute(
            "INSERT INTO alert_delivery_attempts (delivery_id, attempt, at, http_status, error, duration_ms)"
            " VALUES (%s, %s, %s, %s, %s, %s)",
            (delivery.id, attempt, at, result.http_status, result.error, result.duration_ms))
        await conn.execute(
            "UPDATE alert_deliveries SET attempts = %s, status = %s, next_attempt_at = %s,"
            " finished_at = CASE WHEN %s <> 'pending' THEN %s END WHERE id = %s",
            (attempt, status, next_at, status, at, delivery.id))
    return status


async def prune_deliveries(pool: AsyncConnectionPool, now: datetime) -> int:
    """Forget deliveries (and their attempts) created more than KEEP_DAYS ago."""
    async with owner_connection(pool) as conn:
        cur = await conn.execute("DELETE FROM alert_deliveries WHERE created_at < %s",
                                 (now - timedelta(days=KEEP_DAYS),))
        return cur.rowcount
