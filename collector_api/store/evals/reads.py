"""Reading evaluation scores (migration 0019): per log, per ticket, over time, against human
verdicts. Every statement filters on the tenant AND (for the pool-based reads) runs in an
RLS-scoped transaction. SQL + psycopg only.

"Latest version" means, per (log, evaluator), the score of the highest version stored.
The overview's series and judge calibration read whole days from the rollups of migration 0024.
"""
from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql
from psycopg_pool import AsyncConnectionPool

from collector_api.store.core.db import Scope, scoped_transaction
from collector_api.store.core.scope import narrowed, tenant_condition
from collector_api.store.reviews.calibration import split_range, whole_months

_EDGES = "(executed_at >= %s AND executed_at < %s OR executed_at >= %s AND executed_at < %s)"
_LATEST = ("SELECT DISTINCT ON (log_id, evaluator) log_id, evaluator, version, score, reason, cost_usd, created_at"
           " FROM evaluation_scores WHERE log_id = ANY(%s) AND (%s::text IS NULL OR client_id = %s)"
           " ORDER BY log_id, evaluator, version DESC")


async def scores_by_log(conn: psycopg.AsyncConnection, client_id: str | None,
                        log_ids: Sequence[int]) -> dict[int, dict[str, float]]:
    """log id -> {evaluator name: score of its latest version} for `log_ids` (of tenant
    `client_id`, or of every tenant the connection's scope may read when None). Logs without a
    score are absent. Runs on the caller's connection (and its transaction scope)."""
    if not log_ids:
        return {}
    rows = await (await conn.execute(_LATEST, (list(log_ids), client_id, client_id))).fetchall()
    out: dict[int, dict[str, float]] = {}
    for r in rows:
        out.setdefault(r["log_id"], {})[r["evaluator"]] = r["score"]
    return out


async def evaluator_names(pool: AsyncConnectionPool, scope: Scope, client_id: str | None = None) -> list[str]:
    """Names of the evaluators that may score `scope`'s logs (for all tenants, or its own)."""
    tenant = client_id if scope.all_tenants else scope.client_id
    async with scoped_transaction(pool, narrowed(scope, client_id)) as conn:
        rows = await (await conn.execute(
            "SELECT name FROM evaluators WHERE %s::text IS NULL OR client_id IS NULL OR client_id = %s ORDER BY name",
            (tenant, tenant))).fetchall()
    return [r["name"] for r in rows]


async def deleted_names(conn: psycopg.AsyncConnection, names: list[str]) -> set[str]:
    """Which of `names` are deleted evaluators (on the caller's scoped connection)."""
    if not names:
        return set()
    rows = await (await conn.execute("SELECT name FROM evaluators WHERE name = ANY(%s) AND deleted_at IS NOT NULL",
                                     (names,))).fetchall()
    return {r["name"] for r in rows}


async def ticket_scores(pool: AsyncConnectionPool, scope: Scope, log_id: int) -> list[dict]:
    """The latest score of each evaluator for one log (name, version, score, reason, cost), and
    each evaluator's latest non-score outcome when it has no score (with its attempts and the
    time of the next one, for an `error` still to be retried); `deleted` marks the scores of a
    deleted evaluator (kept, under its name)."""
    tenant, params = tenant_condition(scope)
    query = sql.SQL(
        "SELECT DISTINCT ON (evaluator) evaluator, version, score, reason, cost_usd, created_at, NULL AS outcome,"
        " NULL::int AS attempts, NULL::timestamptz AS next_attempt_at"
        " FROM evaluation_scores WHERE log_id = %s AND {tenant} ORDER BY evaluator, version DESC").format(
        tenant=tenant)
    others = sql.SQL(
        "SELECT DISTINCT ON (evaluator) evaluator, version, NULL::float8 AS score, detail AS reason,"
        " 0::float8 AS cost_usd, created_at, outcome, attempts, next_attempt_at FROM evaluation_outcomes"
        " WHERE log_id = %s AND {tenant} ORDER BY evaluator, version DESC").format(tenant=tenant)
    async with scoped_transaction(pool, scope) as conn:
        scored = await (await conn.execute(query, [log_id, *params])).fetchall()
        rest = await (await conn.execute(others, [log_id, *params])).fetchall()
        gone = await deleted_names(conn, sorted({r["evaluator"] for r in (*scored, *rest)}))
    names = {r["evaluator"] for r in scored}
    rows = sorted([*scored, *(r for r in rest if r["evaluator"] not in names)], key=lambda r: r["evaluator"])
    return [{**r, "deleted": r["evaluator"] in gone} for r in rows]


# Whole UTC days of a range come from the rollups of migration 0024 (kept exact by triggers in the
# transaction of every score and review), the partial days at either edge live from the tables.
_SERIES = ("SELECT evaluator, day, sum(n)::bigint AS n, sum(score_sum) AS score_sum FROM ("
           " SELECT evaluator, day, n, score_sum FROM evaluation_score_daily WHERE {tenant} AND day >= %s AND day < %s"
           " UNION ALL SELECT evaluator, (executed_at AT TIME ZONE 'UTC')::date, 1, score FROM evaluation_scores"
           " WHERE {tenant} AND " + _EDGES + ") t GROUP BY 1, 2 ORDER BY 1, 2")
