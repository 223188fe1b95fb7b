"""Overview statistics (read side): daily rollups for past days, live aggregation for the rest.

UTC days up to today are summed from `viewer_daily_*rollup` (migration 0002), which the
rollup-refresh job keeps current (`store.rollups`, the only writer: this module never writes).
Days not rolled up yet, later days, and any range not aligned on UTC days are aggregated from
`workflow_logs` directly. The overview is thus at most one refresh interval behind for days
already rolled up. Both paths yield the same per-(tenant, day) shape, merged in Python, so the
numbers agree whichever path ran.
"""
from __future__ import annotations

import logging
from bisect import bisect_right
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from psycopg_pool import AsyncConnectionPool

from collector_api.store.core.db import Scope, scoped_transaction
from collector_api.store.core.scope import TenantCondition, narrowed, tenant_condition, tenant_of

logger = logging.getLogger(__name__)

# Display buckets (upper bounds, seconds) of the execution-time histogram; the last is open.
DURATION_BUCKETS = (1, 2, 5, 10, 20, 30, 60, 120, 300)


def _fine_edges() -> list[float]:
    """Fine histogram edges: every display edge, each interval cut in 20 (<= 5 % wide), then to 1 h."""
    edges = [round(0.05 * i, 4) for i in range(1, 20)]
    for lo, hi in zip(DURATION_BUCKETS, DURATION_BUCKETS[1:], strict=False):
        edges += [round(lo + (hi - lo) * j / 20, 4) for j in range(20)]
    edges += [round(300 * 12 ** (j / 40), 4) for j in range(41)]
    return sorted(set(edges))


FINE_EDGES = _fine_edges()


@dataclass
class Stats:
    start: datetime
    end: datetime
    totals: dict[str, Any]
    per_day: list[dict] = field(default_factory=list)
    duration_histogram: list[dict] = field(default_factory=list)
    node_durations: list[dict] = field(default_factory=list)
    per_client: list[dict] = field(default_factory=list)


