"""The evaluation job's reads of new logs and its writes (migration 0019), SQL only.

New logs are found through `workflow_logs.created_at` (indexed) from a durable keyset cursor
(created_at, id): a log's created_at is its transaction's start but it is visible only at
commit, so the batch never reads past the start of the oldest transaction still open
(pg_stat_activity, `_UPPER`); logs of one big transaction share a created_at
and are walked by id. A log seen twice is not scored twice (the scores' and outcomes' unique
keys, and `done_keys` before any judge is asked).
Scores are only ever inserted (append-only); every row is keyed by (client_id, log_id). An
`error` outcome (the judge endpoint failed) is the one row that changes: a later attempt
replaces it (attempts + 1, the next attempt after a doubled wait, none past RetryPolicy.attempts),
and a score for its key deletes it (migration 0022).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime

from psycopg_pool import AsyncConnectionPool

from collector_api.store.core.db import owner_connection

# Only what an evaluator reads of a log (not its spans): smaller rows, less to decode.
LOG_FIELDS = ("workflow_logs.id, client_id, executed_at, status, created_at,"
              " log_data #>> '{identification,workflow_name}' AS workflow,"
              " jsonb_build_object('outcome', log_data -> 'outcome', 'trace', jsonb_build_object("
              "  'output', log_data #> '{trace,output}', 'evidence', log_data #> '{trace,evidence}',"
              "  'retrieval', log_data #> '{trace,retrieval}', 'ticket', log_data #> '{trace,ticket}')) AS doc")


@dataclass(frozen=True)
class Batch:
    logs: list[dict]
    cursor: tuple[datetime, int] | None  # the last (created_at, id) read: the cursor once recorded


@dataclass(frozen=True)
class ScoreRow:
    client_id: str
    log_id: int
    executed_at: datetime
    evaluator: str
    version: int
    score: float
    reason: str | None
    cost_usd: float


@dataclass(frozen=True)
class OutcomeRow:
    client_id: str
    log_id: int
    executed_at: datetime
    evaluator: str
    version: int
    outcome: str  # not_applicable | invalid | error | capped
    detail: str | None


@dataclass(frozen=True)
class RetryPolicy:
    """Attempts of an `error` evaluation in all (the first included), and the wait before the
    first retry, doubled after each failed one (FLUSSO_EVAL_RETRY_ATTEMPTS, _BACKOFF_S)."""

    attempts: int = 4
    backoff_s: float = 300.0


@dataclass(frozen=True)
class DueRetry:
    client_id: str
    log_id: int
    executed_at: datetime
    evaluator: str
    version: int


@dataclass(frozen=True)
class SpendRow:
    evaluator_id: int
    cost_usd: float
    calls: int
    invalid: int
    errors: int
    capped: int


# No later than the start of the oldest transaction still open (sessions of the application's role),
# read in the same statement: a transaction starting after its snapshot has a later created_at.
_UPPER = ("(SELECT least(now(), (SELECT min(xact_start) FROM pg_stat_activity WHERE datname = current_database()"
          " AND pid <> pg_backend_pid() AND xact_start IS NOT NULL)))")


async def next_batch(pool: AsyncConnectionPool, limit: int) -> Batch:
    """Up to `limit` logs stored after the cursor and before the oldest open transaction, in
    (created_at, id) order; one statement.

    The page's keys first, along the created_at index, then the documents of those rows only. A
    young database's partitions have no statistics yet: planned as one statement, the documents of
    every stored log were built and sorted for each batch (2-4 s per 500 logs after a few
    hundred thousand logs, growing with the table), which the index walk never does."""
    async with owner_connection(pool) as conn, conn.transaction():
        await conn.execute("SET LOCAL enable_seqscan = off")
        logs = await (await conn.execute(
            "WITH s AS MATERIALIZED (SELECT watermark, last_id FROM evaluation_state WHERE id = 1),"
            " k AS MATERIALIZED (SELECT id, executed_at FROM workflow_logs"
            "  WHERE created_at >= coalesce((SELECT watermark FROM s), '-infinity')"
            "  AND (created_at, id) > (coalesce((SELECT watermark FROM s), '-infinity'),"
            f" coalesce((SELECT last_id FROM s), 0)) AND created_at < {_UPPER}"
            "  ORDER BY created_at, id LIMIT %s)"
            f" SELECT {LOG_FIELDS} FROM k JOIN workflow_logs USING (id, executed_at)"
            " ORDER BY workflow_logs.created_at, workflow_logs.id", (limit,))).fetchall()
    return Batch(logs, (logs[-1]["created_at"], logs[-1]["id"]) if logs else None)


async def logs_between(pool: AsyncConnectionPool, since: datetime, until: datetime, client_id: str | None,
                       after: tuple[datetime, int] | None, limit: int) -> list[dict]:
    """Logs executed in [since, until) (of one tenant or all), in (executed_at, id) order after `after`."""
    async with owner_connection(pool) as conn:
        return await (await conn.execute(
            f"SELECT {LOG_FIELDS} FROM workflow_logs WHERE executed_at >= %s AND executed_at < %s"
            " AND (%s::text IS NULL OR client_id = %s) AND (%s::timestamptz IS NULL OR (executed_at, id) > (%s, %s))"
            " ORDER BY executed_at, id LIMIT %s",
            (since, until, client_id, client_id, after[0] if after else None, *(after or (None, None)),
             limit))).fetchall()


async def done_keys(pool: AsyncConnectionPool, log_ids: Sequence[int]) -> set[tuple[str, int, str, int]]:
    """(client_id, log_id, evaluator, version) already scored or ended otherwise, for `log_ids`
    (outcomes `error` excepted: those may be tried again)."""
    if not log_ids:
        return set()
    async with owner_connection(pool) as conn:
        rows = await (await conn.execute(
            "SELECT client_id, log_id, evaluator, version FROM evaluation_scores WHERE log_id = ANY(%s)"
            " UNION ALL SELECT client_id, log_id, evaluator, version FROM evaluation_outcomes"
            " WHERE log_id = ANY(%s) AND outcome <> 'error'", (list(log_ids), list(log_ids)))).fetchall()
    return {(r["client_id"], r["log_id"], r["evaluator"], r["version"]) for r in rows}


async def month_spend(pool: AsyncConnectionPool, month: date) -> dict[int, float]:
    """evaluator id -> USD spent in `month` (its first day)."""
    async with owner_connection(pool) as conn:
        rows = await (await conn.execute("SELECT evaluator_id, cost_usd FROM evaluator_spend WHERE month = %s",
                                         (month,))).fetchall()
    return {r["evaluator_id"]: r["cost_usd"] for r in rows}


async def record_results(pool: AsyncConnectionPool, scores: Sequence[ScoreRow], outcomes: Sequence[OutcomeRow],
                         spend: Sequence[SpendRow], month: date, cursor: tuple[datetime, int] | None,
                         retry: RetryPolicy = RetryPolicy()) -> int:
    """Insert scores and outcomes (a key already present is left as it is, but for an `error`,
    which a new attempt replaces: see the module's docstring), add the spend, move the cursor, in
    one transaction; the number of scores inserted.

    Committed without waiting for the WAL flush (synchronous_commit off, this transaction only):
    the job's commits then never queue beside ingest's, whose acknowledgements must wait for it.
    A crash may lose the last few hundred milliseconds of results, cursor included, in one piece:
    the job evaluates those logs again (a judge call may be paid twice, never a score stored twice)."""
    async with owner_connection(pool) as conn, conn.transaction():
        await conn.execute("SET LOCAL synchronous_commit = off")
        inserted = 0
        if scores:
            cur = await conn.execute(
                "INSERT INTO evaluation_scores (client_id, log_id, executed_at, evaluator, version, score, reason,"
                " cost_usd) SELECT * FROM unnest(%s::text[], %s::bigint[], %s::timestamptz[], %s::text[],"
                " %s::int[], %s::float8[], %s::text[], %s::float8[]) ON CONFLICT DO NOTHING",
                ([s.client_id for s in scores], [s.log_id for s in scores], [s.executed_at for s in scores],
                 [s.evaluator for s in scores], [s.version for s in scores], [s.score for s in scores],
                 [s.reason for s in scores], [s.cost_usd for s in scores]))
            inserted = cur.rowcount
            await conn.execute(  # an error retried into a score is resolved
                "DELETE FROM evaluation_outcomes o USING evaluation_scores s WHERE o.log_id = ANY(%s)"
                " AND o.outcome = 'error' AND s.log_id = o.log_id AND s.client_id = o.client_id"
                " AND s.evaluator = o.evaluator AND s.version = o.version", (sorted({s.log_id for s in scores}),))
        if outcomes:
            await _record_outcomes(conn, outcomes, retry)
        for s in spend:
            await conn.execute(
                "INSERT INTO evaluator_spend AS s (evaluator_id, month, cost_usd, calls, invalid, errors, capped)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (evaluator_id, month) DO UPDATE SET"
                " cost_usd = s.cost_usd + excluded.cost_usd, calls = s.calls + excluded.calls,"
                " invalid = s.invalid + excluded.invalid, errors = s.errors + excluded.errors,"
                " capped = s.capped + excluded.capped",
                (s.evaluator_id, month, s.cost_usd, s.calls, s.invalid, s.errors, s.capped))
        if cursor is not None:  # forward only (a rerun passes None)
            await conn.execute("UPDATE evaluation_state SET watermark = %s, last_id = %s WHERE id = 1"
                               " AND (watermark IS NULL OR (watermark, last_id) < (%s, %s))", (*cursor, *cursor))
        return inserted


async def _record_outcomes(conn, outcomes: Sequence[OutcomeRow], retry: RetryPolicy) -> None:
    await conn.execute(
        "INSERT INTO evaluation_outcomes AS o (client_id, log_id, executed_at, evaluator, version, outcome, detail,"
        " attempts, next_attempt_at) SELECT u.c, u.l, u.e, u.ev, u.v, u.oc, u.d, 1, CASE WHEN u.oc = 'error'"
        " AND %(max)s > 1 THEN now() + make_interval(secs => %(wait)s) END FROM unnest(%(c)s::text[],"
        " %(l)s::bigint[], %(e)s::timestamptz[], %(ev)s::text[], %(v)s::int[], %(oc)s::text[], %(d)s::text[])"
        " AS u(c, l, e, ev, v, oc, d) ON CONFLICT (client_id, log_id, evaluator, version) DO UPDATE SET"
        " outcome = excluded.outcome, detail = excluded.detail, attempts = o.attempts + 1,"
        " next_attempt_at = CASE WHEN excluded.outcome = 'error' AND o.attempts + 1 < %(max)s"
        " THEN now() + make_interval(secs => %(wait)s * 2 ^ o.attempts) END WHERE o.outcome = 'error'",
        {"max": retry.attempts, "wait": float(retry.backoff_s), "c": [o.client_id for o in outcomes],
         "l": [o.log_id for o in outcomes], "e": [o.executed_at for o in outcomes],
         "ev": [o.evaluator for o in outcomes], "v": [o.version for o in outcomes],
         "oc": [o.outcome for o in outcomes], "d": [o.detail for o in outcomes]})


async def due_retries(pool: AsyncConnectionPool, limit: int) -> list[DueRetry]:
    """`error` outcomes whose next attempt is due, of evaluators still enabled at that version,
    the most overdue first."""
    async with owner_connection(pool) as conn:
        rows = await (await conn.execute(
            "SELECT o.client_id, o.log_id, o.executed_at, o.evaluator, o.version FROM evaluation_outcomes o"
            " JOIN evaluators e ON e.name = o.evaluator AND e.version = o.version AND e.enabled"
            " AND e.deleted_at IS NULL WHERE o.outcome = 'error' AND o.next_attempt_at <= now()"
            " ORDER BY o.next_attempt_at LIMIT %s", (limit,))).fetchall()
    return [DueRetry(**r) for r in rows]


async def logs_of(pool: AsyncConnectionPool, keys: Sequence[DueRetry]) -> list[dict]:
    """The logs (LOG_FIELDS) of `keys` that still exist."""
    async with owner_connection(pool) as conn:
        return await (await conn.execute(
            f"SELECT DISTINCT ON (workflow_logs.id) {LOG_FIELDS} FROM workflow_logs JOIN unnest(%s::text[],"
            " %s::bigint[], %s::timestamptz[]) AS k(kc, ki, ke) ON workflow_logs.client_id = k.kc"
            " AND workflow_logs.id = k.ki AND workflow_logs.executed_at = k.ke ORDER BY workflow_logs.id",
            ([k.client_id for k in keys], [k.log_id for k in keys], [k.executed_at for k in keys]))).fetchall()


async def stop_retrying(pool: AsyncConnectionPool, keys: Sequence[DueRetry]) -> None:
    """No further attempt for `keys` (their log is gone)."""
    if not keys:
        return
    async with owner_connection(pool) as conn, conn.transaction():
        await conn.execute(
            "UPDATE evaluation_outcomes o SET next_attempt_at = NULL FROM unnest(%s::text[], %s::bigint[],"
            " %s::text[], %s::int[]) AS k(c, l, ev, v) WHERE o.outcome = 'error' AND o.client_id = k.c"
            " AND o.log_id = k.l AND o.evaluator = k.ev AND o.version = k.v",
            ([k.client_id for k in keys], [k.log_id for k in keys], [k.evaluator for k in keys],
             [k.version for k in keys]))
