"""Running an erasure: record it, refuse what it names from now on, find, erase in batches, finish.

Every step is a transaction scoped to the tenant (row-level security), and each is safe to redo:

1. `begin`: the erasure_log row (idempotent on the request id: the same id must ask the same
   thing) and the tombstones of every asked ticket, trace and token, in one transaction.
2. `barrier`: the tenant's erasure lock, exclusively: every store that began before the
   tombstones were committed has committed now (the workflow_logs trigger holds it shared).
3. `resolve`: the logs asked for, and the asked traces with no log yet, become erasure_items (once:
   `matched` is set in the same transaction); the tickets and traces found get tombstones too, and
   after a second barrier `sweep` adds their logs stored in the meantime.
4. `erase_batches`: per batch, every target of store.erasure.targets, the items' deletion and the
   log row's counts and days in ONE transaction: a crash loses nothing and counts nothing twice.
5. `finish`: the per-request targets, then the rollups of the affected days are recomputed, then
   the row is marked done (frozen by its trigger). SQL + psycopg only.
"""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
from psycopg_pool import AsyncConnectionPool

from collector_api.store.alerts.rollups import HOUR_DAYS, recompute_alert_minutes
from collector_api.store.core import locks
from collector_api.store.core.db import APP_ROLE, Scope, owner_connection, scoped_transaction, set_local
from collector_api.store.erasure.targets import KINDS, TARGETS, Target
from collector_api.store.logs.rollups import recompute_days

BATCH = 1000  # items (logs) per transaction


class ErasureConflict(Exception):
    """The request id was used before for a different request."""

    status = 409


_ROW = ("client_id, request_id, kind, asked, asked_sha256, requested_by, status, counts, days, matched,"
        " started_at, finished_at")
_TOMBSTONE = (
    "INSERT INTO erasure_tombstones (client_id, kind, value, request_id)"
    " SELECT %s, k, v, %s FROM unnest(%s::text[], %s::text[]) AS u(k, v) ON CONFLICT DO NOTHING")


async def erasing(conn: psycopg.AsyncConnection) -> None:
    """Declare the transaction an erasure: the only one the RLS role may delete logs and reviews in."""
    await set_local(conn, {"flusso.purpose": "erasure"})


async def begin(pool: AsyncConnectionPool, client: str, request_id: str, asked: dict, asked_sha256: str,
                requested_by: str, kind: str = "erasure") -> dict:
    """The request's erasure_log row (created, or the one already there); ErasureConflict when the
    id was used for a different request. Tombstones are written with a new row."""
    async with scoped_transaction(pool, Scope.tenant(client)) as conn:
        cur = await conn.execute(
            f"INSERT INTO erasure_log (client_id, request_id, kind, asked, asked_sha256, requested_by, counts)"
            f" VALUES (%s, %s, %s, %s::jsonb, %s, %s, %s::jsonb) ON CONFLICT DO NOTHING RETURNING {_ROW}",
            (client, request_id, kind, canonical_json(asked), asked_sha256, requested_by,
             canonical_json(dict.fromkeys(KINDS if kind == "erasure" else retention_kinds(), 0))))
        row = await cur.fetchone()
        if row is None:
            row = await (await conn.execute(f"SELECT {_ROW} FROM erasure_log WHERE client_id = %s"
                                            " AND request_id = %s", (client, request_id))).fetchone()
            if row["asked_sha256"] != asked_sha256 or row["kind"] != kind:
                raise ErasureConflict(f"request_id {request_id!r} was already used for a different request")
            return row
        if kind == "erasure":
            pairs = ([("ticket", v) for v in asked.get("ticket_ids", [])]
                     + [("trace", v) for v in asked.get("trace_ids", [])]
                     + [("token", v) for v in asked.get("tokens", [])])
            if pairs:
                await conn.execute(_TOMBSTONE, (client, request_id, [p[0] for p in pairs], [p[1] for p in pairs]))
        return row


def retention_kinds() -> tuple[str, ...]:
    return tuple(t.kind for t in TARGETS if t.retention) + ("partitions_dropped",)


async def barrier(pool: AsyncConnectionPool, client: str) -> None:
    """Wait until no store of `client` that may have missed the tombstones is in flight."""
    async with scoped_transaction(pool, Scope.tenant(client)) as conn:
        await conn.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (locks.ERASURE_TENANT, client))


