"""The viewer's read queries. SQL + psycopg only; every query runs in a scoped transaction
(row-level security) AND filters by tenant itself, so either guard alone keeps tenants apart.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg import sql
from psycopg_pool import AsyncConnectionPool

from collector_api.store.core.db import Scope, scoped_transaction
from collector_api.store.core.scope import narrowed, tenant_condition
from collector_api.store.logs.stats import DURATION_BUCKETS, Stats, get_stats  # noqa: F401  (re-exported: reads only)

logger = logging.getLogger(__name__)

COUNT_CAP = 10_000
STATUSES = ("SUCCESS", "PARTIAL", "FAILED")
SORTS = {
    # name -> (SQL expression, value of a NULL so keyset comparisons stay total)
    "time": ("executed_at", None),
    "confidence": ("COALESCE(overall_confidence, -1)", -1.0),
    "duration": ("COALESCE(execution_time_seconds, -1)", -1.0),
}

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
    # Review filters (issue 17): the ticket's latest verdict, a flag of its latest review,
    # reviewed or not (True/False); answered from ticket_review_state.
    verdict: str | None = None
    flag: str | None = None
    reviewed: bool | None = None
    # Evaluation filter (migration 0019): the latest version's score of `evaluator` within
    # [min_score, max_score]; answered from evaluation_scores.
    evaluator: str | None = None
    min_score: float | None = None
    max_score: float | None = None


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


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _where(scope: Scope, filters: TicketFilters, *, picks: bool = True) -> tuple[list[sql.Composable], list[Any]]:
    tenant, params = tenant_condition(scope, filters.client_id)
    clauses: list[sql.Composable] = [tenant]
    params = list(params)
    simple = (("executed_at >= %s", filters.start), ("executed_at < %s", filters.end),
              ("status = %s", filters.status), ("resolution_status = %s", filters.resolution_status),
              ("environment = %s", filters.environment), ("workflow_version = %s", filters.workflow_version),
              ("overall_confidence >= %s", filters.min_confidence),
              ("overall_confidence <= %s", filters.max_confidence),
              ("execution_time_seconds >= %s", filters.min_duration_s))
    for clause, value in simple:
        if value is not None:
            clauses.append(sql.SQL(clause))
            params.append(value)
    if filters.ticket_id:
        # Row-level security lets only leakproof operators reach an index: LIKE is not, the
        # text_pattern_ops comparisons are. The range finds the candidates, LIKE rechecks them.
        clauses.append(sql.SQL("ticket_id ~>=~ %s AND ticket_id ~<=~ %s AND ticket_id LIKE %s"))
        params += [filters.ticket_id, filters.ticket_id + "\U0010ffff", _escape_like(filters.ticket_id) + "%"]
    _review_clauses(scope, filters, clauses, params, picks=picks)
    _score_clause(scope, filters, clauses, params)
    return clauses, params


# A log's latest-version score of the evaluator within [min, max], probed per log (the key index of
# evaluation_scores). A time-ordered list or count walks evaluation_scores itself instead (_SCORE_PICKS).
# A score of the evaluator's current version is its log's latest without a probe: versions only go up
# (store.evals.evaluators.bump_version) and a score is written under the version current when the job
# read it, so no score is newer than the current version. Only scores of older versions are probed
# for a newer one (at 10M logs the probes were two thirds of a capped count: 10,001 of them).
# The current version is one scalar subquery (an InitPlan, run once); an evaluator the scope cannot
# see, or none, makes it NULL and every score is probed.
_LATEST_ONLY = ("(e.version >= (SELECT v.version FROM evaluators v WHERE v.name = %s)"
                " OR NOT EXISTS (SELECT 1 FROM evaluation_scores n WHERE n.log_id = e.log_id"
                " AND n.client_id = e.client_id AND n.evaluator = e.evaluator AND n.version > e.version))")
_SCORED = ("EXISTS (SELECT 1 FROM evaluation_scores e WHERE e.log_id = workflow_logs.id"
           " AND e.client_id = workflow_logs.client_id AND e.evaluator = %s AND e.score >= %s AND e.score <= %s"
           " AND " + _LATEST_ONLY + ")")


def _score_range(filters: TicketFilters) -> list[Any]:
    """The parameters of the score condition: evaluator, min, max, and the evaluator again (its version)."""
    return [filters.evaluator, 0.0 if filters.min_score is None else filters.min_score,
            1.0 if filters.max_score is None else filters.max_score, filters.evaluator]


def _score_clause(scope: Scope, filters: TicketFilters, clauses: list[sql.Composable], params: list[Any]) -> None:
    if filters.evaluator is None:
        return
    clauses.append(sql.SQL(_SCORED))
    params += _score_range(filters)


_REVIEWED = "EXISTS (SELECT 1 FROM ticket_review_state s WHERE s.log_id = workflow_logs.id)"
# A verdict or flag picks a few reviewed tickets out of many logs: their ids come from the small
# review state table (narrowed by tenant and time there too) as one array, which the id index
# looks up; a per-row EXISTS would walk (and count) every log of the range.
_REVIEWED_IDS = ("id = ANY (ARRAY(SELECT s.log_id FROM ticket_review_state s WHERE {tenant}"
                 " AND s.executed_at >= %s AND s.executed_at < %s AND {condition}))")
_FAR = (datetime(1, 1, 2, tzinfo=UTC), datetime(9999, 12, 30, tzinfo=UTC))


def _review_clauses(scope: Scope, filters: TicketFilters, clauses: list[sql.Composable], params: list[Any], *,
                    picks: bool = True) -> None:
    if filters.reviewed is not None:
        clauses.append(sql.SQL(("" if filters.reviewed else "NOT ") + _REVIEWED))
    if not picks:
        return
    picks = [(sql.SQL("s.verdict = %s"), filters.verdict), (sql.SQL("%s = ANY (s.flags)"), filters.flag)]
    for condition, value in picks:
        if value is not None:
            tenant, tenant_params = tenant_condition(scope, filters.client_id)
            clauses.append(sql.SQL(_REVIEWED_IDS).format(
                tenant=sql.SQL("s.") + tenant if tenant_params else tenant, condition=condition))
            params += [*tenant_params, filters.start or _FAR[0], filters.end or _FAR[1], value]


def _picked(filters: TicketFilters) -> bool:
    return filters.verdict is not None or filters.flag is not None or filters.evaluator is not None


# A verdict or flag filter in time order walks the review state in (executed_at, log_id) order
# (an evaluator's score filter without one: evaluation_scores, latest versions within the range)
# and checks each pick's log against the other filters (OFFSET 0 keeps that check a per-row
# probe): the page costs about as many probes as it shows, and at worst as many as there are
# matching picks. Row-level security makes the planner guess a few dozen picks, so a join
# the planner may reorder would fetch every matching pick's log and sort them.
# A review state or score row always has its log (written for a stored log, deleted with it by
# erasure and by the log's partition's retention, store.partitions): filters the pick's own
# table answers alone need no probe at all.
_PICKS = "SELECT s.log_id AS id, s.executed_at FROM ticket_review_state s WHERE {conditions}"
_SCORE_PICKS = ("SELECT s.log_id AS id, s.executed_at FROM evaluation_scores s WHERE {conditions}"
                " AND s.evaluator = %s AND s.score >= %s AND s.score <= %s AND "
                + _LATEST_ONLY.replace("e.", "s."))
_PROBE = (" AND EXISTS (SELECT 1 FROM workflow_logs WHERE workflow_logs.id = s.log_id"
          " AND workflow_logs.executed_at = s.executed_at AND {where} OFFSET 0)")
_LOG_ONLY = ("status", "resolution_status", "environment", "workflow_version", "ticket_id", "min_confidence",
             "max_confidence", "min_duration_s")


def _picks_query(scope: Scope, filters: TicketFilters, *, descending: bool = True,
                 after: Cursor | None = None) -> tuple[sql.Composable, list[Any], sql.Composable, list[Any]]:
    """(page-key query over ticket_review_state or evaluation_scores, its parameters, the logs'
    own WHERE, its parameters)."""
    by_review = filters.verdict is not None or filters.flag is not None
    tenant, params = tenant_condition(scope, filters.client_id)
    conditions: list[sql.Composable] = [sql.SQL("s.") + tenant if params else tenant]
    params = list(params)
    for clause, value in (("s.executed_at >= %s", filters.start), ("s.executed_at < %s", filters.end),
                          ("s.verdict = %s", filters.verdict), ("%s = ANY (s.flags)", filters.flag)):
        if value is not None:
            conditions.append(sql.SQL(clause))
            params.append(value)
    if after is not None:
        conditions.append(sql.SQL("(s.executed_at, s.log_id) {} (%s, %s)".format("<" if descending else ">")))
        params += [after.executed_at, after.id]
    if not by_review:  # the scores answer the evaluator filter: the logs' WHERE leaves it out
        params += _score_range(filters)
        filters = replace(filters, evaluator=None)
    clauses, where_params = _where(scope, filters, picks=False)
    where = _joined(clauses)
    picks = _PICKS if by_review else _SCORE_PICKS
    if (filters.reviewed is not None and not (by_review and filters.reviewed)) or filters.evaluator is not None or any(
            getattr(filters, name) is not None for name in _LOG_ONLY):
        query = sql.SQL(picks + _PROBE).format(conditions=_joined(conditions), where=where)
        return query, [*params, *where_params], where, where_params
    return sql.SQL(picks).format(conditions=_joined(conditions)), params, where, where_params


def ticket_conditions(scope: Scope, filters: TicketFilters) -> tuple[list[sql.Composable], list[Any]]:
    """The WHERE conditions (and parameters) of a ticket search, tenant condition first."""
    return _where(scope, filters)


def _joined(clauses: list[sql.Composable]) -> sql.Composable:
    return sql.SQL(" AND ").join(clauses)


async def list_tickets(pool: AsyncConnectionPool, scope: Scope, filters: TicketFilters, *, sort: str = "time",
                       descending: bool = True, limit: int = 50, after: Cursor | None = None) -> TicketPage:
    """One page of matching tickets (without their documents), newest/highest first by default.

    Keyset pagination: pass the returned `next_cursor` as `after` for the next page; it is None
    on the last page. Ties on the sort value are broken by (executed_at, id).
    """
    if sort not in SORTS:
        raise ValueError(f"unknown sort {sort!r}")
    if sort == "time" and _picked(filters):
        return await _list_picked(pool, scope, filters, descending=descending, limit=limit, after=after)
    expr, _ = SORTS[sort]
    clauses, params = _where(scope, filters)
    op = "<" if descending else ">"
    direction = "DESC" if descending else "ASC"
    if after is not None:
        if sort == "time":
            clauses.append(sql.SQL(f"(executed_at, id) {op} (%s, %s)"))
            params += [after.executed_at, after.id]
        else:
            clauses.append(sql.SQL(f"({expr}, executed_at, id) {op} (%s, %s, %s)"))
            params += [after.value, after.executed_at, after.id]
    order = (f"executed_at {direction}, id {direction}" if sort == "time"
             else f"{expr} {direction}, executed_at {direction}, id {direction}")
    where = _joined(clauses)
    # Two steps: the page's keys first (an index-only walk of a covering index where the
    # filters allow), then the rows. Under RLS the planner underestimates how many rows match
    # and would otherwise fetch every candidate's wide heap row and sort them.
    query = sql.SQL("WITH page AS (SELECT id, executed_at FROM workflow_logs WHERE {where} ORDER BY {order} LIMIT %s)"
                    " SELECT {columns} FROM workflow_logs JOIN page USING (id, executed_at)"
                    " WHERE {where} ORDER BY {order}").format(where=where, order=sql.SQL(order),
                                                              columns=sql.SQL(LIST_COLUMNS))
    params = params + [limit + 1] + params
    async with scoped_transaction(pool, narrowed(scope, filters.client_id)) as conn:
        rows = await (await conn.execute(query, params)).fetchall()
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        last = rows[-1]
        value = last["executed_at"] if sort == "time" else _sort_value(last, sort)
        next_cursor = Cursor(value, last["executed_at"], last["id"])
    return TicketPage(rows, next_cursor)


async def _list_picked(pool: AsyncConnectionPool, scope: Scope, filters: TicketFilters, *, descending: bool,
                       limit: int, after: Cursor | None) -> TicketPage:
    """list_tickets in time order for a verdict, flag or score filter: the page's keys from the review
    state or the scores."""
    direction = "DESC" if descending else "ASC"
    picks, params, where, where_params = _picks_query(scope, filters, descending=descending, after=after)
    query = sql.SQL("WITH page AS ({picks} ORDER BY s.executed_at {d}, s.log_id {d} LIMIT %s)"
                    " SELECT {columns} FROM workflow_logs JOIN page USING (id, executed_at)"
                    " WHERE {where} ORDER BY executed_at {d}, id {d}").format(
        picks=picks, d=sql.SQL(direction), columns=sql.SQL(LIST_COLUMNS), where=where)
    async with scoped_transaction(pool, narrowed(scope, filters.client_id)) as conn:
        # Guessing a few dozen picks (RLS), the planner would scan every matching review (bitmap
        # or whole table), probe each one's log and sort them (85 ms at 13k picks of 100k);
        # walking the ordered index stops after the page (3 ms). For this transaction only.
        await _walk_picks(conn)
        rows = await (await conn.execute(query, [*params, limit + 1, *where_params])).fetchall()
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        next_cursor = Cursor(rows[-1]["executed_at"], rows[-1]["executed_at"], rows[-1]["id"])
    return TicketPage(rows, next_cursor)


def _sort_value(row: dict, sort: str) -> float:
    column = "overall_confidence" if sort == "confidence" else "execution_time_seconds"
    value = row[column]
    return SORTS[sort][1] if value is None else value


async def _walk_picks(conn: psycopg.AsyncConnection) -> None:
    """For the rest of this transaction: walk the picks' ordered index, never a scan of the table
    (under RLS the planner guesses a few dozen picks and chooses a scan; a list or a capped count
    stops after its page or its cap)."""
    await conn.execute("SELECT set_config('enable_bitmapscan', 'off', true), set_config('enable_seqscan', 'off', true)")


async def count_tickets(pool: AsyncConnectionPool, scope: Scope, filters: TicketFilters) -> TicketCount:
    """Exact count up to COUNT_CAP; beyond it `capped=True` (counting further costs a full scan)."""
    picked = _picked(filters)
    if picked:  # at most as many probes as matching reviews (see _PICKS)
        picks, params, _, _ = _picks_query(scope, filters)
        query = sql.SQL("SELECT count(*) AS n FROM ({picks} LIMIT %s) c").format(picks=picks)
    else:
        clauses, params = _where(scope, filters)
        query = sql.SQL("SELECT count(*) AS n FROM (SELECT 1 FROM workflow_logs WHERE {where} LIMIT %s) s").format(
            where=_joined(clauses))
    params.append(COUNT_CAP + 1)
    async with scoped_transaction(pool, narrowed(scope, filters.client_id)) as conn:
        if picked:
            # The count stops at COUNT_CAP + 1 picks: an index walk. Guessing RLS's few matches, the
            # planner chose a parallel scan of the whole scores table at 10M logs (490 ms against
            # 47 ms for the walk of "score <= 0.3" over 30 days).
            await _walk_picks(conn)
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
    tenant, params = tenant_condition(scope)
    query = sql.SQL("SELECT {columns}, log_data, critical_path, session_key FROM workflow_logs WHERE id = %s"
                    " AND {tenant}"
                    " LIMIT 1").format(
        columns=sql.SQL(LIST_COLUMNS), tenant=tenant)
    params = [log_id, *params]
    async with scoped_transaction(pool, scope) as conn:
        return await (await conn.execute(query, params)).fetchone()


async def list_filter_values(pool: AsyncConnectionPool, scope: Scope, since: datetime) -> dict[str, list[str]]:
    """Distinct environments, workflow versions and resolution statuses seen since `since` (for menus)."""
    clauses, params = _where(scope, TicketFilters(start=since))
    where = _joined(clauses)
    result = {}
    async with scoped_transaction(pool, scope) as conn:
        for column in ("environment", "workflow_version", "resolution_status"):
            # A loose index scan would be faster at scale; a bounded sample keeps this cheap.
            rows = await (await conn.execute(sql.SQL(
                "SELECT DISTINCT {column} AS v FROM (SELECT {column} FROM workflow_logs WHERE {where}"
                " ORDER BY executed_at DESC LIMIT 5000) s WHERE {column} IS NOT NULL ORDER BY 1 LIMIT 100").format(
                column=sql.Identifier(column), where=where), params)).fetchall()
            result[column] = [r["v"] for r in rows]
    return result


MAX_LINKED_TRACES = 200  # span links resolved per ticket page


async def find_tickets_by_trace(pool: AsyncConnectionPool, scope: Scope, client_id: str,
                                trace_ids: list[str]) -> dict[str, int]:
    """trace id -> id of the stored log (the latest, when a trace was stored more than once) of
    `client_id`'s tickets among `trace_ids` (at most MAX_LINKED_TRACES), as far as `scope` may read
    them: another tenant's trace id is never resolved, even for the provider."""
    wanted = sorted({t for t in trace_ids if isinstance(t, str)})[:MAX_LINKED_TRACES]
    if not wanted:
        return {}
    tenant, params = tenant_condition(scope)
    query = sql.SQL("SELECT DISTINCT ON (trace_id) trace_id, id FROM workflow_logs"
                    " WHERE client_id = %s AND trace_id = ANY(%s) AND {tenant}"
                    " ORDER BY trace_id, executed_at DESC, id DESC").format(tenant=tenant)
    async with scoped_transaction(pool, scope) as conn:
        rows = await (await conn.execute(query, [client_id, wanted, *params])).fetchall()
    return {r["trace_id"]: r["id"] for r in rows}