# A reviewed ticket's latest-version score per evaluator, under its verdict, for the live edges:
# from the reviews of the edges (a tenth of the logs or so, by their time index), each one's
# scores by one probe of the log index (OFFSET 0 keeps it a probe: as a join, the planner hashed
# every review of the table, 110 ms at 1 M reviews).
_LIVE_VERDICTS = ("SELECT DISTINCT ON (e.log_id, e.evaluator) e.evaluator, e.score,"
                  " CASE WHEN r.verdict = 'correct' THEN 1 ELSE 0 END AS correct,"
                  " CASE WHEN r.verdict = 'correct' THEN 0 ELSE 1 END AS other"
                  " FROM ticket_review_state r CROSS JOIN LATERAL (SELECT e.log_id, e.evaluator, e.version, e.score"
                  " FROM evaluation_scores e WHERE e.log_id = r.log_id AND e.client_id = r.client_id OFFSET 0) e"
                  " WHERE {r_tenant} AND " + _EDGES.replace("executed_at", "r.executed_at")
                  + " ORDER BY e.log_id, e.evaluator, e.version DESC")
# Per evaluator and score value: how many reviewed tickets had it, judged `correct` or not.
_HISTOGRAM = ("SELECT evaluator, score, sum(correct)::bigint AS correct, sum(other)::bigint AS other FROM ("
              " SELECT evaluator, score, correct, other FROM evaluation_verdict_monthly"
              "  WHERE {tenant} AND month >= %s AND month < %s"
              " UNION ALL SELECT evaluator, score, correct, other FROM evaluation_verdict_daily"
              "  WHERE {tenant} AND (day >= %s AND day < %s OR day >= %s AND day < %s)"
              " UNION ALL (" + _LIVE_VERDICTS + ")) h GROUP BY 1, 2 ORDER BY 1, 2")


async def score_series(pool: AsyncConnectionPool, scope: Scope, start: datetime, end: datetime,
                       client_id: str | None = None, *, use_rollup: bool = True) -> dict[str, list[dict]]:
    """evaluator -> [{day, mean, n}] of scores (all versions) of logs executed in [start, end).
    `use_rollup=False` aggregates the whole range live (the reference the rollup must equal)."""
    first, stop, edges = split_range(start, end) if use_rollup else (start.date(), start.date(), [start, end, end, end])
    tenant, params = tenant_condition(scope, client_id)
    query = sql.SQL(_SERIES).format(tenant=tenant)
    async with scoped_transaction(pool, narrowed(scope, client_id)) as conn:
        rows = await (await conn.execute(query, [*params, first, stop, *params, *edges])).fetchall()
    out: dict[str, list[dict]] = {}
    for r in rows:
        out.setdefault(r["evaluator"], []).append(
            {"day": r["day"].isoformat(), "mean": r["score_sum"] / r["n"], "n": r["n"]})
    return out


async def verdict_histogram(pool: AsyncConnectionPool, scope: Scope, start: datetime, end: datetime,
                            client_id: str | None = None, *, use_rollup: bool = True) -> list[dict]:
    """(evaluator, score, correct, other) of the reviewed logs executed in [start, end) with a
    score: per evaluator and exact score value of its latest version, how many of those tickets
    reviewers judged `correct` and how many otherwise (whole months and days from the rollups,
    the edges live; `use_rollup=False`: the whole range live)."""
    first, stop, edges = split_range(start, end) if use_rollup else (start.date(), start.date(), [start, end, end, end])
    m0, m1 = whole_months(first, stop)
    tenant, params = tenant_condition(scope, client_id)
    query = sql.SQL(_HISTOGRAM).format(tenant=tenant, r_tenant=sql.SQL("r.") + tenant if params else tenant)
    async with scoped_transaction(pool, narrowed(scope, client_id)) as conn:
        return await (await conn.execute(
            query, [*params, m0, m1, *params, first, m0, m1, stop, *params, *edges])).fetchall()


async def evaluator_averages(conn: psycopg.AsyncConnection, names: Sequence[str], since: datetime,
                             min_n: int = 1) -> dict[tuple[str, str], dict[str, Any]]:
    """(evaluator, tenant) -> {mean, n} of latest-version scores of logs executed since `since`, for the alert
    metric `eval:<name>` (the caller's connection: the alert job's, as the owner)."""
    if not names:
        return {}
    rows = await (await conn.execute(
        "SELECT evaluator, client_id, avg(score) AS mean, count(*) AS n FROM (SELECT DISTINCT ON (client_id, log_id,"
        " evaluator) evaluator, client_id, score FROM evaluation_scores WHERE evaluator = ANY(%s) AND executed_at >= %s"
        " ORDER BY client_id, log_id, evaluator, version DESC) latest GROUP BY 1, 2 HAVING count(*) >= %s",
        (list(names), since, min_n))).fetchall()
    return {(r["evaluator"], r["client_id"]): {"mean": r["mean"], "n": r["n"]} for r in rows}
