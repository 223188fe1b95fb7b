"""Reading reviews: a ticket's history, the review queue, calibration, the export.

The read side of store.reviews; like store.reads, every statement filters on the tenant AND
runs in a scoped transaction (row-level security). SQL + psycopg only.
"""
from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from psycopg import sql
from psycopg_pool import AsyncConnectionPool

from collector_api.store.core.db import Scope, scoped_transaction
from collector_api.store.core.scope import narrowed, tenant_condition, tenant_of
from collector_api.store.logs.reads import LIST_COLUMNS, TicketFilters, ticket_conditions

MIN_CALIBRATION_N = 30
BUCKETS = 10
_REVIEW_COLUMNS = ("id, client_id, log_id, executed_at, verdict, flags, note, corrected_draft, author, author_kind,"
                   " author_role, created_at")


async def list_reviews(pool: AsyncConnectionPool, scope: Scope, log_id: int) -> list[dict]:
    """Every review of the ticket `log_id` visible in `scope`, newest first (the first is its verdict)."""
    tenant, params = tenant_condition(scope)
    query = sql.SQL("SELECT {columns} FROM ticket_reviews WHERE log_id = %s AND {tenant} ORDER BY id DESC").format(
        columns=sql.SQL(_REVIEW_COLUMNS), tenant=tenant)
    async with scoped_transaction(pool, scope) as conn:
        return await (await conn.execute(query, [log_id, *params])).fetchall()


# FAILED and PARTIAL first, then lowest confidence, then highest hallucination risk, newest
# first: exactly the expressions of workflow_logs_review_queue_idx (migration 0011).
QUEUE_ORDER = ("(status = 'SUCCESS'), COALESCE(overall_confidence, -1), COALESCE(hallucination_risk, -1) DESC,"
               " executed_at DESC, id DESC")
# OFFSET 0 keeps the NOT EXISTS a per-row probe of ticket_review_state's key: flattened into an anti
# join, the planner sized the policy-filtered review table at 0.5 % of its rows (row-level security's
# tenant test is unknown at plan time) and chose a nested loop over all of it: 2.2 s at 22,000 logs
# instead of 37 ms. A probe per row walked is what the queue's index walk wants at any size.
_UNREVIEWED = sql.SQL("NOT EXISTS (SELECT 1 FROM ticket_review_state s WHERE s.log_id = workflow_logs.id OFFSET 0)")


async def review_queue(pool: AsyncConnectionPool, scope: Scope, filters: TicketFilters, *,
                       limit: int = 50) -> list[dict]:
    """Tickets without a review that match `filters`, in queue order (at most `limit`)."""
    clauses, params = ticket_conditions(scope, filters)
    where = sql.SQL(" AND ").join([*clauses, _UNREVIEWED])
    # Keys first along the queue index, then the rows (as store.reads.list_tickets does).
    query = sql.SQL("WITH page AS (SELECT id, executed_at FROM workflow_logs WHERE {where} ORDER BY {order} LIMIT %s)"
                    " SELECT {columns} FROM workflow_logs JOIN page USING (id, executed_at)"
                    " WHERE {where} ORDER BY {order}").format(where=where, order=sql.SQL(QUEUE_ORDER),
                                                              columns=sql.SQL(LIST_COLUMNS))
    async with scoped_transaction(pool, narrowed(scope, filters.client_id)) as conn:
        return await (await conn.execute(query, [*params, limit, *params])).fetchall()


def _calibration_where(scope: Scope, client_id: str | None, start: datetime, end: datetime
                       ) -> tuple[sql.Composable, list[Any]]:
    tenant, params = tenant_condition(scope, client_id)
    return (sql.SQL("{tenant} AND executed_at >= %s AND executed_at < %s").format(tenant=tenant),
            [*params, start, end])


# Confidence in ten buckets [0, 0.1) ... [0.9, 1.0]; per client and (client_id NULL) overall.
_BUCKETS = ("SELECT client_id, bucket, count(*) AS n, sum(overall_confidence) AS conf_sum,"
            " count(*) FILTER (WHERE verdict = 'correct') AS correct FROM ("
            "  SELECT client_id, LEAST(floor(overall_confidence * 10), 9)::int AS bucket, overall_confidence, verdict"
            "  FROM ticket_review_state WHERE {where} AND overall_confidence BETWEEN 0 AND 1) t"
            " GROUP BY GROUPING SETS ((client_id, bucket), (bucket))")
# ROC AUC as the Mann-Whitney statistic: for each distinct risk value, the flagged tickets at
# that value beat every unflagged ticket below it and tie (1/2) with those at it.
_AUC = ("WITH g AS (SELECT client_id, hallucination_risk AS risk,"
        "  count(*) FILTER (WHERE 'hallucination' = ANY (flags)) AS pos,"
        "  count(*) FILTER (WHERE NOT 'hallucination' = ANY (flags)) AS neg"
        "  FROM ticket_review_state WHERE {where} AND hallucination_risk IS NOT NULL"
        "  AND hallucination_risk = hallucination_risk"  # not NaN
        "  GROUP BY GROUPING SETS ((client_id, risk), (risk))),"
        " w AS (SELECT client_id, pos, neg, COALESCE(sum(neg) OVER (PARTITION BY client_id ORDER BY risk"
        "  ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) AS below FROM g)"
        " SELECT client_id, sum(pos)::bigint AS pos, sum(neg)::bigint AS neg,"
        " sum(pos * (below + 0.5 * neg))::float8 AS wins FROM w GROUP BY client_id")


