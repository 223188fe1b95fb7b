"""The trace-assembly job's SQL: which traces are due, their staged spans, and storing or
replacing their workflow logs. The building itself is collector_api.traces.assembly.

Finding due traces is a cross-tenant read of `trace_state` as the owner (its `owner_all`
policy); everything that touches a tenant's spans or logs runs in that tenant's RLS scope.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from psycopg.rows import tuple_row
from psycopg_pool import AsyncConnectionPool

from collector_api.store.core.db import Scope, owner_connection, scoped_transaction
from collector_api.store.logs.rows import LogRow
from collector_api.store.logs.store_lock import store_transaction
from collector_api.store.logs.writes import insert_rows, row_values


@dataclass(frozen=True)
class DueTrace:
    client_id: str
    trace_id: str
    state: str  # open | assembled
    root_ended: bool
    span_count: int
    dropped_spans: int
    log_id: int | None
    log_executed_at: datetime | None


@dataclass(frozen=True)
class StagedSpan:
    trace_id: str
    span_id: str
    parent_span_id: str | None
    start_ns: int
    end_ns: int | None
    payload: bytes


_DUE = (
    "SELECT client_id, trace_id, state, root_ended, span_count, dropped_spans, log_id, log_executed_at"
    " FROM trace_state WHERE (state = 'open' AND ((root_ended AND last_seen < now() - make_interval(secs => %s))"
    "   OR first_seen < now() - make_interval(secs => %s)))"
    " OR (state = 'assembled' AND span_count > assembled_spans AND last_seen < now() - make_interval(secs => %s))"
    " ORDER BY first_seen LIMIT %s"
)


async def due_traces(pool: AsyncConnectionPool, *, quiet_s: float, max_age_s: float, limit: int) -> list[DueTrace]:
    """Open traces whose root ended and that were quiet for `quiet_s`, or older than `max_age_s`;
    assembled traces with spans that arrived since (late spans), once quiet again."""
    async with owner_connection(pool) as conn:
        cur = await conn.execute(_DUE, (quiet_s, max_age_s, quiet_s, limit))
        return [DueTrace(**r) for r in await cur.fetchall()]


@dataclass(frozen=True)
class Batch:
    spans: list[StagedSpan]
    ticket_attribute: str | None  # the tenant's ticket attribute
    logged: set[str]  # trace ids of the batch that already have a stored log
    content_mode: str = "hash"  # the tenant's content mode: hash | scrub


async def load_batch(pool: AsyncConnectionPool, client_id: str, trace_ids: list[str]) -> Batch:
    """The staged spans of `trace_ids`, the tenant's ticket attribute, and which of them already
    have a stored log: one transaction in the tenant's scope."""
    async with scoped_transaction(pool, Scope.tenant(client_id)) as conn:
        # Binary, as tuples: payloads arrive as raw bytes (no hex text to send and unescape) and
        # no dict is built per span (~30 µs per trace).
        cur = conn.cursor(binary=True, row_factory=tuple_row)
        await cur.execute("SELECT trace_id, span_id, parent_span_id, start_ns, end_ns, payload FROM trace_spans"
                          " WHERE client_id = %s AND trace_id = ANY(%s)", (client_id, trace_ids))
        spans = [StagedSpan(*r) for r in await cur.fetchall()]
        row = await (await conn.execute("SELECT ticket_attribute, content_mode FROM tenants WHERE client_id = %s",
                                        (client_id,))).fetchone()
        cur = await conn.execute("SELECT DISTINCT trace_id FROM workflow_logs WHERE client_id = %s"
                                 " AND trace_id = ANY(%s)", (client_id, trace_ids))
        logged = {r["trace_id"] for r in await cur.fetchall()}
    return Batch(spans, row["ticket_attribute"] if row else None, logged, row["content_mode"] if row else "hash")


@dataclass(frozen=True)
class Built:
    trace: DueTrace
    row: LogRow | None  # None: not assembled (see `outcome`)
    outcome: str  # assembled | bridge | failed
    span_count: int  # trace_state.span_count the log was built from