_RESOLVE = (
    "INSERT INTO erasure_items (client_id, request_id, log_id, executed_at, trace_id, ticket_id)"
    " SELECT %(client)s, %(req)s, id, executed_at, trace_id, ticket_id FROM ("
    "  SELECT id, executed_at, trace_id, ticket_id FROM workflow_logs"
    "   WHERE client_id = %(client)s AND ticket_id = ANY(%(tickets)s::text[])"
    "  UNION SELECT id, executed_at, trace_id, ticket_id FROM workflow_logs"
    "   WHERE client_id = %(client)s AND trace_id = ANY(%(traces)s::text[])"
    "  UNION SELECT id, executed_at, trace_id, ticket_id FROM workflow_logs"
    "   WHERE client_id = %(client)s AND cardinality(%(patterns)s::text[]) > 0"
    "   AND log_data::text LIKE ANY(%(patterns)s::text[])"
    " ) found ORDER BY executed_at, id")
_OPEN_TRACES = (  # asked traces not stored as a log (yet): their staged spans and state
    "INSERT INTO erasure_items (client_id, request_id, trace_id)"
    " SELECT %(client)s, %(req)s, s.trace_id FROM trace_state s WHERE s.client_id = %(client)s"
    " AND s.trace_id = ANY(%(traces)s::text[]) AND NOT EXISTS (SELECT 1 FROM erasure_items i"
    "  WHERE i.client_id = %(client)s AND i.request_id = %(req)s AND i.trace_id = s.trace_id)")


_FOUND_TOMBSTONES = (  # the tickets and traces found (by token too): refused from now on as well
    "INSERT INTO erasure_tombstones (client_id, kind, value, request_id)"
    " SELECT DISTINCT %(client)s, x.k, x.v, %(req)s FROM erasure_items i,"
    " LATERAL (VALUES ('trace', i.trace_id), ('ticket', i.ticket_id)) AS x(k, v)"
    " WHERE i.client_id = %(client)s AND i.request_id = %(req)s AND x.v IS NOT NULL ON CONFLICT DO NOTHING")
_SWEEP = (  # logs of those tickets and traces stored while the items were written
    "INSERT INTO erasure_items (client_id, request_id, log_id, executed_at, trace_id, ticket_id)"
    " SELECT %(client)s, %(req)s, w.id, w.executed_at, w.trace_id, w.ticket_id FROM erasure_tombstones t"
    " JOIN workflow_logs w ON w.client_id = t.client_id"
    "  AND ((t.kind = 'ticket' AND w.ticket_id = t.value) OR (t.kind = 'trace' AND w.trace_id = t.value))"
    " WHERE t.client_id = %(client)s AND t.request_id = %(req)s AND t.kind IN ('ticket', 'trace')"
    " AND NOT EXISTS (SELECT 1 FROM erasure_items i WHERE i.client_id = %(client)s AND i.request_id = %(req)s"
    "  AND i.log_id = w.id AND i.executed_at = w.executed_at)")


async def sweep(pool: AsyncConnectionPool, row: dict) -> int:
    """After a second barrier: logs of the found tickets and traces not in the work list yet (a store
    that began before their tombstones were committed). Safe to repeat."""
    async with scoped_transaction(pool, Scope.tenant(row["client_id"])) as conn:
        cur = await conn.execute(_SWEEP, {"client": row["client_id"], "req": row["request_id"]})
        return cur.rowcount


async def resolve(pool: AsyncConnectionPool, row: dict) -> int:
    """Write the request's items and the found tickets' and traces' tombstones, once; returns how
    many logs and open traces were found."""
    client, req, asked = row["client_id"], row["request_id"], row["asked"]
    params = {"client": client, "req": req, "tickets": asked.get("ticket_ids", []),
              "traces": asked.get("trace_ids", []), "patterns": like_patterns(asked.get("tokens", []))}
    async with scoped_transaction(pool, Scope.tenant(client)) as conn:
        state = await (await conn.execute("SELECT matched FROM erasure_log WHERE client_id = %s AND request_id = %s"
                                          " FOR UPDATE", (client, req))).fetchone()
        if state["matched"] is not None:
            return state["matched"]
        found = (await conn.execute(_RESOLVE, params)).rowcount
        found += (await conn.execute(_OPEN_TRACES, params)).rowcount
        await conn.execute(_FOUND_TOMBSTONES, params)
        await conn.execute("UPDATE erasure_log SET matched = %s WHERE client_id = %s AND request_id = %s",
                           (found, client, req))
        return found


