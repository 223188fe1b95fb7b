"""The job registry: every piece of background work a server process does, as store Job objects.

`server_jobs` lists them, each with its callable, interval and leader lock (the ids live in
collector_api.store.core.locks, so no two uses collide). Add a job here and every server
process's maintenance loop (collector_api.store.core.jobs, started by flusso_obs/server.py) runs
it, leader-elected, once per interval across replicas; a per-process job runs in every process.
"""
from __future__ import annotations

from collections.abc import Awaitable, Callable

from psycopg_pool import AsyncConnectionPool

from collector_api.alerts.job import MAX_DUE_DELIVERIES, SEND_CONCURRENCY, SEND_GRACE_S, AlertConfig, alert_tick
from collector_api.alerts.targets import parse_allow_list
from collector_api.contract.derived import derive_rows, excerpt_rows
from collector_api.contract.sessions import session_keys_of
from collector_api.evals.job import EvalConfig, EvaluateJob, RetryPolicy
from collector_api.evals.judge import JudgeConfig, check_judge_url
from collector_api.store.alerts.rollups import refresh_alert_rollups
from collector_api.store.core import locks
from collector_api.store.core.jobs import InThread, Job
from collector_api.store.erasure.retention import run_retention
from collector_api.store.erasure.run import resume_stalled
from collector_api.store.logs.backfill import backfill_derived
from collector_api.store.logs.excerpt_backfill import backfill_excerpts
from collector_api.store.logs.partitions import maintain_partitions
from collector_api.store.logs.rollups import refresh_rollups
from collector_api.store.logs.session_backfill import backfill_sessions
from collector_api.store.traces.staging import staging_upkeep
from collector_api.telemetry.counters import IngestCounters, flush_counters
from collector_api.traces.assembly import AssemblyConfig, assemble_due
from collector_api.traces.routes import TracesRuntime
from config.server import ServerSettings, reveal

PARTITION_INTERVAL_S = 3600.0
DERIVED_BACKFILL_INTERVAL_S = 30.0  # an idle run is one index probe
STAGING_UPKEEP_INTERVAL_S = 60.0
MAX_ASSEMBLY_PASSES = 20
# Deadlines: a run still going after its job's deadline is cancelled (a thread: abandoned) and
# recorded as failed, so one stuck job never holds up the others (collector_api.store.core.jobs).
PARTITION_DEADLINE_S = 600.0  # DDL that may wait for locks
ROLLUP_DEADLINE_S = 300.0
COUNTERS_DEADLINE_S = 60.0
BACKFILL_DEADLINE_S = 300.0
ASSEMBLY_DEADLINE_S = 120.0
STAGING_DEADLINE_S = 600.0
ERASURE_RESUME_INTERVAL_S = 300.0  # an idle run is one index probe
RETENTION_DEADLINE_S = 900.0  # bounded batches (store.erasure.retention); what is left, the next run does
ALERT_EVALUATE_S = 60.0  # evaluation's share of the alert job's deadline; the sends add theirs
# Alerts off: the alert rollups' queue (migration 0030, one row per new log) is still consumed, else
# it would grow with every log; the rollups stay current for when alerts are turned on.
ALERT_ROLLUPS_OFF_INTERVAL_S = 300.0
EVAL_BUDGET_S = 60.0  # the evaluation job takes no new batch after this long in one run


