"""Customer sessions (read side): a tenant's tickets grouped by `session_key` (migration 0017,
collector_api.contract.sessions). SQL + psycopg only; every query runs in a scoped transaction
(row-level security) AND filters by tenant itself. This module never writes.

The list walks the logs newest first (the time indexes, index-only: they include the session key,
migration 0026) and keeps the first ticket of each session it meets, so sessions come ordered by
their last contact in the range; a session already shown on an earlier page has a ticket at or
after the page cursor and is skipped (one probe of the session index per candidate). The walk
reads windows of logs (FIRST_WINDOW, then sized by the new sessions the last one met, up to MAX_WINDOW),
each folded into its sessions by PostgreSQL (one row per session, not per log) and skipping on
the index entries the sessions met already, so a customer with thousands of recent tickets costs
index entries passed over, not rows. A page reads at most MAX_WALK_LOGS logs of sessions not met
yet, whatever the table's size; beyond, it ends early with a cursor.
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

FIRST_WINDOW = 256  # the walk's windows (logs): 256 first, at most 4,096 (at 10M logs: beat 16,384)
MAX_WINDOW = 4096
GROWTH = 2
MAX_WALK_LOGS = 200_000  # a page reads at most this many logs; beyond, it ends early with a cursor
SESSION_COUNT_CAP = 10_000  # a session page's summary counts at most this many tickets (the newest)
TIMELINE_PAGE = 50  # a session page's tickets per page (each one heap row read: its stored draft excerpt, 0028)
LIST_SUMMARY_CAP = 1_000  # each session of the list counts at most this many (the newest in the range)
EXCERPT_CHARS = 240  # logs the backfill of 0028 has not reached: as contract.derived.EXCERPT_CHARS (a test checks)


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


# One window of the walk folded into its sessions: each with where the walk first meets it (its
# latest log in the window: the latest time, then the highest id at that time), and one more row
# (NULL session) with where the window ended and how many logs it read. The sessions the page met
# already are skipped on the index entries (keys derive from the tenant: a key names one session),
# so a customer with a million recent tickets costs index entries passed over, not a window.
_WALK = ("WITH w AS MATERIALIZED (SELECT client_id, session_key, executed_at, id FROM workflow_logs WHERE {tenant}"
         " AND executed_at >= %s AND executed_at < %s AND (executed_at, id) < (%s, %s)"
         " AND session_key IS NOT NULL AND session_key <> ALL(%s::text[]) ORDER BY executed_at DESC, id DESC LIMIT %s),"
         " g AS (SELECT client_id, session_key, max(executed_at) AS executed_at FROM w GROUP BY 1, 2)"
         " SELECT g.client_id, g.session_key, g.executed_at, max(w.id) AS id, NULL::bigint AS n FROM g JOIN w"
         " USING (client_id, session_key, executed_at) GROUP BY 1, 2, 3"
         " UNION ALL (SELECT NULL, NULL, executed_at, id, (SELECT count(*) FROM w) FROM w"
         " ORDER BY executed_at, id LIMIT 1)")
_SHOWN = ("SELECT k.client_id, k.session_key FROM unnest(%s::text[], %s::text[]) AS k(client_id, session_key)"
          " WHERE EXISTS (SELECT 1 FROM workflow_logs w WHERE w.client_id = k.client_id"
          " AND w.session_key = k.session_key AND {tenant} AND (w.executed_at, w.id) >= (%s, %s)"
          " AND w.executed_at < %s)")
# A session's summary counts its newest {cap} tickets in the range (every ticket below the cap;
# `capped` says there are more, and `tickets` is then the cap): index-only along the session
# index, so a customer with a million tickets (one shared conversation id) costs what one with
# the cap does (10,000 on a session's page: ~8 ms; 1,000 per session of the list) instead of
# ~1 s. First and last contact are exact (one probe for the first). Open reviews: FAILED or
# PARTIAL tickets nobody has reviewed yet (the review queue's head), one review-state probe each.
_SUMMARY = (
    "SELECT least(count(*), {cap}) AS tickets, count(*) > {cap} AS capped,"
    " (SELECT min(f.executed_at) FROM workflow_logs f WHERE f.client_id = k.client_id"
    "  AND f.session_key = k.session_key AND {tenant_f} AND f.executed_at >= %s AND f.executed_at < %s)"
    "  AS first_contact, max(w.executed_at) AS last_contact,"
    " count(*) FILTER (WHERE w.n <= {cap} AND w.status = 'SUCCESS') AS success,"
    " count(*) FILTER (WHERE w.n <= {cap} AND w.status = 'PARTIAL') AS partial,"
    " count(*) FILTER (WHERE w.n <= {cap} AND w.status = 'FAILED') AS failed,"
    " count(*) FILTER (WHERE w.n <= {cap} AND w.resolution_status = 'resolved') AS resolved,"
    " COALESCE(sum(w.cost_usd) FILTER (WHERE w.n <= {cap}), 0) AS cost_usd,"
    " count(*) FILTER (WHERE w.n <= {cap} AND w.status <> 'SUCCESS' AND NOT EXISTS"
    "  (SELECT 1 FROM ticket_review_state s WHERE s.log_id = w.id)) AS open_reviews"
    " FROM (SELECT w.id, w.executed_at, w.status, w.resolution_status, w.cost_usd,"
    "  row_number() OVER (ORDER BY w.executed_at DESC, w.id DESC) AS n FROM workflow_logs w"
    "  WHERE w.client_id = k.client_id AND w.session_key = k.session_key AND {tenant_w}"
    "  AND w.executed_at >= %s AND w.executed_at < %s ORDER BY w.executed_at DESC, w.id DESC LIMIT {cap} + 1) w"
)
_AGGREGATE = ("SELECT k.client_id, k.session_key, m.* FROM unnest(%s::text[], %s::text[]) AS k(client_id, session_key)"
              " CROSS JOIN LATERAL (" + _SUMMARY + ") m WHERE m.tickets > 0")
_FAR_FUTURE = datetime(9999, 12, 30, tzinfo=UTC)


def _prefixed(scope: Scope, client_id: str | None, alias: str = "w") -> tuple[sql.Composable, list]:
    tenant, params = tenant_condition(scope, client_id)
    return (sql.SQL(alias + ".") + tenant if params else tenant), list(params)


def _summarised(template: str, scope: Scope, client_id: str | None, start: datetime, end: datetime,
                cap: int) -> tuple[sql.Composable, list]:
    """`template` (built on _SUMMARY) with its tenant conditions and cap, and the parameters after its keys."""
    tenant_f, params_f = _prefixed(scope, client_id, "f")
    tenant_w, params_w = _prefixed(scope, client_id, "w")
    query = sql.SQL(template).format(cap=sql.Literal(cap), tenant_f=tenant_f, tenant_w=tenant_w)
    return query, [*params_f, start, end, *params_w, start, end]


async def _candidates(conn, scope: Scope, f: SessionFilters, position: tuple, seen: set,
                      window: int) -> tuple[list, tuple | None, int]:
    """The next `window` logs of the walk: (sessions met first there, with their position, in walk
    order), where the window ended (None: the walk is over) and how many logs it read."""
    tenant, params = tenant_condition(scope, f.client_id)
    rows = await (await conn.execute(sql.SQL(_WALK).format(tenant=tenant),
                                     [*params, f.start, f.end, *position, [k[1] for k in seen], window])).fetchall()
    found = []
    for r in sorted((r for r in rows if r["session_key"] is not None),
                    key=lambda r: (r["executed_at"], r["id"]), reverse=True):
        key = (r["client_id"], r["session_key"])
        if key not in seen:
            seen.add(key)
            found.append((key, (r["executed_at"], r["id"])))
    last = next((r for r in rows if r["session_key"] is None), None)
    read = last["n"] if last else 0
    end = (last["executed_at"], last["id"]) if last and read == window else None
    return found, end, read


async def _shown_before(conn, scope: Scope, f: SessionFilters, after: Cursor, keys: list) -> set:
    tenant, params = _prefixed(scope, f.client_id)
    rows = await (await conn.execute(sql.SQL(_SHOWN).format(tenant=tenant), [
        [k[0] for k in keys], [k[1] for k in keys], *params, after.executed_at, after.id, f.end])).fetchall()
    return {(r["client_id"], r["session_key"]) for r in rows}


async def _summaries(conn, scope: Scope, f: SessionFilters, keys: list) -> dict:
    query, params = _summarised(_AGGREGATE, scope, f.client_id, f.start, f.end, LIST_SUMMARY_CAP)
    # Never prepared (psycopg prepares a statement at its 5th run, and PostgreSQL then may switch to
    # a generic plan): planned without the keys and the range, this one took ~0.9 s a page at 10M
    # logs instead of ~0.05 s, from the 6th page on.
    rows = await (await conn.execute(query, [[k[0] for k in keys], [k[1] for k in keys], *params],
                                     prepare=False)).fetchall()
    return {(r["client_id"], r["session_key"]): r for r in rows}


def _wanted(row: dict, recontacted: bool | None) -> bool:
    return recontacted is None or (row["tickets"] > 1) == recontacted


async def list_sessions(pool: AsyncConnectionPool, scope: Scope, f: SessionFilters, *, limit: int = 50,
                        after: Cursor | None = None) -> SessionPage:
    """One page of sessions with a ticket in [f.start, f.end), latest contact first: per session
    its tickets, first and last contact, outcomes, resolved tickets, cost and open reviews (all
    within the range; of its newest LIST_SUMMARY_CAP tickets there when it has more, `capped`).
    Keyset pages: pass `next_cursor` as `after`; None on the last page."""
    position = (after.executed_at, after.id) if after else (_FAR_FUTURE, 0)
    seen: set = set()
    page: list[dict] = []
    window, walked = FIRST_WINDOW, 0
    async with scoped_transaction(pool, narrowed(scope, f.client_id)) as conn:
        while walked < MAX_WALK_LOGS:
            found, walked_to, read = await _candidates(conn, scope, f, position, seen, window)
            walked, met = walked + read, len(found)
            while found:  # in chunks of what the page still needs: a window meets many sessions
                chunk, found = found[:limit + 1 - len(page)], found[limit + 1 - len(page):]
                if await _fill(conn, scope, f, after, chunk, page) and len(page) > limit:
                    return _page(page[:limit], page[limit - 1]["_at"])
            if walked_to is None:
                return _page(page, None)
            position, window = walked_to, min(_next_window(window, read, met, limit + 1 - len(page)),
                                              MAX_WALK_LOGS - walked)
    return _page(page, position)  # the walk's budget is spent: the next page continues from here


def _next_window(window: int, read: int, met: int, needed: int) -> int:
    """The next window: what the last one's rate of new sessions says the page still needs (half
    again, as sessions thin out), else GROWTH times the last; between FIRST_WINDOW and MAX_WINDOW."""
    wanted = int(needed * read / met * 1.5) if met else window * GROWTH
    return max(FIRST_WINDOW, min(MAX_WINDOW, wanted))


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
_TOTALS = ("SELECT m.* FROM (SELECT %s::text AS client_id, %s::text AS session_key) k CROSS JOIN LATERAL ("
           + _SUMMARY + ") m")
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
    " NULLIF(COALESCE(w.draft_excerpt, left(CASE WHEN jsonb_typeof(w.log_data->'trace'->'output'->'draft') = 'string'"
    " THEN w.log_data->'trace'->'output'->>'draft' END, %s)), '') AS draft_excerpt,"
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
                      limit: int | None = None, after: Cursor | None = None) -> Session | None:
    """The session's summary (of all its tickets; of its newest SESSION_COUNT_CAP when it has more,
    `capped`) and one page of its tickets, oldest first, each with outcome, resolution, cost, the
    latest review's verdict and an excerpt of its draft; None when `scope` sees no ticket of it
    (another tenant's key included). `limit`: tickets per page, TIMELINE_PAGE by default."""
    limit = limit or TIMELINE_PAGE
    async with scoped_transaction(pool, narrowed(scope, client_id)) as conn:
        owner = await _owner(conn, scope, session_key, client_id)
        if owner is None:
            return None
        totals, totals_params = _summarised(_TOTALS, scope, owner, _FAR_PAST, _FAR_FUTURE, SESSION_COUNT_CAP)
        summary = await (await conn.execute(totals, [owner, session_key, *totals_params], prepare=False)).fetchone()
        tenant, params = _prefixed(scope, owner)
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
