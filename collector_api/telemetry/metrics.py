"""The collector's own Prometheus metrics, on a registry per app (no global state).

With several worker processes (`flusso-obs serve --workers N`) the parent sets
PROMETHEUS_MULTIPROC_DIR before the workers start: prometheus-client then keeps every value in
a shared directory and `/metrics`, whichever worker answers, reports the sum over all of them.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, multiprocess

from collector_api.telemetry.counters import IngestCounters

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def multiprocess_mode() -> bool:
    return bool(os.environ.get(MULTIPROC_ENV))


class TappedCounter:
    """A Prometheus counter whose every `labels(...).inc(n)` is also passed to `tap(labels, n)`:
    the ingest health counters (collector_api.telemetry.counters) see exactly what /metrics counts."""

    def __init__(self, counter: Counter, tap: Callable[[tuple[str, ...], float], None]):
        self.counter, self._tap = counter, tap

    def labels(self, *values: str) -> _TappedChild:
        return _TappedChild(self.counter.labels(*values), values, self._tap)


class _TappedChild:
    __slots__ = ("_child", "_values", "_tap")

    def __init__(self, child, values: tuple[str, ...], tap: Callable[[tuple[str, ...], float], None]):
        self._child, self._values, self._tap = child, values, tap

    def inc(self, amount: float = 1) -> None:
        self._child.inc(amount)
        self._tap(self._values, amount)


@dataclass
class CollectorMetrics:
    registry: CollectorRegistry
    received: Counter
    stored: TappedCounter  # labels (client_id,): also counted as `stored` in `health`
    duplicates: TappedCounter  # (client_id,): `duplicate`
    rejected: TappedCounter  # (reason, client_id): the reason code
    latency: Histogram
    batch_size: Histogram
    inflight: Gauge
    health: IngestCounters  # per tenant, reason and minute; flushed by the ingest-counters job

    @classmethod
    def create(cls) -> CollectorMetrics:
        registry = CollectorRegistry()
        health = IngestCounters()
        return cls(
            registry=registry,
            received=Counter("flusso_logs_received", "Workflow log records received", ["endpoint"], registry=registry),
            stored=TappedCounter(Counter("flusso_logs_stored", "Workflow logs newly stored", ["client_id"],
                                         registry=registry), lambda v, n: health.count(v[0], "stored", n)),
            duplicates=TappedCounter(Counter("flusso_logs_duplicate",
                                             "Workflow logs already stored (idempotent replay)",
                                             ["client_id"], registry=registry),
                                     lambda v, n: health.count(v[0], "duplicate", n)),
            rejected=TappedCounter(Counter("flusso_logs_rejected", "Records or requests refused",
                                           ["reason", "client_id"], registry=registry),
                                   lambda v, n: health.count(v[1], v[0], n)),
            latency=Histogram("flusso_request_seconds", "Ingest request latency", ["endpoint", "status"],
                              registry=registry,
                              buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)),
            batch_size=Histogram("flusso_batch_records", "Log records per ingest request", registry=registry,
                                 buckets=(1, 2, 5, 10, 25, 50, 100, 250, 512, 1024, 4096)),
            inflight=Gauge("flusso_requests_in_flight", "Ingest requests being processed", registry=registry,
                           multiprocess_mode="livesum"),
            health=health,
        )

    def exposition(self) -> bytes:
        """The Prometheus text of this process, or of every worker process in multiprocess mode."""
        if not multiprocess_mode():
            return generate_latest(self.registry)
        combined = CollectorRegistry()
        multiprocess.MultiProcessCollector(combined)
        return generate_latest(combined)

    @staticmethod
    def process_exiting() -> None:
        """In multiprocess mode, drop this process's live gauges (its counters stay counted)."""
        if multiprocess_mode():
            multiprocess.mark_process_dead(os.getpid())
