"""What the collector's routes share: settings, pool, metrics, admission control."""
from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from contextvars import ContextVar
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


# The tenant of the ingest request the current task is serving (set by CollectorState.admitted),
# so `async with state.decode_slot:` takes that tenant's slot without being told.
CURRENT_TENANT: ContextVar[str] = ContextVar("flusso_ingest_tenant", default="")


class TenantSlots:
    """At most `total` holders at once, and at most `per_tenant` of one tenant: a tenant's
    requests beyond its share wait on their own queue, never in front of another tenant's.
    ``async with slots:`` takes a slot of the tenant admitted in the current task
    (CURRENT_TENANT); ``slots.slot(tenant)`` names it."""

    def __init__(self, total: int | None, per_tenant: int):
        self._total = asyncio.Semaphore(total) if total else None
        self._per_tenant = per_tenant
        self._tenants: dict[str, tuple[asyncio.Semaphore, int]] = {}
        self._held: ContextVar[list] = ContextVar(f"flusso_slot_{id(self)}")

    async def __aenter__(self) -> None:
        ctx = self.slot(CURRENT_TENANT.get())
        await ctx.__aenter__()
        self._held.set([*self._held.get([]), ctx])

    async def __aexit__(self, *exc: object) -> None:
        held = self._held.get()
        self._held.set(held[:-1])
        await held[-1].__aexit__(*exc)

    @asynccontextmanager
    async def slot(self, tenant: str) -> AsyncIterator[None]:
        own, users = self._tenants.get(tenant) or (asyncio.Semaphore(self._per_tenant), 0)
        self._tenants[tenant] = (own, users + 1)
        try:
            async with own:
                if self._total is None:
                    yield
                else:
                    async with self._total:
                        yield
        finally:
            own, users = self._tenants[tenant]
            if users > 1:
                self._tenants[tenant] = (own, users - 1)
            else:
                del self._tenants[tenant]  # only tenants with requests here are kept


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
        # their compressed bodies instead of piling up in memory. One tenant holds at most half
        # of them, so another tenant always finds one.
        concurrency = self.settings.flusso_ingest_concurrency
        self.work_slots = TenantSlots(concurrency, max(1, concurrency // 2))
        # Decoding is pure Python (GIL-bound): one at a time per tenant, so a tenant's next
        # request decodes while the database writes its previous one; tenants decode side by
        # side, so one tenant's large request never holds up another's (they share the CPU).
        self.decode_slot = TenantSlots(None, 1)

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
        token = CURRENT_TENANT.set(tenant)  # whose work and decode slots this task takes
        try:
            yield
        finally:
            CURRENT_TENANT.reset(token)
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
