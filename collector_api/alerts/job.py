"""One tick of the `alert-evaluate` job (flusso_obs.jobs): bring the alert rollups up to date,
judge every rule, send the webhooks that are due, forget deliveries older than 30 days.

The job is leader-elected, so across workers and replicas one process does this per interval.
A transition is stored with its delivery in one transaction (collector_api.alerts.evaluate), and a delivery
stays pending in the database until a 2xx: neither a restart nor a crash loses or repeats a
notification (a crash between the POST and its record may repeat one: receivers dedupe on
X-Flusso-Delivery).
"""
from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

from psycopg_pool import AsyncConnectionPool

from collector_api.alerts.evaluate import evaluate_rules
from collector_api.alerts.rules import signing_secret
from collector_api.alerts.webhooks import AllowList, post_webhook, sign
from collector_api.store.alerts.deliveries import (
    AttemptResult,
    DueDelivery,
    due_deliveries,
    prune_deliveries,
    record_attempt,
)
from collector_api.store.alerts.rollups import refresh_alert_rollups

logger = logging.getLogger(__name__)

SEND_CONCURRENCY = 8


@dataclass(frozen=True)
class AlertConfig:
    master_key: str  # FLUSSO_ALERT_SECRET_KEY (or the data dir's): rule secrets derive from it
    allow: AllowList = field(default_factory=AllowList)
    public_url: str | None = None
    timeout_s: float = 5.0


@dataclass(frozen=True)
class TickReport:
    buckets: int
    transitions: int
    attempts: int
    delivered: int


async def send_delivery(delivery: DueDelivery, config: AlertConfig) -> AttemptResult:
    if delivery.webhook_url is None or delivery.secret_salt is None:
        return AttemptResult(None, "the rule was deleted", 0.0)
    secret = signing_secret(config.master_key, delivery.secret_salt)
    headers = {"X-Flusso-Delivery": delivery.id, "X-Flusso-Signature": sign(secret, delivery.body, int(time.time()))}
    return await asyncio.to_thread(post_webhook, delivery.webhook_url, delivery.body, headers, config.allow,
                                   config.timeout_s)


async def deliver_due(pool: AsyncConnectionPool, config: AlertConfig) -> tuple[int, int]:
    """Send every due delivery (a few at once); (attempts, delivered)."""
    due = await due_deliveries(pool, datetime.now(UTC))
    gate = asyncio.Semaphore(SEND_CONCURRENCY)

    async def one(delivery: DueDelivery) -> str:
        async with gate:
            result = await send_delivery(delivery, config)
        status = await record_attempt(pool, delivery, result, datetime.now(UTC))
        if not result.ok:
            logger.warning("alert delivery %s (tenant %s, %s) attempt %d: %s; now %s", delivery.id,
                           delivery.client_id, delivery.state, delivery.attempts + 1, result.error, status)
        return status

    statuses = await asyncio.gather(*(one(d) for d in due))
    return len(statuses), statuses.count("delivered")


async def alert_tick(pool: AsyncConnectionPool, config: AlertConfig) -> TickReport:
    buckets = await refresh_alert_rollups(pool)
    transitions = await evaluate_rules(pool, public_url=config.public_url)
    for t in transitions:
        logger.info("alert %s (rule %d) %s for tenant %s: %s %s %s", t.rule.name, t.rule.id, t.state, t.client_id,
                    t.value, t.rule.op, t.rule.threshold)
    attempts, delivered = await deliver_due(pool, config)
    await prune_deliveries(pool, datetime.now(UTC))
    return TickReport(buckets, len(transitions), attempts, delivered)