async def get_calibration(pool: AsyncConnectionPool, scope: Scope, start: datetime, end: datetime,
                          client_id: str | None = None) -> dict[str, Any]:
    """Calibration of the agent's confidence against reviewers' verdicts for tickets executed in
    [start, end), overall and (for a provider over all tenants) per client. See `calibration_of`."""
    where, params = _calibration_where(scope, client_id, start, end)

    async def read(query: str) -> list[dict]:
        async with scoped_transaction(pool, narrowed(scope, client_id)) as conn:
            return await (await conn.execute(sql.SQL(query).format(where=where), params)).fetchall()

    # Side by side, each in its own pooled connection (two cores: ~the slower one, not the sum).
    buckets, aucs = await asyncio.gather(read(_BUCKETS), read(_AUC))
    by_client: dict[str | None, tuple[list, dict | None]] = {}
    for r in buckets:
        by_client.setdefault(r["client_id"], ([], None))[0].append(r)
    for r in aucs:
        by_client[r["client_id"]] = (by_client.get(r["client_id"], ([], None))[0], r)
    overall = calibration_of(*by_client.get(None, ([], None)))
    if scope.all_tenants and not tenant_of(scope, client_id):
        overall["per_client"] = [{"client_id": c, **calibration_of(*v)} for c, v in sorted(
            by_client.items(), key=lambda kv: kv[0] or "") if c is not None]
    return overall


def calibration_of(buckets: list[dict], auc: dict | None) -> dict[str, Any]:
    """`n` (reviewed tickets with a confidence in [0, 1]), `buckets` (ten: bounds, n, mean
    confidence, accuracy = share judged `correct`), `ece` = sum over buckets of n_b / n *
    |accuracy_b - mean confidence_b|, and `hallucination_auc` (ROC AUC of hallucination_risk
    for tickets flagged `hallucination` against the rest). Below MIN_CALIBRATION_N reviewed
    tickets, `enough` is False and buckets, ece and auc are left out (None, [])."""
    rows = {r["bucket"]: r for r in buckets}
    n = sum(r["n"] for r in buckets)
    out: dict[str, Any] = {"n": n, "enough": n >= MIN_CALIBRATION_N, "min_n": MIN_CALIBRATION_N,
                           "buckets": [], "ece": None, "hallucination_auc": None,
                           "hallucination_flagged": auc["pos"] if auc else 0}
    if not out["enough"]:
        out["message"] = (f"fewer than {MIN_CALIBRATION_N} reviewed tickets in this range ({n}):"
                          " not enough to judge calibration")
        return out
    ece = 0.0
    for b in range(BUCKETS):
        r = rows.get(b)
        count = r["n"] if r else 0
        entry = {"lower": b / 10, "upper": (b + 1) / 10, "n": count, "mean_confidence": None, "accuracy": None}
        if count:
            entry["mean_confidence"] = r["conf_sum"] / count
            entry["accuracy"] = r["correct"] / count
            ece += count / n * abs(entry["accuracy"] - entry["mean_confidence"])
        out["buckets"].append(entry)
    out["ece"] = ece
    if auc and auc["pos"] and auc["neg"]:
        out["hallucination_auc"] = auc["wins"] / (auc["pos"] * auc["neg"])
    out["message"] = None
    return out


_EXPORT = ("SELECT s.verdict, s.flags, s.corrected_draft, s.review_count, s.last_review_at, l.*"
           " FROM ticket_review_state s JOIN (SELECT {columns}, log_data #> '{{trace,output,draft}}' AS draft,"
           "  log_data #> '{{trace,ticket}}' AS ticket FROM workflow_logs WHERE {where}) l"
           "  ON l.id = s.log_id AND l.executed_at = s.executed_at"
           " WHERE (%s::timestamptz IS NULL OR (s.executed_at, s.log_id) < (%s, %s))"
           " ORDER BY s.executed_at DESC, s.log_id DESC LIMIT %s")


async def iter_reviewed_tickets(pool: AsyncConnectionPool, scope: Scope, filters: TicketFilters, *,
                                batch: int = 1000) -> AsyncIterator[dict]:
    """Every reviewed ticket matching `filters` once, newest first: its row, stored draft and
    ticket section, latest verdict, flags, corrected draft and review count; in keyset batches."""
    clauses, params = ticket_conditions(scope, filters)
    query = sql.SQL(_EXPORT).format(columns=sql.SQL(LIST_COLUMNS), where=sql.SQL(" AND ").join(clauses))
    after: tuple[Any, Any] = (None, None)
    while True:
        async with scoped_transaction(pool, narrowed(scope, filters.client_id)) as conn:
            rows = await (await conn.execute(query, [*params, after[0], *after, batch])).fetchall()
        for row in rows:
            yield row
        if len(rows) < batch:
            return
        after = (rows[-1]["executed_at"], rows[-1]["id"])
