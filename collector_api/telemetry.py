"""The collector's own Prometheus metrics, on a registry per app (no global state).

With several worker processes (`flusso-obs serve --workers N`) the parent sets
PROMETHEUS_MULTIPROC_DIR before the workers start: prometheus-client then keeps every value in
a shared directory and `/metrics`, whichever worker answers, reports the sum over all of them.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, multiprocess

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def multiprocess_mode() -> bool:
    return bool(os.environ.get(MULTIPROC_ENV))


@dataclass
class CollectorMetrics:
    registry: CollectorRegistry
    received: Counter
    stored: Counter
    duplicates: Counter
    rejected: Counter
    latency: Histogram
    batch_size: Histogram
    inflight: Gauge

    @classmethod
    def create(cls) -> CollectorMetrics:
        registry = CollectorRegistry()
        return cls(
            registry=registry,
            received=Counter("flusso_logs_received", "Workflow log records received", ["endpoint"], registry=registry),
            stored=Counter("flusso_logs_stored", "Workflow logs newly stored", ["client_id"], registry=registry),
            duplicates=Counter("flusso_logs_duplicate", "Workflow logs already stored (idempotent replay)",
                               ["client_id"], registry=registry),
            rejected=Counter("flusso_logs_rejected", "Records or requests refused", ["reason", "client_id"],
                             registry=registry),
            latency=Histogram("flusso_request_seconds", "Ingest request latency", ["endpoint", "status"],
                              registry=registry,
                              buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)),
            batch_size=Histogram("flusso_batch_records", "Log records per ingest request", registry=registry,
                                 buckets=(1, 2, 5, 10, 25, 50, 100, 250, 512, 1024, 4096)),
            inflight=Gauge("flusso_requests_in_flight", "Ingest requests being processed", registry=registry,
                           multiprocess_mode="livesum"),
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
