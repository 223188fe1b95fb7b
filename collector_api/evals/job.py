"""The evaluation job (flusso_obs.jobs: `evaluate`) and the rerun command's work.

A tick reads the enabled evaluators, then works off new logs in batches from the durable
cursor (collector_api.store.evals.writes), each batch's scores, outcomes, spend and cursor
stored in one transaction, until no new log is left, MAX_BATCHES_PER_TICK batches are done or
the tick's time budget is spent (the rest waits for the next tick; the job's deadline is the
backstop). It never touches the ingest path: it reads committed logs only.

A tick first retries judge evaluations that ended in `error` and are due again (`retry_errors`:
at most one batch, the most overdue first; RetryPolicy bounds the attempts and doubles the wait),
idempotent per (log, evaluator version) like the first attempt.

The server runs a tick in a child process of its own (`EvaluateJob`: `evaluate_tick` in
store.core.job_process.InProcess, started only while an evaluator is enabled): the evaluators'
CPU and the judge's HTTP calls never take the collector's GIL or event loop. The child keeps one
small pool across ticks.
"""
from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

from psycopg_pool import AsyncConnectionPool

from collector_api.evals.judge import JudgeConfig, new_client
from collector_api.evals.run import BatchResult, run_deterministic, run_judges
from collector_api.evals.spec import Evaluator, evaluator_from_row
from collector_api.store.core.db import create_pool
from collector_api.store.core.job_process import InProcess, nice_backend
from collector_api.store.evals.evaluators import evaluator_rows
from collector_api.store.evals.writes import (
    RetryPolicy,
    done_keys,
    due_retries,
    logs_between,
    logs_of,
    month_spend,
    next_batch,
    record_results,
    stop_retrying,
)

logger = logging.getLogger(__name__)

BATCH = 500
MAX_BATCHES_PER_TICK = 40
CHILD_POOL_SIZE = 2  # the job's own connections in its child process (one batch at a time)
_POOLS: dict[str, AsyncConnectionPool] = {}  # the child's pools, by DSN, opened on its persistent loop


@dataclass(frozen=True)
class EvalConfig:
    judge: JudgeConfig | None = None
    batch: int = BATCH
    budget_s: float = 60.0  # stop taking new batches after this long
    retry: RetryPolicy = RetryPolicy()  # of `error` outcomes (FLUSSO_EVAL_RETRY_ATTEMPTS, _BACKOFF_S)


@dataclass
class TickReport:
    logs: int = 0
    scores: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    retried: int = 0  # `error` outcomes tried again


def month_of(now: datetime) -> date:
    return now.astimezone(UTC).date().replace(day=1)


async def _store(pool: AsyncConnectionPool, result: BatchResult, month: date, cursor, report: TickReport,
                 retry: RetryPolicy) -> None:
    report.scores += await record_results(pool, result.scores, result.outcomes,
                                          [s.row() for s in result.spend.values()], month, cursor, retry)
    for o in result.outcomes:
        report.outcomes[o.outcome] = report.outcomes.get(o.outcome, 0) + 1


async def _evaluate_and_store(pool: AsyncConnectionPool, config: EvalConfig, evaluators: list[Evaluator],
                              logs: list[dict], cursor, report: TickReport, client) -> None:
    """The deterministic scores are stored first (a slow judge does not hold them back), then the
    judge's with the cursor: a crash in between repeats only what is not stored yet."""
    month = month_of(datetime.now(UTC))
    # What is scored already: needed before paying a judge; deterministic scores of a log seen
    # again are dropped by the unique key anyway (one query less per batch without judges).
    done = await done_keys(pool, [log["id"] for log in logs]) if any(e.is_judge for e in evaluators) else set()
    result, judged = await run_deterministic(logs, evaluators, done)
    if judged and config.judge is not None and client is not None:
        await _store(pool, result, month, None, report, config.retry)
        spent = await month_spend(pool, month)
        result = await run_judges(judged, judge=config.judge, client=client, spent=spent)
    await _store(pool, result, month, cursor, report, config.retry)
    report.logs += len(logs)


