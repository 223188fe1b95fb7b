"""The calibration panel: the agent's confidence against reviewers' verdicts, and the ROC AUC of
its hallucination risk against the `hallucination` flag (read side of store.reviews).

Whole UTC days of the range are read from the daily rollups of migration 0021
(review_calibration_daily, review_risk_daily; whole calendar months of the risk histogram from
review_risk_monthly), which triggers on ticket_review_state keep exact
in the transaction of every review, erasure and retention; the partial days at either edge of
the range are aggregated live from ticket_review_state. The figures are those of the live
computation over the whole range: counts and the AUC exactly (the risk histogram keys on the
stored risk value, so ties are the live query's ties); the confidence sums are float8 sums, added
in another order (which a live parallel plan does not fix either). Like every read, each
statement filters on the tenant AND runs in a scoped transaction. SQL + psycopg only.
"""
from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta
from typing import Any

from psycopg import sql
from psycopg_pool import AsyncConnectionPool

from collector_api.store.core.db import Scope, scoped_transaction
from collector_api.store.core.scope import narrowed, tenant_condition, tenant_of
from collector_api.store.logs.stats import utc_midnight

MIN_CALIBRATION_N = 30
BUCKETS = 10

# Rolled-up days, then the reviewed tickets of the live edges, in the rollup's shape.
_EDGES = "(executed_at >= %s AND executed_at < %s OR executed_at >= %s AND executed_at < %s)"
_BUCKET_ROWS = ("SELECT client_id, bucket, n, conf_sum, correct FROM review_calibration_daily"
                " WHERE {tenant} AND day >= %s AND day < %s"
                " UNION ALL SELECT client_id, LEAST(floor(overall_confidence * 10), 9)::int, 1, overall_confidence,"
                " CASE WHEN verdict = 'correct' THEN 1 ELSE 0 END FROM ticket_review_state"
                " WHERE {tenant} AND " + _EDGES + " AND overall_confidence BETWEEN 0 AND 1")
# Confidence in ten buckets [0, 0.1) ... [0.9, 1.0]; per client and (client_id NULL) overall.
_BUCKETS = ("SELECT client_id, bucket, sum(n)::bigint AS n, sum(conf_sum) AS conf_sum,"
            " sum(correct)::bigint AS correct FROM (" + _BUCKET_ROWS + ") t"
            " GROUP BY GROUPING SETS ((client_id, bucket), (bucket))")
_RISK_ROWS = ("SELECT client_id, risk, flagged AS pos, unflagged AS neg FROM review_risk_monthly"
              " WHERE {tenant} AND month >= %s AND month < %s"
              " UNION ALL SELECT client_id, risk, flagged, unflagged FROM review_risk_daily"
              " WHERE {tenant} AND (day >= %s AND day < %s OR day >= %s AND day < %s)"
              " UNION ALL SELECT client_id, hallucination_risk,"
              " CASE WHEN 'hallucination' = ANY (flags) THEN 1 ELSE 0 END,"
              " CASE WHEN NOT 'hallucination' = ANY (flags) THEN 1 ELSE 0 END FROM ticket_review_state"
              " WHERE {tenant} AND " + _EDGES + " AND hallucination_risk IS NOT NULL"
              " AND hallucination_risk = hallucination_risk")  # not NaN
# ROC AUC as the Mann-Whitney statistic: for each distinct risk value, the flagged tickets at
# that value beat every unflagged ticket below it and tie (1/2) with those at it.
# Per client and value first (one pass over the rows), the overall histogram from those groups.
_AUC = ("WITH c AS (SELECT client_id, risk, sum(pos)::bigint AS pos, sum(neg)::bigint AS neg"
        "  FROM (" + _RISK_ROWS + ") h GROUP BY client_id, risk),"
        " g AS (SELECT client_id, risk, pos, neg FROM c UNION ALL"
        "  SELECT NULL, risk, sum(pos)::bigint, sum(neg)::bigint FROM c GROUP BY risk),"
        " w AS (SELECT client_id, pos, neg, COALESCE(sum(neg) OVER (PARTITION BY client_id ORDER BY risk"
        "  ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) AS below FROM g)"
        " SELECT client_id, sum(pos)::bigint AS pos, sum(neg)::bigint AS neg,"
        " sum(pos * (below + 0.5 * neg))::float8 AS wins FROM w GROUP BY client_id")


def split_range(start: datetime, end: datetime) -> tuple[date, date, list[datetime]]:
    """(first, stop, edges) of [start, end): the whole UTC days [first, stop) read from the rollups
    (first == stop: none) and the two live ranges around them [e0, e1), [e2, e3)."""
    first = start.astimezone(UTC).date()
    if utc_midnight(first) < start:
        first += timedelta(days=1)
    stop = end.astimezone(UTC).date()
    if stop <= first:
        return first, first, [start, end, end, end]
    return first, stop, [start, utc_midnight(first), utc_midnight(stop), end]


def whole_months(first: date, stop: date) -> tuple[date, date]:
    """[m0, m1): the calendar months (their first days) wholly inside the days [first, stop);
    m0 == m1 when there is none. The days [first, m0) and [m1, stop) stay daily."""
    m0 = first if first.day == 1 else (first.replace(day=28) + timedelta(days=4)).replace(day=1)
    m1 = stop.replace(day=1)
    return (m0, m1) if m0 < m1 else (stop, stop)


async def get_calibration(pool: AsyncConnectionPool, scope: Scope, start: datetime, end: datetime,
                          client_id: str | None = None, *, use_rollup: bool = True) -> dict[str, Any]:
    """Calibration of the agent's confidence against reviewers' verdicts for tickets executed in
    [start, end), overall and (for a provider over all tenants) per client. See `calibration_of`.
    `use_rollup=False` aggregates the whole range live (the reference the rollups must equal)."""
    first, stop, edges = split_range(start, end) if use_rollup else (start.date(), start.date(), [start, end, end, end])
    m0, m1 = whole_months(first, stop)
    tenant, t = tenant_condition(scope, client_id)

    async def read(query: str, params: list) -> list[dict]:
        async with scoped_transaction(pool, narrowed(scope, client_id)) as conn:
            return await (await conn.execute(sql.SQL(query).format(tenant=tenant), params)).fetchall()

    # Side by side, each in its own pooled connection (two cores: ~the slower one, not the sum).
    buckets, aucs = await asyncio.gather(read(_BUCKETS, [*t, first, stop, *t, *edges]),
                                         read(_AUC, [*t, m0, m1, *t, first, m0, m1, stop, *t, *edges]))
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
