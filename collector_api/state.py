"""What the collector's routes share: settings, pool, metrics, admission control."""
from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from psycopg_pool import AsyncConnectionPool

from config.server import ServerSettings

from .errors import TooManyRequests, Unavailable
from .telemetry import CollectorMetrics


class TenantRateLimiter:
    """Token bucket per tenant: `rate` requests per second, bursts up to 2 seconds' worth."""

    def __init__(self, rate: float):
        self.rate = rate
        self.capacity = max(1.0, rate * 2)
        self._buckets: dict[str, tuple[float, float]] = {}

    def check(self, tenant: str, retry_after: int) -> None:
        if self.rate <= 0:
            return
        now = time.monotonic()
        tokens, last = self._buckets.get(tenant, (self.capacity, now))
        tokens = min(self.capacity, tokens + (now - last) * self.rate)
        if tokens < 1:
            self._buckets[tenant] = (tokens, now)
            raise TooManyRequests(f"tenant {tenant} is over its ingest rate of {self.rate:g} requests/s",
                                  retry_after=retry_after)
        self._buckets[tenant] = (tokens - 1, now)


@dataclass
class CollectorState:
    settings: ServerSettings
    pool: AsyncConnectionPool
    metrics: CollectorMetrics = field(default_factory=CollectorMetrics.create)
    inflight: int = 0
    limiter: TenantRateLimiter | None = None

    def __post_init__(self):
        self.limiter = TenantRateLimiter(self.settings.flusso_tenant_rate_limit_per_s)
        # Decoded requests cost memory, held until COMMIT (docs/benchmarks-ingest.md): only a
        # few are in the decode+store stage at once; admitted requests beyond them wait here with
        # their compressed bodies instead of piling up in memory.
        self.work_slots = asyncio.Semaphore(self.settings.flusso_ingest_concurrency)
        # Decoding is pure Python (GIL-bound): one at a time, so it runs while the database writes
        # the requests decoded before it, and the database always has the next batch waiting.
        self.decode_slot = asyncio.Semaphore(1)

    @asynccontextmanager
    async def admitted(self, tenant: str) -> AsyncIterator[None]:
        """One ingest request of `tenant` inside: 429 over the tenant's rate, 503 at the in-flight
        bound, and its slot released however the request ends."""
        self.limiter.check(tenant, self.settings.flusso_retry_after_seconds)
        self.admit()
        try:
            yield
        finally:
            self.release()

    def admit(self) -> None:
        """Count one more ingest request in flight, or refuse it with 503 when at the bound."""
        if self.inflight >= self.settings.flusso_max_inflight_requests:
            self.metrics.rejected.labels("overloaded", "").inc()
            raise Unavailable("collector is at its limit of requests in flight; retry later",
                              retry_after=self.settings.flusso_retry_after_seconds)
        self.inflight += 1
        self.metrics.inflight.set(self.inflight)

    def release(self) -> None:
        self.inflight -= 1
        self.metrics.inflight.set(self.inflight)