def server_jobs(settings: ServerSettings, dsn: str, pool: AsyncConnectionPool, counters: IngestCounters,
                traces: TracesRuntime) -> list[Job]:
    """The jobs of one server process, from its settings.

    Always: partition upkeep (months ahead; rows out of DEFAULT), the ingest counters' flush (per
    process: each flushes its own memory), the derived-figures backfill (logs stored before
    migration 0013), the session-key backfill (logs stored before migration 0017) and the
    draft-excerpt backfill (logs stored before migration 0028). The
    overview's rollup refresh unless FLUSSO_ROLLUP_REFRESH_SECONDS is 0 (the
    overview then aggregates raw logs on every request); trace assembly and the staging table's
    upkeep when /v1/traces stages spans (FLUSSO_PII_HASH_KEY); the evaluation job, tenants' own retention and alert
    evaluation unless their interval is 0 (alerts off: their rollups' queue is still consumed,
    `alert-rollups`). The evaluation job runs in a child process of its own
    (EvaluateJob, InProcess: its CPU and judge calls stay off this process's GIL and event loop),
    started only while an evaluator is enabled."""
    jobs = [Job("partition-upkeep", PARTITION_INTERVAL_S, locks.JOB_PARTITION_UPKEEP,
                InThread(maintain_partitions, dsn), deadline_s=PARTITION_DEADLINE_S)]
    if settings.flusso_rollup_refresh_seconds > 0:
        jobs.append(Job("rollup-refresh", settings.flusso_rollup_refresh_seconds, locks.JOB_ROLLUP_REFRESH,
                        lambda: refresh_rollups(pool, recontact_days=settings.flusso_recontact_days),
                        deadline_s=ROLLUP_DEADLINE_S))
    jobs.append(Job("ingest-counters", settings.flusso_ingest_counters_flush_seconds, 0,
                    lambda: flush_counters(counters, pool), per_process=True, deadline_s=COUNTERS_DEADLINE_S))
    jobs.append(Job("derived-backfill", DERIVED_BACKFILL_INTERVAL_S, locks.JOB_DERIVED_BACKFILL,
                    lambda: backfill_derived(pool, derive_rows), deadline_s=BACKFILL_DEADLINE_S))
    jobs.append(Job("session-backfill", DERIVED_BACKFILL_INTERVAL_S, locks.JOB_SESSION_BACKFILL,
                    lambda: backfill_sessions(pool, session_keys_of), deadline_s=BACKFILL_DEADLINE_S))
    jobs.append(Job("excerpt-backfill", DERIVED_BACKFILL_INTERVAL_S, locks.JOB_EXCERPT_BACKFILL,
                    lambda: backfill_excerpts(pool, excerpt_rows), deadline_s=BACKFILL_DEADLINE_S))
    alerts = alert_job(settings, pool)  # built even when alerts are off: a bad FLUSSO_WEBHOOK_ALLOW stops the start
    assembly = trace_assembly(pool, settings, traces)
    if assembly is not None:  # staged traces -> workflow logs, and the staging table's hourly partitions
        retention_s = settings.flusso_trace_max_age_seconds + settings.flusso_trace_late_window_seconds
        jobs.append(Job("trace-assembly", settings.flusso_trace_assembly_seconds, locks.JOB_TRACE_ASSEMBLY,
                        assembly, deadline_s=ASSEMBLY_DEADLINE_S))
        jobs.append(Job("staging-upkeep", STAGING_UPKEEP_INTERVAL_S, locks.JOB_STAGING_UPKEEP,
                        InThread(staging_upkeep, dsn, retention_s), deadline_s=STAGING_DEADLINE_S))
    evaluation = eval_config(settings)  # built even when off: a bad FLUSSO_JUDGE_URL stops the start
    if settings.flusso_eval_interval_s > 0:
        jobs.append(Job("evaluate", settings.flusso_eval_interval_s, locks.JOB_EVALUATE,
                        EvaluateJob(pool, dsn, evaluation), deadline_s=eval_deadline_s(evaluation)))
    # Erasures whose caller crashed and never retried are finished (exact counts, receipt ready).
    jobs.append(Job("erasure-resume", ERASURE_RESUME_INTERVAL_S, locks.JOB_ERASURE_RESUME,
                    lambda: resume_stalled(pool), deadline_s=RETENTION_DEADLINE_S))
    if settings.flusso_retention_interval_s > 0:  # tenants' own retention (tenants set --retention-days)
        jobs.append(Job("tenant-retention", settings.flusso_retention_interval_s, locks.JOB_TENANT_RETENTION,
                        lambda: run_retention(pool), deadline_s=RETENTION_DEADLINE_S))
    if settings.flusso_alert_interval_s > 0:
        jobs.append(Job("alert-evaluate", settings.flusso_alert_interval_s, locks.JOB_ALERTS, alerts,
                        deadline_s=alert_deadline_s(settings)))
    else:
        jobs.append(Job("alert-rollups", ALERT_ROLLUPS_OFF_INTERVAL_S, locks.JOB_ALERTS,
                        lambda: refresh_alert_rollups(pool), deadline_s=ROLLUP_DEADLINE_S))
    return jobs


