"""The viewer's read queries. SQL + psycopg only; every query runs in a scoped transaction
(row-level security) AND filters by tenant itself, so either guard alone keeps tenants apart.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from psycopg_pool import AsyncConnectionPool

from .db import Scope, scoped_transaction

logger = logging.getLogger(__name__)

COUNT_CAP = 10_000
STATUSES = ("SUCCESS", "PARTIAL", "FAILED")
SORTS = {
    # name -> (SQL expression, value of a NULL so keyset comparisons stay total)
    "time": ("executed_at", None),
    "confidence": ("COALESCE(overall_confidence, -1)", -1.0),
    "duration": ("COALESCE(execution_time_seconds, -1)", -1.0),
}
# Upper bounds (seconds) of the execution-time histogram's buckets; the last is open.
DURATION_BUCKETS = (1, 2, 5, 10, 20, 30, 60, 120, 300)

LIST_COLUMNS = ("id, client_id, ticket_id, status, executed_at, trace_id, environment, workflow_version,"
                " resolution_status, overall_confidence, hallucination_risk, react_iterations,"
                " execution_time_seconds, input_tokens, output_tokens, cost_usd, complete")


@dataclass(frozen=True)
class TicketFilters:
    """What narrows a ticket list; None means "any". Times are aware datetimes, [start, end)."""

    client_id: str | None = None
    start: datetime | None = None
    end: datetime | None = None
    status: str | None = None
    resolution_status: str | None = None
    environment: str | None = None
    workflow_version: str | None = None
    ticket_id: str | None = None
    min_confidence: float | None = None
    max_confidence: float | None = None
    min_duration_s: float | None = None


@dataclass(frozen=True)
class Cursor:
    """Keyset position: the sort value, executed_at and id of the last row shown."""

    value: Any
    executed_at: datetime
    id: int


@dataclass(frozen=True)
class TicketPage:
    rows: list[dict]
    next_cursor: Cursor | None


@dataclass(frozen=True)
class TicketCount:
    value: int
    capped: bool  # True: at least COUNT_CAP rows match

    def __str__(self) -> str:
        return f"{COUNT_CAP:,}+" if self.capped else f"{self.value:,}"


@dataclass
class Stats:
    start: datetime
    end: datetime
    totals: dict[str, Any]
    per_day: list[dict] = field(default_factory=list)
    duration_histogram: list[dict] = field(default_factory=list)
    node_durations: list[dict] = field(default_factory=list)
    per_client: list[dict] = field(default_factory=list)


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _tenant(scope: Scope, wanted: str | None) -> str | None:
    """The one tenant a statement must filter on, or None for a provider looking at all."""
    if not scope.all_tenants:
        return scope.client_id
    return wanted or scope.client_id


def _where(scope: Scope, filters: TicketFilters) -> tuple[list[str], list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    tenant = _tenant(scope, filters.client_id)
    if not scope.all_tenants and not tenant:
        clauses.append("false")
    if tenant:
        clauses.append("client_id = %s")
        params.append(tenant)
    simple = (("executed_at >= %s", filters.start), ("executed_at < %s", filters.end),
              ("status = %s", filters.status), ("resolution_status = %s", filters.resolution_status),
              ("environment = %s", filters.environment), ("workflow_version = %s", filters.workflow_version),
              ("overall_confidence >= %s", filters.min_confidence),
              ("overall_confidence <= %s", filters.max_confidence),
              ("execution_time_seconds >= %s", filters.min_duration_s))
    for clause, value in simple:
        if value is not None:
            clauses.append(clause)
            params.append(value)
    if filters.ticket_id:
        clauses.append("ticket_id LIKE %s")
        params.append(_escape_like(filters.ticket_id) + "%")
    return clauses, params


def _scope_for(scope: Scope, filters: TicketFilters) -> Scope:
    if scope.all_tenants and filters.client_id:
        return Scope.provider(filters.client_id)
    return scope


async def list_tickets(pool: AsyncConnectionPool, scope: Scope, filters: TicketFilters, *, sort: str = "time",
                       descending: bool = True, limit: int = 50, after: Cursor | None = None) -> TicketPage:
    """One page of matching tickets (without their documents), newest/highest first by default.

    Keyset pagination: pass the returned `next_cursor` as `after` for the next page; it is None
    on the last page. Ties on the sort value are broken by (executed_at, id).
    """
    if sort not in SORTS:
        raise ValueError(f"unknown sort {sort!r}")
    expr, _ = SORTS[sort]
    clauses, params = _where(scope, filters)
    op = "<" if descending else ">"
    direction = "DESC" if descending else "ASC"
    if after is not None:
        if sort == "time":
            clauses.append(f"(executed_at, id) {op} (%s, %s)")
            params += [after.executed_at, after.id]
        else:
            clauses.append(f"({expr}, executed_at, id) {op} (%s, %s, %s)")
            params += [after.value, after.executed_at, after.id]
    order = (f"executed_at {direction}, id {direction}" if sort == "time"
             else f"{expr} {direction}, executed_at {direction}, id {direction}")
    where = " AND ".join(clauses) or "true"
    query = f"SELECT {LIST_COLUMNS} FROM workflow_logs WHERE {where} ORDER BY {order} LIMIT %s"
    params.append(limit + 1)
    async with scoped_transaction(pool, _scope_for(scope, filters)) as conn:
        rows = await (await conn.execute(query, params)).fetchall()
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        last = rows[-1]
        value = last["executed_at"] if sort == "time" else _sort_value(last, sort)
        next_cursor = Cursor(value, last["executed_at"], last["id"])
    return TicketPage(rows, next_cursor)


def _sort_value(row: dict, sort: str) -> float:
    column = "overall_confidence" if sort == "confidence" else "execution_time_seconds"
    value = row[column]
    return SORTS[sort][1] if value is None else value


async def count_tickets(pool: AsyncConnectionPool, scope: Scope, filters: TicketFilters) -> TicketCount:
    """Exact count up to COUNT_CAP; beyond it `capped=True` (counting further costs a full scan)."""
    clauses, params = _where(scope, filters)
    where = " AND ".join(clauses) or "true"
    query = f"SELECT count(*) AS n FROM (SELECT 1 FROM workflow_logs WHERE {where} LIMIT %s) s"
    params.append(COUNT_CAP + 1)
    async with scoped_transaction(pool, _scope_for(scope, filters)) as conn:
        row = await (await conn.execute(query, params)).fetchone()
    n = row["n"]
    return TicketCount(min(n, COUNT_CAP), n > COUNT_CAP)


async def iter_ticket_rows(pool: AsyncConnectionPool, scope: Scope, filters: TicketFilters, *,
                           max_rows: int = 100_000, batch: int = 2_000):
    """Matching rows (without documents) newest first, fetched in keyset batches, at most `max_rows`."""
    after, sent = None, 0
    while sent < max_rows:
        page = await list_tickets(pool, scope, filters, limit=min(batch, max_rows - sent), after=after)
        for row in page.rows:
            yield row
        sent += len(page.rows)
        if page.next_cursor is None:
            return
        after = page.next_cursor


async def get_ticket(pool: AsyncConnectionPool, scope: Scope, log_id: int) -> dict | None:
    """The stored row with its document (`log_data`), or None when absent OR another tenant's."""
    clauses, params = ["id = %s"], [log_id]
    if not scope.all_tenants:
        clauses.append("client_id = %s")
        params.append(scope.client_id or "")
    query = f"SELECT {LIST_COLUMNS}, log_data FROM workflow_logs WHERE {' AND '.join(clauses)} LIMIT 1"
    async with scoped_transaction(pool, scope) as conn:
        return await (await conn.execute(query, params)).fetchone()


