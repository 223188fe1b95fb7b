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
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from collector_api.store.core.job_status import JobBoard
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


class JobLagCollector(Collector):
    """`flusso_job_lag_seconds{job}` (now - the job's last success) and `flusso_job_late{job}`
    (1 when that is more than 3 intervals), computed at scrape time from the process's JobBoard,
    so a job stuck in a run shows its lag growing. In multiprocess mode the answering worker's
    board is reported: a leader job's figures come from job_runs and agree in every worker."""

    def __init__(self, board: JobBoard):
        self.board = board

    def collect(self):
        lag = GaugeMetricFamily("flusso_job_lag_seconds", "Seconds since the background job last succeeded",
                                labels=["job"])
        late = GaugeMetricFamily("flusso_job_late", "1 when the job's last success is more than 3 intervals ago",
                                 labels=["job"])
        for job in self.board.snapshot():
            lag.add_metric([job.name], job.lag_s)
            late.add_metric([job.name], 1.0 if job.late else 0.0)
        yield lag
        yield late


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
    jobs: JobBoard  # the background jobs' lag, written by the job runner

    @classmethod
    def create(cls, jobs: JobBoard | None = None) -> CollectorMetrics:
        registry = CollectorRegistry()
        health = IngestCounters()
        jobs = jobs if jobs is not None else JobBoard()
        registry.register(JobLagCollector(jobs))
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
            jobs=jobs,
        )

    def exposition(self) -> bytes:
        """The Prometheus text of this process, or of every worker process in multiprocess mode."""
        if not multiprocess_mode():
            return generate_latest(self.registry)
        combined = CollectorRegistry()
        multiprocess.MultiProcessCollector(combined)
        combined.register(JobLagCollector(self.jobs))
        return generate_latest(combined)

    @staticmethod
    def process_exiting() -> None:
        """In multiprocess mode, drop this process's live gauges (its counters stay counted)."""
        if multiprocess_mode():
            multiprocess.mark_process_dead(os.getpid())
