"""Staging of received spans (POST /v1/traces) until the assembly job builds their log.

One request's spans are written in ONE transaction as the RLS role, and the request is answered
after COMMIT: an acknowledged span is durable. Caps (spans and bytes per trace, open traces and
staged bytes per tenant) and the late window are decided here, EXACTLY under concurrency: the
transaction first takes the tenant's staging lock (a transaction advisory lock), so one
tenant's requests decide and write one after another and a cap counted by one is seen by the
next (the trace rows' own locks would not cover traces that do not exist yet, nor the tenant's
totals). Other tenants are not held up. `trace_spans` is partitioned by hour of arrival; expiry
drops whole partitions (`staging_upkeep`).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import psycopg
from psycopg import sql
from psycopg_pool import AsyncConnectionPool

from collector_api.store.core import locks
from collector_api.store.core.db import Scope, scoped_transaction

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SpanRow:
    index: int  # position in the request
    client_id: str
    trace_id: str
    span_id: str
    parent_span_id: str | None
    start_ns: int
    end_ns: int | None
    payload: bytes  # sealed (collector_api.traces.sealing)


@dataclass(frozen=True)
class StagingLimits:
    max_spans_per_trace: int
    max_bytes_per_trace: int
    max_open_traces: int  # per tenant
    late_window_s: float
    max_open_bytes: int = 0  # per tenant: payload bytes of its traces awaiting assembly; 0 = no quota


@dataclass
class StageResult:
    staged: int = 0
    refused: list[tuple[int, str, str]] = field(default_factory=list)  # (index, counter label, reason)


_LOCK_STATES = (
    "SELECT trace_id, state, span_count, bytes, assembled_at, now() AS now FROM trace_state"
    " WHERE client_id = %s AND trace_id = ANY(%s) ORDER BY trace_id FOR UPDATE"
)
_TENANT_LOCK = "SELECT pg_advisory_xact_lock(%s, hashtext(%s))"
_OPEN_TOTALS = ("SELECT count(*) AS n, coalesce(sum(bytes), 0)::int8 AS bytes FROM trace_state"
                " WHERE client_id = %s AND state = 'open'")
# The arrays go in binary (%b): psycopg's text form of a bytea[] escapes every payload byte in
# Python (~0.9 ms per span, the largest cost of a request); the binary form is a length prefix.
_INSERT_SPANS = (
    "INSERT INTO trace_spans (client_id, trace_id, span_id, parent_span_id, start_ns, end_ns, payload)"
    " SELECT %s, * FROM unnest(%b::text[], %b::text[], %b::text[], %b::int8[], %b::int8[], %b::bytea[])"
)
_UPSERT_STATES = (
    "INSERT INTO trace_state AS t (client_id, trace_id, span_count, bytes, dropped_spans, root_ended)"
    " SELECT %s, * FROM unnest(%s::text[], %s::int4[], %s::int8[], %s::int4[], %s::bool[])"
    " ON CONFLICT (client_id, trace_id) DO UPDATE SET span_count = t.span_count + excluded.span_count,"
    " bytes = t.bytes + excluded.bytes, dropped_spans = t.dropped_spans + excluded.dropped_spans,"
    " root_ended = t.root_ended OR excluded.root_ended,"
    # excluded.last_seen is the column's DEFAULT now(), this transaction's time: the same as
    # calling now() here, and routable on Citus (no STABLE function in DO UPDATE SET).
    " last_seen = CASE WHEN excluded.span_count > 0 THEN excluded.last_seen ELSE t.last_seen END"
)


async def stage_spans(pool: AsyncConnectionPool, client_id: str, rows: list[SpanRow],
                      limits: StagingLimits) -> StageResult:
    """Stage `rows` (one tenant, one request) in one transaction; returns after COMMIT."""
    result = StageResult()
    if not rows:
        return result
    by_trace: dict[str, list[SpanRow]] = {}
    for row in rows:
        by_trace.setdefault(row.trace_id, []).append(row)
    async with scoped_transaction(pool, Scope.tenant(client_id)) as conn:
        await conn.execute(_TENANT_LOCK, (locks.STAGING_TENANT, client_id))
        cur = await conn.execute(_LOCK_STATES, (client_id, sorted(by_trace)))
        states = {r["trace_id"]: r for r in await cur.fetchall()}
        new = [t for t in by_trace if t not in states]
        room, budget = len(new), None
        if new or limits.max_open_bytes:
            totals = await (await conn.execute(_OPEN_TOTALS, (client_id,))).fetchone()
            room = max(0, limits.max_open_traces - totals["n"])
            budget = max(0, limits.max_open_bytes - totals["bytes"]) if limits.max_open_bytes else None
        accepted, counts = _admit(by_trace, states, new[room:], limits, result, budget)
        if accepted:
            await conn.execute(_INSERT_SPANS, (
                client_id, [r.trace_id for r in accepted], [r.span_id for r in accepted],
                [r.parent_span_id for r in accepted], [r.start_ns for r in accepted],
                [r.end_ns for r in accepted], [r.payload for r in accepted]))
        if counts:
            traces = list(counts)
            await conn.execute(_UPSERT_STATES, (client_id, traces, *(
                [counts[t][i] for t in traces] for i in range(4))))
    result.staged = len(accepted)
    return result


def _admit(by_trace: dict[str, list[SpanRow]], states: dict[str, dict], no_room: list[str],
           limits: StagingLimits, result: StageResult,
           budget: int | None = None) -> tuple[list[SpanRow], dict[str, list]]:
    """The spans within the caps, the tenant's byte `budget` (None: no quota) and the late
    window, and per trace (spans, bytes, dropped, root)."""
    accepted: list[SpanRow] = []
    counts: dict[str, list] = {}
    closed = set(no_room)
    for trace_id, spans in by_trace.items():
        st = states.get(trace_id)
        if trace_id in closed:
            for s in spans:
                result.refused.append((s.index, "cap_open_traces", "the tenant is at its limit of open traces"))
            continue
        if st is not None and st["state"] != "open" and st["assembled_at"] is not None \
                and st["assembled_at"] + timedelta(seconds=limits.late_window_s) < st["now"]:
            for s in spans:
                result.refused.append((s.index, "late", "the trace's late window has closed"))
            continue
        n, size = (st["span_count"], st["bytes"]) if st is not None else (0, 0)
        c = counts.setdefault(trace_id, [0, 0, 0, False])
        for s in spans:
            if n + 1 > limits.max_spans_per_trace:
                result.refused.append((s.index, "cap_spans", "the trace is at its limit of spans"))
                c[2] += 1
            elif size + len(s.payload) > limits.max_bytes_per_trace:
                result.refused.append((s.index, "cap_bytes", "the trace is at its limit of bytes"))
                c[2] += 1
            elif budget is not None and len(s.payload) > budget:
                result.refused.append((s.index, "cap_tenant_bytes", "the tenant is at its quota of staged bytes"))
                c[2] += 1
            else:
                budget = None if budget is None else budget - len(s.payload)
                n, size = n + 1, size + len(s.payload)
                c[0], c[1] = c[0] + 1, c[1] + len(s.payload)
                c[3] = c[3] or s.parent_span_id is None
                accepted.append(s)
    return accepted, counts


# --- upkeep: hourly partitions ahead, expiry by dropping whole partitions ---

def _hour(moment: datetime, offset: int = 0) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0) + timedelta(hours=offset)


def staging_upkeep(dsn: str, retention_s: float, *, hours_ahead: int = 2) -> dict[str, int]:
    """Create the coming hours' partitions; drop those whose spans are all older than
    `retention_s` (the traces' max age plus the late window); delete such rows from DEFAULT and
    trace rows a day past it. Blocking (run it in a thread); as the owner.

    Spans received while their hour had no partition (a fresh install, the job late or down)
    sit in DEFAULT; creating that hour's partition moves them into it (`_create_hour`), so the
    CREATE cannot fail on them and nothing staged is lost. Each hour is its own savepoint: an
    hour that still fails is logged and retried at the next run, and never holds up the others
    nor the drops."""
    now = datetime.now(UTC)
    cutoff = now - timedelta(seconds=retention_s)
    created = dropped = moved = 0
    with psycopg.connect(dsn, autocommit=True) as conn, conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (locks.STAGING_PARTITIONS,))
        existing = {r[0] for r in conn.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
            " JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'trace_spans'")}
        hours = [(f"trace_spans_{start:%Y%m%d%H}", start) for start in (_hour(now, k) for k in range(hours_ahead + 1))]
        to_create = [(name, start) for name, start in hours if name not in existing]
        to_drop = [name for name in sorted(existing)
                   if name != "trace_spans_default" and name.startswith("trace_spans_")
                   and datetime.strptime(name[-10:], "%Y%m%d%H").replace(tzinfo=UTC) + timedelta(hours=1) < cutoff]
        if to_create or to_drop:
            # The parent first, as every insert takes it: creating and dropping partitions then lock
            # DEFAULT, the new partitions and the parent again without a stager holding one of them
            # while it waits for another (a deadlock otherwise: a stager routing rows into an hour
            # created a moment ago, this transaction waiting for the parent for the next hour).
            # Stagers wait for the few statements below; reads go on.
            conn.execute("LOCK TABLE trace_spans IN SHARE ROW EXCLUSIVE MODE")
        for name, start in to_create:
            try:
                with conn.transaction():  # a savepoint: one hour cannot block the others
                    moved += _create_hour(conn, name, start)
                created += 1
            except psycopg.Error as exc:
                logger.warning("staging upkeep: partition %s not created (%s); retried next run",
                               name, type(exc).__name__)
        for name in to_drop:
            conn.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(name)))
            dropped += 1
        conn.execute("DELETE FROM trace_spans_default WHERE received_at < %s", (cutoff,))
        conn.execute("DELETE FROM trace_state WHERE first_seen < %s AND state <> 'open'",
                     (cutoff - timedelta(days=1),))
    if moved:
        logger.info("staging upkeep moved %d spans from trace_spans_default into their hour's partition", moved)
    return {"created": created, "dropped": dropped, "moved": moved}


def _create_hour(conn: psycopg.Connection, name: str, start: datetime) -> int:
    """Create the partition `name` for the hour from `start`, moving that hour's rows out of
    DEFAULT into it first (a new range may not overlap rows sitting in DEFAULT). EXCLUSIVE on
    DEFAULT holds concurrent stagers' inserts there (reads go on) until COMMIT, so no span lands
    in DEFAULT between the move and the CREATE. Returns the number of rows moved."""
    end = start + timedelta(hours=1)
    conn.execute("LOCK TABLE trace_spans_default IN EXCLUSIVE MODE")
    conn.execute("CREATE TEMP TABLE _moved_spans ON COMMIT DROP AS SELECT * FROM trace_spans_default WITH NO DATA")
    cur = conn.execute("WITH m AS (DELETE FROM trace_spans_default WHERE received_at >= %s AND received_at < %s"
                       " RETURNING *) INSERT INTO _moved_spans SELECT * FROM m", (start, end))
    moved = cur.rowcount
    conn.execute(sql.SQL("CREATE TABLE {} PARTITION OF trace_spans FOR VALUES FROM ({}) TO ({})").format(
        sql.Identifier(name), sql.Literal(start), sql.Literal(end)))
    # Straight into the partition: the parent's FORCE ROW LEVEL SECURITY would hold the owner
    # (who runs this, across tenants) to its policies; a partition has none of its own.
    conn.execute(sql.SQL("INSERT INTO {} SELECT * FROM _moved_spans").format(sql.Identifier(name)))
    conn.execute("DROP TABLE _moved_spans")
    return moved