def utc_midnight(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def _is_midnight(moment: datetime) -> bool:
    return moment.astimezone(UTC).timetz().replace(tzinfo=None) == time.min


async def split_rolled(conn, start: datetime, end: datetime) -> tuple[tuple[date, date] | None, list[tuple]]:
    """(whole UTC days to read from the rollups, ranges to aggregate live) of [start, end).

    The rollups serve whole UTC days, up to today, up to the first day not rolled up yet (a new
    day, a first start, days the backfill reopened); the rest, and any range not aligned on UTC
    days, is aggregated live. The overview and the usage report split the same way."""
    stop = utc_midnight(datetime.now(UTC).date() + timedelta(days=1))
    if not (_is_midnight(start) and _is_midnight(end)) or start >= stop:
        return None, [(start, end)]
    first, last = start.astimezone(UTC).date(), min(end, stop).astimezone(UTC).date()
    gap = await (await conn.execute(
        "SELECT min(d)::date AS gap FROM generate_series(%s::date, %s::date - 1, interval '1 day') d"
        " WHERE NOT EXISTS (SELECT 1 FROM viewer_rollup_days r WHERE r.day = d::date)", (first, last))).fetchone()
    if gap["gap"] is not None:
        return (first, gap["gap"]), [(utc_midnight(gap["gap"]), end)]
    return (first, last), ([(stop, end)] if end > stop else [])


DAILY_LIVE = (
    "SELECT client_id, (executed_at AT TIME ZONE 'UTC')::date AS day,"
    " count(*) FILTER (WHERE status = 'SUCCESS') AS success,"
    " count(*) FILTER (WHERE status = 'PARTIAL') AS partial,"
    " count(*) FILTER (WHERE status = 'FAILED') AS failed,"
    " COALESCE(sum(overall_confidence), 0) AS conf_sum, count(overall_confidence) AS conf_n,"
    " COALESCE(sum(hallucination_risk), 0) AS risk_sum, count(hallucination_risk) AS risk_n,"
    " COALESCE(sum(execution_time_seconds), 0) AS exec_sum, count(execution_time_seconds) AS exec_n,"
    # Clamped: a tenant's claimed tokens may sum past bigint, and one failing cast stopped the
    # rollup job (one statement for every tenant) for everyone.
    " LEAST(COALESCE(sum(input_tokens), 0), 9223372036854775807)::bigint AS input_tokens,"
    " LEAST(COALESCE(sum(output_tokens), 0), 9223372036854775807)::bigint AS output_tokens,"
    " COALESCE(sum(cost_usd), 0) AS cost_usd, max(executed_at) AS last_ticket_at"
    " FROM workflow_logs WHERE {where} GROUP BY 1, 2"
)
DURATION_LIVE = (
    "SELECT client_id, (executed_at AT TIME ZONE 'UTC')::date AS day,"
    " width_bucket(execution_time_seconds, %s::float8[]) AS bucket, count(*) AS n"
    " FROM workflow_logs WHERE {where} AND execution_time_seconds IS NOT NULL GROUP BY 1, 2, 3"
)
# Per-node durations live in each row's small `node_durations` jsonb ({"node": ms}), not in log_data.
_NODES_FROM = "workflow_logs CROSS JOIN LATERAL jsonb_each(node_durations) AS nd(node, ms)"
NODE_LIVE = (
    "SELECT client_id, (executed_at AT TIME ZONE 'UTC')::date AS day, nd.node, sum(nd.ms::float8) AS ms_sum,"
    " count(*) AS n FROM " + _NODES_FROM + " WHERE {where} AND jsonb_typeof(nd.ms) = 'number' GROUP BY 1, 2, 3"
)


def range_where(tenant: TenantCondition, column: str, first, stop) -> tuple[str, list]:
    """`tenant AND column >= first AND column < stop` as text (the tenant part comes from the
    one scope helper; its only values are parameters)."""
    condition, params = tenant
    return f"{condition.as_string()} AND {column} >= %s AND {column} < %s", [*params, first, stop]


async def _live(conn, tenant: TenantCondition, start, end) -> tuple[list, list, list]:
    where, params = range_where(tenant, "executed_at", start, end)
    daily = await (await conn.execute(DAILY_LIVE.format(where=where), params)).fetchall()
    durations = await (await conn.execute(
        "SELECT width_bucket(execution_time_seconds, %s::float8[]) AS bucket, count(*) AS n FROM workflow_logs"
        f" WHERE {where} AND execution_time_seconds IS NOT NULL GROUP BY 1", [FINE_EDGES] + params)).fetchall()
    nodes = await (await conn.execute(
        "SELECT nd.node, sum(nd.ms::float8) AS ms_sum, count(*) AS n FROM " + _NODES_FROM
        + f" WHERE {where} AND jsonb_typeof(nd.ms) = 'number' GROUP BY 1", params)).fetchall()
    return daily, durations, nodes


async def _rolled(conn, tenant: TenantCondition, first: date, stop: date) -> tuple[list, list, list]:
    where, params = range_where(tenant, "day", first, stop)
    daily = await (await conn.execute(f"SELECT * FROM viewer_daily_rollup WHERE {where}", params)).fetchall()
    durations = await (await conn.execute(
        f"SELECT bucket, sum(n)::bigint AS n FROM viewer_daily_duration_rollup WHERE {where} GROUP BY 1",
        params)).fetchall()
    nodes = await (await conn.execute(
        f"SELECT node, sum(ms_sum) AS ms_sum, sum(n)::bigint AS n FROM viewer_daily_node_rollup WHERE {where}"
        " GROUP BY 1", params)).fetchall()
    return daily, durations, nodes


def histogram_quantile(counts: dict[int, int], q: float) -> float | None:
    """Quantile (percentile_cont semantics) from fine-bucket counts, linear within a bucket."""
    total = sum(counts.values())
    if not total:
        return None
    rank = q * (total - 1)
    seen = 0
    for bucket in sorted(counts):
        n = counts[bucket]
        if seen + n > rank:
            lo = 0.0 if bucket == 0 else FINE_EDGES[bucket - 1]
            hi = FINE_EDGES[bucket] if bucket < len(FINE_EDGES) else lo
            return lo + (hi - lo) * ((rank - seen + 0.5) / n)
        seen += n
    return FINE_EDGES[-1]


def _display_bucket(fine: int) -> int:
    """Index of the display bucket holding fine bucket `fine` (by its lower edge)."""
    lower = 0.0 if fine == 0 else FINE_EDGES[fine - 1]
    return bisect_right(DURATION_BUCKETS, lower)


def _avg(total: float, n: int) -> float | None:
    return total / n if n else None


_SUMS = ("success", "partial", "failed", "conf_sum", "conf_n", "risk_sum", "risk_n", "exec_sum", "exec_n",
         "input_tokens", "output_tokens", "cost_usd")


def _sum_daily(daily: list) -> tuple[dict, dict, dict]:
    """Per-day, per-client and overall sums of the per-(tenant, day) rows."""
    by_day: dict[date, dict] = {}
    by_client: dict[str, dict] = {}
    total = dict.fromkeys(_SUMS, 0)
    for r in daily:
        for target in (by_day.setdefault(r["day"], dict.fromkeys(_SUMS, 0)),
                       by_client.setdefault(r["client_id"], {**dict.fromkeys(_SUMS, 0), "last_ticket_at": None}),
                       total):
            for k in _SUMS:
                target[k] += r[k]
        c = by_client[r["client_id"]]
        if r["last_ticket_at"] and (c["last_ticket_at"] is None or r["last_ticket_at"] > c["last_ticket_at"]):
            c["last_ticket_at"] = r["last_ticket_at"]
    return by_day, by_client, total


def _totals(total: dict, fine: dict[int, int]) -> dict[str, Any]:
    tickets = total["success"] + total["partial"] + total["failed"]
    return {
        "tickets": tickets, "success": total["success"], "partial": total["partial"], "failed": total["failed"],
        "success_rate": total["success"] / tickets if tickets else None,
        "avg_confidence": _avg(total["conf_sum"], total["conf_n"]),
        "avg_hallucination_risk": _avg(total["risk_sum"], total["risk_n"]),
        "avg_execution_time_s": _avg(total["exec_sum"], total["exec_n"]),
        "p95_execution_time_s": histogram_quantile(fine, 0.95),
        "input_tokens": total["input_tokens"], "output_tokens": total["output_tokens"],
        "total_tokens": total["input_tokens"] + total["output_tokens"], "cost_usd": total["cost_usd"],
    }


def _per_day(start: datetime, end: datetime, by_day: dict) -> list[dict]:
    """Every UTC day of [start, end), zeros included."""
    per_day = []
    day = start.astimezone(UTC).date()
    last = (end - timedelta(microseconds=1)).astimezone(UTC).date()
    while day <= last:
        r = by_day.get(day)
        per_day.append({"day": day.isoformat(),
                        "success": r["success"] if r else 0, "partial": r["partial"] if r else 0,
                        "failed": r["failed"] if r else 0,
                        "avg_confidence": _avg(r["conf_sum"], r["conf_n"]) if r else None,
                        "avg_hallucination_risk": _avg(r["risk_sum"], r["risk_n"]) if r else None,
                        "cost_usd": r["cost_usd"] if r else 0.0})
        day += timedelta(days=1)
    return per_day


def _histogram(fine: dict[int, int]) -> list[dict]:
    coarse = [0] * (len(DURATION_BUCKETS) + 1)
    for bucket, n in fine.items():
        coarse[_display_bucket(bucket)] += n
    pairs = zip(DURATION_BUCKETS, DURATION_BUCKETS[1:], strict=False)
    labels = ([f"< {DURATION_BUCKETS[0]} s"] + [f"{lo}–{hi} s" for lo, hi in pairs]
              + [f"≥ {DURATION_BUCKETS[-1]} s"])
    return [{"bucket": label, "tickets": n} for label, n in zip(labels, coarse, strict=False)]


def _node_rows(nodes: list) -> list[dict]:
    node_sum: dict[str, list] = {}
    for r in nodes:
        acc = node_sum.setdefault(r["node"], [0.0, 0])
        acc[0] += r["ms_sum"]
        acc[1] += r["n"]
    return sorted(({"node": k, "avg_ms": v[0] / v[1], "samples": v[1]} for k, v in node_sum.items() if v[1]),
                  key=lambda n: -n["avg_ms"])[:50]


def _per_client(by_client: dict) -> list[dict]:
    per_client = []
    for client_id, c in sorted(by_client.items(), key=lambda kv: -(kv[1]["success"] + kv[1]["partial"]
                                                                     + kv[1]["failed"])):
        n = c["success"] + c["partial"] + c["failed"]
        per_client.append({"client_id": client_id, "tickets": n, "success_rate": c["success"] / n if n else None,
                           "avg_confidence": _avg(c["conf_sum"], c["conf_n"]),
                           "avg_hallucination_risk": _avg(c["risk_sum"], c["risk_n"]),
                           "avg_execution_time_s": _avg(c["exec_sum"], c["exec_n"]),
                           "cost_usd": c["cost_usd"], "last_ticket_at": c["last_ticket_at"]})
    return per_client


def _merge(start: datetime, end: datetime, daily: list, durations: list, nodes: list, with_clients: bool) -> Stats:
    by_day, by_client, total = _sum_daily(daily)
    fine: dict[int, int] = {}
    for r in durations:
        fine[r["bucket"]] = fine.get(r["bucket"], 0) + r["n"]
    return Stats(start, end, _totals(total, fine), _per_day(start, end, by_day), _histogram(fine),
                 _node_rows(nodes), _per_client(by_client) if with_clients else [])


async def get_stats(pool: AsyncConnectionPool, scope: Scope, start: datetime, end: datetime,
                    client_id: str | None = None, *, use_rollups: bool = True) -> Stats:
    """Aggregates over [start, end) for the overview and `/api/v1/stats`.

    Days are UTC calendar days; every day of the range appears in `per_day`, zeros included.
    p95 comes from a fine histogram (buckets <= 5 % wide, interpolated). With `use_rollups`,
    whole days already rolled up are read from the rollups (as fresh as the last
    rollup-refresh job); from the first day not rolled up on, rows are aggregated live.
    """
    tenant = tenant_of(scope, client_id)
    condition = tenant_condition(scope, client_id)
    daily, durations, nodes = [], [], []
    async with scoped_transaction(pool, narrowed(scope, client_id)) as conn:
        rolled, live_ranges = await split_rolled(conn, start, end) if use_rollups else (None, [(start, end)])
        if rolled and rolled[0] < rolled[1]:
            d, h, n = await _rolled(conn, condition, *rolled)
            daily += d
            durations += h
            nodes += n
        for lo, hi in live_ranges:
            d, h, n = await _live(conn, condition, lo, hi)
            daily += d
            durations += h
            nodes += n
    return _merge(start, end, daily, durations, nodes, with_clients=scope.all_tenants and not tenant)