async def evaluate_new_logs(pool: AsyncConnectionPool, config: EvalConfig) -> TickReport:
    """One tick of the evaluation job (see the module's docstring)."""
    report = TickReport()
    evaluators = [evaluator_from_row(r) for r in await evaluator_rows(pool, enabled_only=True)]
    if not evaluators:
        return report
    started = time.monotonic()
    async with new_client(config.judge) if config.judge else _no_client() as client:
        if client is not None:
            await retry_errors(pool, config, evaluators, report, client)
        for _ in range(MAX_BATCHES_PER_TICK):
            batch = await next_batch(pool, config.batch)
            if batch.logs:
                await _evaluate_and_store(pool, config, evaluators, batch.logs, batch.cursor, report, client)
            if len(batch.logs) < config.batch or time.monotonic() - started > config.budget_s:
                break
    if report.logs or report.retried:
        logger.info("evaluated %d log(s), retried %d error(s): %d score(s), outcomes %s", report.logs,
                    report.retried, report.scores, report.outcomes)
    return report


async def retry_errors(pool: AsyncConnectionPool, config: EvalConfig, evaluators: list[Evaluator],
                       report: TickReport, client) -> None:
    """Ask the judge again for up to one batch of `error` outcomes now due, each with its own
    evaluator (at the version that failed); a key whose log is gone is not retried again."""
    due = await due_retries(pool, config.batch)
    if not due:
        return
    logs = {(log["client_id"], log["id"]): log for log in await logs_of(pool, due)}
    await stop_retrying(pool, [k for k in due if (k.client_id, k.log_id) not in logs])
    by_name, new_logs = {e.name: e for e in evaluators}, report.logs
    for name in sorted({k.evaluator for k in due}):
        ev = by_name.get(name)
        keys = [k for k in due if k.evaluator == name and (k.client_id, k.log_id) in logs]
        if ev is None or not keys:
            continue
        await _evaluate_and_store(pool, config, [ev], [logs[(k.client_id, k.log_id)] for k in keys], None,
                                  report, client)
        report.retried += len(keys)
    report.logs = new_logs  # the retried logs are not new ones


async def evaluate_tick(dsn: str, config: EvalConfig) -> TickReport:
    """One tick in the job's child process: `evaluate_new_logs` on this process's pool (opened at
    the first tick, kept for the next ones; reopened if it was closed), whose PostgreSQL backends
    share the child's niceness where the server is local (job_process.nice_backend)."""
    pool = _POOLS.get(dsn)
    if pool is None or pool.closed:
        pool = _POOLS[dsn] = create_pool(dsn, max_size=CHILD_POOL_SIZE, configure=nice_backend)
        await pool.open()
    return await evaluate_new_logs(pool, config)


class EvaluateJob:
    """The server's `evaluate` job: a tick in its child process (`InProcess(evaluate_tick, ...)`),
    but only while an evaluator is enabled: with none (the default install) no child is started,
    and a child started before is stopped (its memory and connections are freed)."""

    def __init__(self, pool: AsyncConnectionPool, dsn: str, config: EvalConfig):
        self.pool, self.work = pool, InProcess(evaluate_tick, dsn, config)

    @property
    def busy(self) -> bool:
        return self.work.busy

    async def wait(self) -> None:
        await self.work.wait()

    def stop(self) -> None:
        self.work.stop()

    async def __call__(self) -> TickReport:
        if not await evaluator_rows(self.pool, enabled_only=True):
            if self.work.pid is not None:
                await asyncio.to_thread(self.work.stop)
            return TickReport()
        return await self.work()


async def rerun(pool: AsyncConnectionPool, config: EvalConfig, evaluator: Evaluator, since: datetime,
                until: datetime, client_id: str | None = None) -> TickReport:
    """Score every log executed in [since, until) with `evaluator` at its current version (logs
    already scored at that version are skipped; `error` outcomes are tried again)."""
    report = TickReport()
    after = None
    async with new_client(config.judge) if config.judge else _no_client() as client:
        while True:
            logs = await logs_between(pool, since, until, client_id, after, config.batch)
            if logs:
                await _evaluate_and_store(pool, config, [evaluator], logs, None, report, client)
                after = (logs[-1]["executed_at"], logs[-1]["id"])
            if len(logs) < config.batch:
                return report


class _no_client:  # noqa: N801 - used like new_client(...)
    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, *exc: object) -> None:
        return None
