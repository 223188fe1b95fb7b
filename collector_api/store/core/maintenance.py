"""The job registry: every piece of background work the server does, as store.jobs.Job objects.

Add a job here (with its lock id in store.locks) and every server process's maintenance loop
(flusso_obs/server.py) runs it, leader-elected, once per interval across replicas.
"""
from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from psycopg_pool import AsyncConnectionPool

from collector_api.store.core import locks
from collector_api.store.core.jobs import Job
from collector_api.store.logs.backfill import backfill_derived
from collector_api.store.logs.partitions import maintain_partitions
from collector_api.store.logs.rollups import refresh_rollups
from collector_api.store.traces.staging import staging_upkeep

PARTITION_INTERVAL_S = 3600.0
DERIVED_BACKFILL_INTERVAL_S = 30.0  # issue 19; an idle run is one index probe
STAGING_UPKEEP_INTERVAL_S = 60.0


def maintenance_jobs(dsn: str, pool: AsyncConnectionPool, *, rollup_interval_s: float,
                     partition_interval_s: float = PARTITION_INTERVAL_S,
                     flush_counters: Callable[[], Awaitable[object]] | None = None,
                     counters_interval_s: float = 5.0,
                     trace_assembly: Callable[[], Awaitable[object]] | None = None, trace_interval_s: float = 1.0,
                     staging_retention_s: float = 1200.0,
                     alert_tick: Callable[[], Awaitable[object]] | None = None,
                     alert_interval_s: float = 60.0) -> list[Job]:
    """Partition upkeep (months ahead; rows out of DEFAULT), and the overview's rollup refresh
    unless `rollup_interval_s` is 0 (the overview then aggregates raw logs on every request).

    `flush_counters` (collector_api.telemetry.counters.flush_counters bound to this process's counters)
    becomes the per-process `ingest-counters` job: every process flushes its own memory.

    `alert_tick` (collector_api.alerts.job.alert_tick, bound) becomes the leader-elected
    `alert-evaluate` job every `alert_interval_s` (issue 18)."""
    jobs = [Job("partition-upkeep", partition_interval_s, locks.JOB_PARTITION_UPKEEP,
                lambda: asyncio.to_thread(maintain_partitions, dsn))]
    if rollup_interval_s > 0:
        jobs.append(Job("rollup-refresh", rollup_interval_s, locks.JOB_ROLLUP_REFRESH,
                        lambda: refresh_rollups(pool)))
    if flush_counters is not None:
        jobs.append(Job("ingest-counters", counters_interval_s, 0, flush_counters, per_process=True))
    jobs.append(Job("derived-backfill", DERIVED_BACKFILL_INTERVAL_S, locks.JOB_DERIVED_BACKFILL,
                    lambda: backfill_derived(pool)))
    # /v1/traces: staged traces -> workflow logs (collector_api.traces.assembly), and the staging
    # table's hourly partitions (created ahead, dropped past the traces' max age + late window).
    if trace_assembly is not None:
        jobs.append(Job("trace-assembly", trace_interval_s, locks.JOB_TRACE_ASSEMBLY, trace_assembly))
        jobs.append(Job("staging-upkeep", STAGING_UPKEEP_INTERVAL_S, locks.JOB_STAGING_UPKEEP,
                        lambda: asyncio.to_thread(staging_upkeep, dsn, staging_retention_s)))
    if alert_tick is not None and alert_interval_s > 0:
        jobs.append(Job("alert-evaluate", alert_interval_s, locks.JOB_ALERTS, alert_tick))
    return jobs