_REPLACE = (
    "UPDATE workflow_logs SET ticket_id = %s, status = %s, executed_at = %s, environment = %s,"
    " workflow_version = %s, resolution_status = %s, overall_confidence = %s, hallucination_risk = %s,"
    " react_iterations = %s, execution_time_seconds = %s, input_tokens = %s, output_tokens = %s, cost_usd = %s,"
    " complete = %s, node_durations = %s::jsonb, log_data = %s::jsonb, critical_path = %s::jsonb,"
    " usage_by_model = %s::jsonb, session_key = %s, experiment_id = %s, dataset_item_id = %s, draft_excerpt = %s,"
    " created_at = now()"
    " WHERE client_id = %s AND id = %s AND executed_at = %s RETURNING id, executed_at"
)
_MARK = (  # every trace of the batch in one statement (one round trip, not one per trace)
    "UPDATE trace_state AS t SET state = m.state, assembled_spans = m.spans, assembled_at = now(),"
    " assemblies = t.assemblies + 1, log_id = coalesce(m.log_id, t.log_id),"
    " log_executed_at = coalesce(m.executed_at, t.log_executed_at)"
    " FROM unnest(%s::text[], %s::text[], %s::int4[], %s::int8[], %s::timestamptz[])"
    "   AS m(trace_id, state, spans, log_id, executed_at)"
    " WHERE t.client_id = %s AND t.trace_id = m.trace_id"
)


async def finish(pool: AsyncConnectionPool, client_id: str, built: list[Built]) -> None:
    """Store new logs (idempotent insert), replace re-assembled ones in place (same id; the rollup
    refresh recomputes its days, queued by trigger; its `created_at` moves so the alert rollups
    see it again), and mark the traces: one transaction, so a log is never stored without its
    trace marked (a crash between the two would have made the next pass take the job's own log
    for the bridge's)."""
    new = [b for b in built if b.row is not None and b.trace.log_id is None]
    marks: list[tuple] = []  # (trace_id, state, span_count, log_id, executed_at)
    async with store_transaction(pool, client_id) as conn:
        stored = await insert_rows(conn, client_id, [b.row for b in new if b.row is not None])
        ids = {b.trace.trace_id: (s.id, b.row.executed_at, s.duplicate) for b, s in zip(new, stored, strict=True)
               if b.row is not None}
        erased = [s.trace_id for s in stored if s.erased]
        if erased:  # refused by an erasure's tombstone: its staged spans go too (migration 0018)
            await conn.execute("DELETE FROM trace_spans WHERE client_id = %s AND trace_id = ANY(%s)",
                               (client_id, erased))
        for b in built:
            state, log_id, executed_at = ("bridge" if b.outcome == "bridge" else "assembled"), None, None
            if b.row is not None and b.trace.log_id is not None:
                values = row_values(b.row)  # _COLUMNS order: client_id, ticket_id, status, executed_at, ...
                cur = await conn.execute(_REPLACE, (*values[1:4], *values[5:], client_id, b.trace.log_id,
                                                    b.trace.log_executed_at))
                hit = await cur.fetchone()
                log_id, executed_at = (hit["id"], hit["executed_at"]) if hit else (None, None)
            elif b.trace.trace_id in ids:
                log_id, executed_at, duplicate = ids[b.trace.trace_id]
                if duplicate:  # a log of this trace and time was already stored: the bridge's
                    state, log_id, executed_at = "bridge", None, None
            marks.append((b.trace.trace_id, state, b.span_count, log_id, executed_at))
        if marks:
            await conn.execute(_MARK, (*([m[i] for m in marks] for i in range(5)), client_id))


async def set_content_mode(pool: AsyncConnectionPool, client_id: str, mode: str) -> bool:
    """A tenant's content mode on /v1/traces (hash | scrub). False when the tenant does not exist."""
    async with owner_connection(pool) as conn:
        cur = await conn.execute("UPDATE tenants SET content_mode = %s WHERE client_id = %s", (mode, client_id))
        return cur.rowcount == 1


async def set_ticket_attribute(pool: AsyncConnectionPool, client_id: str, attribute: str | None) -> bool:
    """The span attribute that names a tenant's ticket in /v1/traces (None: flusso.ticket_id,
    then session.id, then the trace id). False when the tenant does not exist."""
    async with owner_connection(pool) as conn:
        cur = await conn.execute("UPDATE tenants SET ticket_attribute = %s WHERE client_id = %s",
                                 (attribute or None, client_id))
        return cur.rowcount == 1
