"""What the collector's routes share: settings, pool, metrics, admission control."""
from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from psycopg_pool import AsyncConnectionPool

from collector_api.http.errors import TooManyRequests, Unavailable
from collector_api.telemetry.metrics import CollectorMetrics
from config.server import ServerSettings


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
    tenant_inflight: dict[str, int] = field(default_factory=dict)

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
        """One ingest request of `tenant` inside: 429 over the tenant's rate, 503 at the tenant's
        in-flight bound or the global one, and its slots released however the request ends."""
        self.limiter.check(tenant, self.settings.flusso_retry_after_seconds)
        self._admit_tenant(tenant)
        try:
            self.admit()
        except BaseException:
            self._release_tenant(tenant)
            raise
        try:
            yield
        finally:
            self.release()
            self._release_tenant(tenant)

    def _admit_tenant(self, tenant: str) -> None:
        """One tenant holds at most FLUSSO_MAX_INFLIGHT_PER_TENANT of the global slots: slow or
        stalled uploads of one tenant cannot take them all."""
        held = self.tenant_inflight.get(tenant, 0)
        if held >= self.settings.flusso_max_inflight_per_tenant:
            self.metrics.rejected.labels("tenant_overloaded", tenant).inc()
            raise Unavailable(f"tenant {tenant} is at its limit of {held} ingest requests in flight; retry later",
                              retry_after=self.settings.flusso_retry_after_seconds)
        self.tenant_inflight[tenant] = held + 1

    def _release_tenant(self, tenant: str) -> None:
        held = self.tenant_inflight.get(tenant, 0) - 1
        if held > 0:
            self.tenant_inflight[tenant] = held
        else:
            self.tenant_inflight.pop(tenant, None)  # the map holds only tenants with requests in flight

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