async def list_filter_values(pool: AsyncConnectionPool, scope: Scope, since: datetime) -> dict[str, list[str]]:
    """Distinct environments, workflow versions and resolution statuses seen since `since` (for menus)."""
    clauses, params = _where(scope, TicketFilters(start=since))
    where = " AND ".join(clauses)
    result = {}
    async with scoped_transaction(pool, scope) as conn:
        for column in ("environment", "workflow_version", "resolution_status"):
            # A loose index scan would be faster at scale; a bounded sample keeps this cheap.
            rows = await (await conn.execute(
                f"SELECT DISTINCT {column} AS v FROM (SELECT {column} FROM workflow_logs WHERE {where}"
                f" ORDER BY executed_at DESC LIMIT 20000) s WHERE {column} IS NOT NULL ORDER BY 1 LIMIT 100",
                params)).fetchall()
            result[column] = [r["v"] for r in rows]
    return result


async def get_stats(pool: AsyncConnectionPool, scope: Scope, start: datetime, end: datetime,
                    client_id: str | None = None) -> Stats:
    """Aggregates over [start, end) for the overview and `/api/v1/stats`.

    Days are UTC calendar days; every day of the range appears in `per_day`, zeros included.
    """
    filters = TicketFilters(client_id=client_id, start=start, end=end)
    clauses, params = _where(scope, filters)
    where = " AND ".join(clauses)
    scope = _scope_for(scope, filters)
    async with scoped_transaction(pool, scope) as conn:
        totals = await (await conn.execute(
            "SELECT count(*) AS tickets,"
            " count(*) FILTER (WHERE status = 'SUCCESS') AS success,"
            " count(*) FILTER (WHERE status = 'PARTIAL') AS partial,"
            " count(*) FILTER (WHERE status = 'FAILED') AS failed,"
            " avg(overall_confidence) AS avg_confidence, avg(hallucination_risk) AS avg_hallucination_risk,"
            " avg(execution_time_seconds) AS avg_execution_time_s,"
            " percentile_cont(0.95) WITHIN GROUP (ORDER BY execution_time_seconds) AS p95_execution_time_s,"
            " COALESCE(sum(input_tokens), 0)::bigint AS input_tokens, COALESCE(sum(output_tokens), 0)::bigint AS output_tokens,"
            " COALESCE(sum(cost_usd), 0) AS cost_usd"
            f" FROM workflow_logs WHERE {where}", params)).fetchone()
        totals = dict(totals)
        totals["success_rate"] = totals["success"] / totals["tickets"] if totals["tickets"] else None
        totals["total_tokens"] = totals["input_tokens"] + totals["output_tokens"]
        day_rows = await (await conn.execute(
            "SELECT (executed_at AT TIME ZONE 'UTC')::date AS day,"
            " count(*) FILTER (WHERE status = 'SUCCESS') AS success,"
            " count(*) FILTER (WHERE status = 'PARTIAL') AS partial,"
            " count(*) FILTER (WHERE status = 'FAILED') AS failed,"
            " avg(overall_confidence) AS avg_confidence, avg(hallucination_risk) AS avg_hallucination_risk,"
            " COALESCE(sum(cost_usd), 0) AS cost_usd"
            f" FROM workflow_logs WHERE {where} GROUP BY 1", params)).fetchall()
        bounds = list(DURATION_BUCKETS)
        hist_rows = await (await conn.execute(
            "SELECT width_bucket(execution_time_seconds, %s::float8[]) AS b, count(*) AS n"
            f" FROM workflow_logs WHERE {where} AND execution_time_seconds IS NOT NULL GROUP BY 1",
            [bounds] + params)).fetchall()
        node_rows = await (await conn.execute(
            "SELECT node, avg(duration_ms) AS avg_ms, count(*) AS n FROM workflow_node_durations"
            f" WHERE {where} GROUP BY node ORDER BY avg(duration_ms) DESC LIMIT 50", params)).fetchall()
        per_client = []
        if scope.all_tenants and not client_id:
            per_client = [dict(r) for r in await (await conn.execute(
                "SELECT client_id, count(*) AS tickets,"
                " count(*) FILTER (WHERE status = 'SUCCESS')::float8 / count(*) AS success_rate,"
                " avg(overall_confidence) AS avg_confidence, avg(hallucination_risk) AS avg_hallucination_risk,"
                " avg(execution_time_seconds) AS avg_execution_time_s, COALESCE(sum(cost_usd), 0) AS cost_usd,"
                " max(executed_at) AS last_ticket_at"
                f" FROM workflow_logs WHERE {where} GROUP BY client_id ORDER BY count(*) DESC LIMIT 500",
                params)).fetchall()]
    by_day = {r["day"]: r for r in day_rows}
    per_day = []
    day = start.astimezone(timezone.utc).date()
    last = (end - timedelta(microseconds=1)).astimezone(timezone.utc).date()
    while day <= last:
        r = by_day.get(day)
        per_day.append({"day": day.isoformat(),
                        "success": r["success"] if r else 0, "partial": r["partial"] if r else 0,
                        "failed": r["failed"] if r else 0,
                        "avg_confidence": r["avg_confidence"] if r else None,
                        "avg_hallucination_risk": r["avg_hallucination_risk"] if r else None,
                        "cost_usd": r["cost_usd"] if r else 0.0})
        day += timedelta(days=1)
    counts = {r["b"]: r["n"] for r in hist_rows}
    labels = [f"< {bounds[0]} s"] + [f"{lo}–{hi} s" for lo, hi in zip(bounds, bounds[1:])] + [f"≥ {bounds[-1]} s"]
    histogram = [{"bucket": label, "tickets": counts.get(i, 0)} for i, label in enumerate(labels)]
    nodes = [{"node": r["node"], "avg_ms": r["avg_ms"], "samples": r["n"]} for r in node_rows]
    return Stats(start, end, totals, per_day, histogram, nodes, per_client)
