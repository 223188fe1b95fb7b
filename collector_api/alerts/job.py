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
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime

from psycopg_pool import AsyncConnectionPool

from collector_api.alerts.evaluate import evaluate_rules
from collector_api.alerts.rules import signing_secret
from collector_api.alerts.targets import AllowList
from collector_api.alerts.webhooks import post_webhook, sign
from collector_api.store.alerts.deliveries import (
    AttemptResult,
    DueDelivery,
    due_deliveries,
    prune_deliveries,
    record_attempt,
)
from collector_api.store.alerts.rollups import refresh_alert_rollups

logger = logging.getLogger(__name__)

SEND_CONCURRENCY = 8  # webhook attempts at once: the size of the senders' executor
MAX_DUE_DELIVERIES = 50  # attempts per tick at most; the rest wait for the next tick
SEND_GRACE_S = 2.0  # beyond the attempt's own deadline, for a thread stuck where no socket can end it (DNS)


def senders_executor() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(SEND_CONCURRENCY, thread_name_prefix="flusso-webhook")


@dataclass(frozen=True)
class AlertConfig:
    master_key: str  # FLUSSO_ALERT_SECRET_KEY (or the data dir's): rule secrets derive from it
    allow: AllowList = field(default_factory=AllowList)
    public_url: str | None = None
    timeout_s: float = 10.0  # FLUSSO_WEBHOOK_TIMEOUT_S: total per attempt (connect, send, headers, body)
    # The webhooks' own bounded executor: a slow receiver occupies these threads, never the
    # event loop's default executor that other jobs and requests use.
    senders: ThreadPoolExecutor = field(default_factory=senders_executor, compare=False, repr=False)


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
    attempt = asyncio.get_running_loop().run_in_executor(
        config.senders, post_webhook, delivery.webhook_url, delivery.body, headers, config.allow, config.timeout_s)
    try:  # post_webhook keeps its own total deadline; this bounds what no socket can end (a DNS lookup)
        async with asyncio.timeout(config.timeout_s + SEND_GRACE_S):
            return await attempt
    except TimeoutError:
        return AttemptResult(None, f"no answer within the total deadline of {config.timeout_s:g} s"
                                   " (FLUSSO_WEBHOOK_TIMEOUT_S); its thread had not stopped (address lookup)",
                             (config.timeout_s + SEND_GRACE_S) * 1000)


async def deliver_due(pool: AsyncConnectionPool, config: AlertConfig) -> tuple[int, int]:
    """Send every due delivery (a few at once); (attempts, delivered)."""
    due = await due_deliveries(pool, datetime.now(UTC), limit=MAX_DUE_DELIVERIES)
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