def like_patterns(tokens: list[str]) -> list[str]:
    r"""'%<token>%' with LIKE's own characters escaped (backslash is LIKE's default escape)."""
    return ["%" + t.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%" for t in tokens]


def needles(items: list[dict], tokens: list[str]) -> list[str]:
    """What a JSON body citing an item contains: its ids as JSON strings, and the tokens."""
    ids = {i["trace_id"] for i in items} | {i["ticket_id"] for i in items if i.get("ticket_id")}
    return sorted(f'"{v}"' for v in ids) + list(tokens)


async def erase_items(conn: psycopg.AsyncConnection, client: str, items: list[dict], tokens: list[str],
                      targets: tuple[Target, ...]) -> dict[str, int]:
    """Run `targets` (per-item) for `items` in the caller's tenant-scoped transaction; rows per kind.
    Tenant targets run first as the RLS role, then owner targets as the owning role."""
    logs = [i for i in items if i.get("log_id") is not None]
    params = {"client": client, "log_ids": [i["log_id"] for i in logs], "times": [i["executed_at"] for i in logs],
              "trace_ids": sorted({i["trace_id"] for i in items}),
              "ticket_ids": sorted({i["ticket_id"] for i in items if i.get("ticket_id")}),
              "needles": needles(items, tokens), "patterns": like_patterns(tokens)}
    return await run_targets(conn, targets, params)


async def run_targets(conn: psycopg.AsyncConnection, targets: tuple[Target, ...], params: dict) -> dict[str, int]:
    """Run `targets` in the caller's tenant-scoped transaction; the owner targets as the owning role,
    then the transaction is back in the tenant's role. (On Citus a worker placement is used by one
    role per transaction: the erasure_log row the caller updates next, co-located with the
    erasure_items it deleted as the tenant, was refused to the owner, "modified in this transaction
    by a different user"; docs/scaling.md.)"""
    counts: dict[str, int] = {}
    await erasing(conn)
    as_owner = False
    for target in sorted(targets, key=lambda t: t.role == "owner"):
        if target.role == "owner" and not as_owner:
            await conn.execute("RESET ROLE")  # the owner targets: the owner (still filtered on client)
            as_owner = True
        cur = await conn.execute(target.sql, params)
        counts[target.kind] = counts.get(target.kind, 0) + max(cur.rowcount, 0)
    if as_owner:
        await set_local(conn, {"role": APP_ROLE})
    return counts


async def add_counts(conn: psycopg.AsyncConnection, client: str, req: str, counts: dict[str, int],
                     moments: set) -> None:
    """Add a batch's counts, and the days (and recent minutes, for the alert rollups) of its erased
    logs' executed_at, to the request's row (in the batch's transaction)."""
    row = await (await conn.execute("SELECT counts, days, minutes, now() AS now FROM erasure_log"
                                    " WHERE client_id = %s AND request_id = %s FOR UPDATE", (client, req))).fetchone()
    total = dict(row["counts"])
    for kind, n in counts.items():
        total[kind] = total.get(kind, 0) + n
    days = {m.astimezone(UTC).date() for m in moments}
    recent = {m.astimezone(UTC).replace(second=0, microsecond=0) for m in moments
              if m >= row["now"] - timedelta(days=HOUR_DAYS)}
    await conn.execute("UPDATE erasure_log SET counts = %s::jsonb, days = %s::date[], minutes = %s::timestamptz[]"
                       " WHERE client_id = %s AND request_id = %s",
                       (canonical_json(total), sorted(set(row["days"]) | days),
                        sorted(set(row["minutes"]) | recent), client, req))


async def erase_batches(pool: AsyncConnectionPool, row: dict, *, batch: int = BATCH,
                        max_batches: int | None = None) -> int:
    """Erase the request's remaining items, `batch` per transaction; returns the batches run.
    Concurrent runners of one request share the work (SKIP LOCKED) without counting twice."""
    client, req, tokens = row["client_id"], row["request_id"], row["asked"].get("tokens", [])
    per_item = tuple(t for t in TARGETS if t.per == "item")
    done = 0
    while max_batches is None or done < max_batches:
        async with scoped_transaction(pool, Scope.tenant(client)) as conn:
            items = await (await conn.execute(
                "SELECT item, log_id, executed_at, trace_id, ticket_id FROM erasure_items WHERE client_id = %s"
                " AND request_id = %s ORDER BY item LIMIT %s FOR UPDATE SKIP LOCKED", (client, req, batch))).fetchall()
            if not items:
                return done
            await conn.execute("DELETE FROM erasure_items WHERE client_id = %s AND request_id = %s AND item = ANY(%s)",
                               (client, req, [i["item"] for i in items]))
            counts = await erase_items(conn, client, items, tokens, per_item)
            moments = {i["executed_at"] for i in items if i["executed_at"] is not None}
            await add_counts(conn, client, req, counts, moments)
        done += 1
    return done


async def erase_asked(pool: AsyncConnectionPool, row: dict) -> None:
    """The per-request targets (what was asked, not the items), counted with the request."""
    targets = tuple(t for t in TARGETS if t.per == "request")
    params = {"client": row["client_id"], "patterns": like_patterns(row["asked"].get("tokens", [])),
              "needles": list(row["asked"].get("tokens", []))}
    async with scoped_transaction(pool, Scope.tenant(row["client_id"])) as conn:
        state = await (await conn.execute("SELECT status FROM erasure_log WHERE client_id = %s AND request_id = %s"
                                          " FOR UPDATE", (row["client_id"], row["request_id"]))).fetchone()
        if state["status"] != "running":
            return
        counts = await run_targets(conn, targets, params)
        await add_counts(conn, row["client_id"], row["request_id"], counts, set())


async def mark_done(pool: AsyncConnectionPool, client: str, req: str) -> dict:
    """Freeze the row (once); returns it as finished."""
    async with scoped_transaction(pool, Scope.tenant(client)) as conn:
        # clock_timestamp() read first, then written as a value: Citus refuses a VOLATILE function
        # in an UPDATE of a distributed table (docs/scaling.md).
        finished = (await (await conn.execute("SELECT clock_timestamp() AS at")).fetchone())["at"]
        await conn.execute("UPDATE erasure_log SET status = 'done', finished_at = %s"
                           " WHERE client_id = %s AND request_id = %s AND status = 'running'", (finished, client, req))
        return await (await conn.execute(f"SELECT {_ROW} FROM erasure_log WHERE client_id = %s AND request_id = %s",
                                         (client, req))).fetchone()


async def run_erasure(pool: AsyncConnectionPool, client: str, request_id: str, asked: dict, asked_sha256: str,
                      requested_by: str, *, batch: int = BATCH) -> dict:
    """Every step, from wherever a previous attempt stopped; returns the finished erasure_log row."""
    row = await begin(pool, client, request_id, asked, asked_sha256, requested_by)
    if row["status"] == "done":
        return row
    await barrier(pool, client)
    await resolve(pool, row)
    await barrier(pool, client)  # the tombstones of what `resolve` found are committed: wait again
    await sweep(pool, row)
    await erase_batches(pool, row, batch=batch)
    await erase_asked(pool, row)
    await recompute_after(pool, client, request_id)
    return await mark_done(pool, client, request_id)


async def resume_stalled(pool: AsyncConnectionPool, *, older_than_s: float = 600.0) -> list[dict]:
    """Finish erasures left running (their caller crashed and never retried) for longer than
    `older_than_s`; each resumes exactly where it stopped (the erasure-resume job)."""
    async with owner_connection(pool) as conn:
        rows = await (await conn.execute(
            f"SELECT {_ROW} FROM erasure_log WHERE kind = 'erasure' AND status = 'running'"
            " AND started_at < now() - make_interval(secs => %s) ORDER BY started_at LIMIT 20",
            (older_than_s,))).fetchall()
    return [await run_erasure(pool, r["client_id"], r["request_id"], r["asked"], r["asked_sha256"],
                              r["requested_by"]) for r in rows]


async def recompute_after(pool: AsyncConnectionPool, client: str, req: str) -> None:
    """The tenant's daily rollups of the days the request erased from, and its alert buckets."""
    async with scoped_transaction(pool, Scope.tenant(client)) as conn:
        row = await (await conn.execute("SELECT days, minutes FROM erasure_log WHERE client_id = %s"
                                        " AND request_id = %s", (client, req))).fetchone()
    if row["days"]:
        await recompute_days(pool, sorted(row["days"]), client)
    if row["minutes"]:
        await recompute_alert_minutes(pool, client, list(row["minutes"]))


def canonical_json(value: object) -> str:
    import json

    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=json_default)


def json_default(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(type(value).__name__)
