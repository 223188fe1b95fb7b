"""Customer sessions (read side): a tenant's tickets grouped by `session_key` (migration 0017,
collector_api.contract.sessions). SQL + psycopg only; every query runs in a scoped transaction
(row-level security) AND filters by tenant itself. This module never writes.

The list walks the logs newest first (the tenant's time index) and keeps the first ticket of
each session it meets, so sessions come ordered by their last contact in the range; a session
already shown on an earlier page has a ticket at or after the page cursor and is skipped (one
probe of the session index per candidate). One page therefore reads about as many logs as it
needs, at most WALK_BATCH * MAX_WALK_BATCHES, whatever the table's size.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from psycopg import sql
from psycopg_pool import AsyncConnectionPool

from collector_api.store.core.db import Scope, scoped_transaction
from collector_api.store.core.scope import narrowed, tenant_condition, tenant_of
from collector_api.store.logs.reads import Cursor

WALK_BATCH = 1000
MAX_WALK_BATCHES = 20  # a page reads at most 20 batches (up to 20,000 logs); beyond, it ends early with a cursor
SESSION_COUNT_CAP = 10_000
EXCERPT_CHARS = 240


@dataclass(frozen=True)
class SessionFilters:
    start: datetime
    end: datetime
    client_id: str | None = None
    recontacted: bool | None = None  # True: 2+ tickets in the range; False: exactly 1


@dataclass(frozen=True)
class SessionPage:
    rows: list[dict]
    next_cursor: Cursor | None


_WALK = ("SELECT client_id, session_key, executed_at, id FROM workflow_logs WHERE {tenant}"
         " AND executed_at >= %s AND executed_at < %s AND (executed_at, id) < (%s, %s)"
         " AND session_key IS NOT NULL ORDER BY executed_at DESC, id DESC LIMIT %s")
_SHOWN = ("SELECT k.client_id, k.session_key FROM unnest(%s::text[], %s::text[]) AS k(client_id, session_key)"
          " WHERE EXISTS (SELECT 1 FROM workflow_logs w WHERE w.client_id = k.client_id"
          " AND w.session_key = k.session_key AND {tenant} AND (w.executed_at, w.id) >= (%s, %s)"
          " AND w.executed_at < %s)")
SUMMARY = (
    "count(*) AS tickets, min(w.executed_at) AS first_contact, max(w.executed_at) AS last_contact,"
    " count(*) FILTER (WHERE w.status = 'SUCCESS') AS success, count(*) FILTER (WHERE w.status = 'PARTIAL') AS partial,"
    " count(*) FILTER (WHERE w.status = 'FAILED') AS failed,"
    " count(*) FILTER (WHERE w.resolution_status = 'resolved') AS resolved, COALESCE(sum(w.cost_usd), 0) AS cost_usd,"
    # Open reviews: FAILED or PARTIAL tickets nobody has reviewed yet (the review queue's head).
    " count(*) FILTER (WHERE w.status <> 'SUCCESS' AND NOT EXISTS"
    " (SELECT 1 FROM ticket_review_state s WHERE s.log_id = w.id)) AS open_reviews"
)
_AGGREGATE = ("SELECT w.client_id, w.session_key, " + SUMMARY + " FROM workflow_logs w"
              " JOIN unnest(%s::text[], %s::text[]) AS k(client_id, session_key)"
              " ON w.client_id = k.client_id AND w.session_key = k.session_key"
              " WHERE {tenant} AND w.executed_at >= %s AND w.executed_at < %s GROUP BY 1, 2")
_FAR_FUTURE = datetime(9999, 12, 30, tzinfo=UTC)


def _prefixed(scope: Scope, client_id: str | None) -> tuple[sql.Composable, list]:
    tenant, params = tenant_condition(scope, client_id)
    return (sql.SQL("w.") + tenant if params else tenant), list(params)


async def _candidates(conn, scope: Scope, f: SessionFilters, position: tuple, seen: set,
                      batch: int) -> tuple[list, tuple | None]:
    """The next `batch` logs of the walk: (sessions met first there, with their position), where it ended."""
    tenant, params = tenant_condition(scope, f.client_id)
    rows = await (await conn.execute(sql.SQL(_WALK).format(tenant=tenant),
                                     [*params, f.start, f.end, *position, batch])).fetchall()
    found = []
    for r in rows:
        key = (r["client_id"], r["session_key"])
        if key not in seen:
            seen.add(key)
            found.append((key, (r["executed_at"], r["id"])))
    end = (rows[-1]["executed_at"], rows[-1]["id"]) if len(rows) == batch else None
    return found, end


async def _shown_before(conn, scope: Scope, f: SessionFilters, after: Cursor, keys: list) -> set:
    tenant, params = _prefixed(scope, f.client_id)
    rows = await (await conn.execute(sql.SQL(_SHOWN).format(tenant=tenant), [
        [k[0] for k in keys], [k[1] for k in keys], *params, after.executed_at, after.id, f.end])).fetchall()
    return {(r["client_id"], r["session_key"]) for r in rows}


async def _summaries(conn, scope: Scope, f: SessionFilters, keys: list) -> dict:
    tenant, params = _prefixed(scope, f.client_id)
    rows = await (await conn.execute(sql.SQL(_AGGREGATE).format(tenant=tenant), [
        [k[0] for k in keys], [k[1] for k in keys], *params, f.start, f.end])).fetchall()
    return {(r["client_id"], r["session_key"]): r for r in rows}


def _wanted(row: dict, recontacted: bool | None) -> bool:
    return recontacted is None or (row["tickets"] > 1) == recontacted


async def list_sessions(pool: AsyncConnectionPool, scope: Scope, f: SessionFilters, *, limit: int = 50,
                        after: Cursor | None = None) -> SessionPage:
    """One page of sessions with a ticket in [f.start, f.end), latest contact first: per session
    its tickets, first and last contact, outcomes, resolved tickets, cost and open reviews (all
    within the range). Keyset pages: pass `next_cursor` as `after`; None on the last page."""
    position = (after.executed_at, after.id) if after else (_FAR_FUTURE, 0)
    seen: set = set()
    page: list[dict] = []
    async with scoped_transaction(pool, narrowed(scope, f.client_id)) as conn:
        for i in range(MAX_WALK_BATCHES):
            # Each log of the walk is a heap fetch: read about what the page still needs, doubling.
            batch = min(WALK_BATCH, max(64, 2 * (limit + 1 - len(page))) << min(i, 10))
            found, walked_to = await _candidates(conn, scope, f, position, seen, batch)
            while found:  # in chunks of what the page still needs: a batch meets up to 1,000 sessions
                chunk, found = found[:limit + 1 - len(page)], found[limit + 1 - len(page):]
                if await _fill(conn, scope, f, after, chunk, page) and len(page) > limit:
                    return _page(page[:limit], page[limit - 1]["_at"])
            if walked_to is None:
                return _page(page, None)
            position = walked_to
    return _page(page, position)  # the walk's budget is spent: the next page continues from here


async def _fill(conn, scope: Scope, f: SessionFilters, after: Cursor | None, chunk: list, page: list) -> bool:
    """Append the sessions of `chunk` not shown on an earlier page and wanted by the filters, in
    walk order, with their summaries; whether any was appended."""
    if after is not None:
        shown = await _shown_before(conn, scope, f, after, [k for k, _ in chunk])
        chunk = [(k, p) for k, p in chunk if k not in shown]
    if not chunk:
        return False
    summaries = await _summaries(conn, scope, f, [k for k, _ in chunk])
    before = len(page)
    for key, at in chunk:
        row = summaries.get(key)
        if row is not None and _wanted(row, f.recontacted):
            page.append({**row, "_at": at})
    return len(page) > before


def _page(rows: list[dict], at: tuple | None) -> SessionPage:
    for r in rows:
        r.pop("_at", None)
    return SessionPage(rows, Cursor(at[0], at[0], at[1]) if at else None)


# --- one session ---------------------------------------------------------------------------

# One index probe per tenant (LATERAL ... LIMIT 1): as a semi-join the planner may scan the logs.
_OWNER = ("SELECT t.client_id FROM tenants t CROSS JOIN LATERAL (SELECT 1 FROM workflow_logs w"
          " WHERE w.client_id = t.client_id AND w.session_key = %s LIMIT 1) hit ORDER BY 1 LIMIT 1")
_TOTALS = "SELECT " + SUMMARY + " FROM workflow_logs w WHERE w.client_id = %s AND w.session_key = %s AND {tenant}"
# Keys first along the session index (client and key fixed, so its own order: with only ORDER BY
# executed_at the planner may walk the time index of all logs for a session of one ticket), then
# the page's rows, each with one probe of its review state. OFFSET 0 keeps the probe a probe: as a
# join, the planner sized the RLS-filtered review table at 0.5 % of its rows (the tenant test is
# unknown at plan time) and looped over all of it per ticket (800 ms for 2,000 tickets).
_TIMELINE = (
    "WITH page AS (SELECT w.id, w.executed_at FROM workflow_logs w WHERE w.client_id = %s AND w.session_key = %s"
    " AND {tenant} AND (w.executed_at, w.id) > (%s, %s) ORDER BY w.client_id, w.session_key, w.executed_at, w.id"
    " LIMIT %s)"
    " SELECT w.id, w.client_id, w.ticket_id, w.status, w.resolution_status, w.executed_at, w.cost_usd,"
    " w.overall_confidence, w.hallucination_risk, w.trace_id,"
    " left(CASE WHEN jsonb_typeof(w.log_data->'trace'->'output'->'draft') = 'string'"
    " THEN w.log_data->'trace'->'output'->>'draft' END, %s) AS draft_excerpt,"
    " s.verdict, s.review_count FROM page JOIN workflow_logs w USING (id, executed_at)"
    " LEFT JOIN LATERAL (SELECT s.verdict, s.review_count FROM ticket_review_state s WHERE s.log_id = w.id"
    " OFFSET 0) s ON true WHERE w.client_id = %s AND {tenant} ORDER BY w.executed_at, w.id"
)
_FAR_PAST = datetime(1, 1, 2, tzinfo=UTC)


@dataclass(frozen=True)
class Session:
    client_id: str
    session_key: str
    summary: dict[str, Any]
    tickets: list[dict]  # oldest first
    next_cursor: Cursor | None


async def _owner(conn, scope: Scope, session_key: str, client_id: str | None) -> str | None:
    tenant = tenant_of(scope, client_id)
    if tenant is not None:
        return tenant
    row = await (await conn.execute(_OWNER, (session_key,))).fetchone()  # the provider, all tenants
    return row["client_id"] if row else None


async def get_session(pool: AsyncConnectionPool, scope: Scope, session_key: str, client_id: str | None = None, *,
                      limit: int = 100, after: Cursor | None = None) -> Session | None:
    """The session's summary (all its tickets) and one page of its tickets, oldest first, each
    with outcome, resolution, cost, the latest review's verdict and an excerpt of its draft; None
    when `scope` sees no ticket of it (another tenant's key included)."""
    async with scoped_transaction(pool, narrowed(scope, client_id)) as conn:
        owner = await _owner(conn, scope, session_key, client_id)
        if owner is None:
            return None
        tenant, params = _prefixed(scope, owner)
        summary = await (await conn.execute(sql.SQL(_TOTALS).format(tenant=tenant),
                                            [owner, session_key, *params])).fetchone()
        if not summary or not summary["tickets"]:
            return None
        position = (after.executed_at, after.id) if after else (_FAR_PAST, 0)
        rows = await (await conn.execute(sql.SQL(_TIMELINE).format(tenant=tenant), [
            owner, session_key, *params, *position, limit + 1, EXCERPT_CHARS, owner, *params])).fetchall()
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        next_cursor = Cursor(rows[-1]["executed_at"], rows[-1]["executed_at"], rows[-1]["id"])
    return Session(owner, session_key, dict(summary), rows, next_cursor)


async def count_session_tickets(pool: AsyncConnectionPool, scope: Scope, client_id: str, session_key: str) -> int:
    """How many tickets the session holds (at most SESSION_COUNT_CAP + 1), as far as `scope` may read."""
    tenant, params = _prefixed(scope, None)
    query = sql.SQL("SELECT count(*) AS n FROM (SELECT 1 FROM workflow_logs w WHERE w.client_id = %s"
                    " AND w.session_key = %s AND {tenant} LIMIT %s) c").format(tenant=tenant)
    async with scoped_transaction(pool, scope) as conn:
        row = await (await conn.execute(query, [client_id, session_key, *params, SESSION_COUNT_CAP + 1])).fetchone()
    return row["n"]