def judge_config(settings: ServerSettings) -> JudgeConfig | None:
    """The judge's settings, or None without FLUSSO_JUDGE_URL; raises JudgeConfigError on a bad URL."""
    if not (settings.flusso_judge_url or "").strip():
        return None
    return JudgeConfig(url=check_judge_url(settings.flusso_judge_url or ""), model=settings.flusso_judge_model,
                       api_key=reveal(settings.flusso_judge_api_key), timeout_s=settings.flusso_judge_timeout_s,
                       retries=settings.flusso_judge_retries, concurrency=settings.flusso_judge_concurrency,
                       usd_per_input_mtok=settings.flusso_judge_usd_per_input_mtok,
                       usd_per_output_mtok=settings.flusso_judge_usd_per_output_mtok)


def eval_config(settings: ServerSettings) -> EvalConfig:
    return EvalConfig(judge=judge_config(settings), budget_s=EVAL_BUDGET_S,
                      retry=RetryPolicy(settings.flusso_eval_retry_attempts, settings.flusso_eval_retry_backoff_s))


def eval_deadline_s(config: EvalConfig) -> float:
    """The time budget, then one batch of retried errors and one more batch of new logs whose
    judge calls may each take every retry."""
    if config.judge is None:
        return config.budget_s + 120.0
    j = config.judge
    per_call = (j.retries + 1) * j.timeout_s + sum(j.backoff_base_s * 2 ** i * 1.5 for i in range(j.retries))
    rounds = -(-config.batch // j.concurrency)
    return config.budget_s + 120.0 + 2 * rounds * per_call


def alert_deadline_s(settings: ServerSettings) -> float:
    """Evaluation, then every due delivery: SEND_CONCURRENCY at once, each within FLUSSO_WEBHOOK_TIMEOUT_S."""
    rounds = -(-MAX_DUE_DELIVERIES // SEND_CONCURRENCY)
    return ALERT_EVALUATE_S + rounds * (settings.flusso_webhook_timeout_s + SEND_GRACE_S)


def alert_job(settings: ServerSettings, pool: AsyncConnectionPool) -> Callable[[], Awaitable[object]]:
    """The alert job's body; FLUSSO_WEBHOOK_ALLOW is parsed here, so a bad entry stops the start.
    Its webhooks go out on a bounded executor of their own (AlertConfig.senders)."""
    config = AlertConfig(master_key=reveal(settings.flusso_alert_secret_key) or "",
                         allow=parse_allow_list(settings.flusso_webhook_allow), public_url=settings.flusso_public_url,
                         timeout_s=settings.flusso_webhook_timeout_s)
    return lambda: alert_tick(pool, config)


def trace_assembly(pool: AsyncConnectionPool, settings: ServerSettings,
                   runtime: TracesRuntime) -> Callable[[], Awaitable[None]] | None:
    """The trace-assembly job's work (None without FLUSSO_PII_HASH_KEY: nothing is staged)."""
    if runtime.secret is None:
        return None
    cfg = AssemblyConfig(runtime.secret, runtime.prices, quiet_s=settings.flusso_trace_quiet_seconds,
                         max_age_s=settings.flusso_trace_max_age_seconds)

    async def run() -> None:
        for _ in range(MAX_ASSEMBLY_PASSES):  # a backlog is worked off in batches, in one run
            report = await assemble_due(pool, cfg)
            for outcome, n in report.counts.items():
                runtime.traces.labels(outcome).inc(n)
            if sum(report.counts.values()) < cfg.batch:
                return

    return run
