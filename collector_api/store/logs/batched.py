"""The one runner of the backfill jobs (store.logs.backfill, .session_backfill, .excerpt_backfill): logs
stored before a column existed get it, derived from their stored document, in batches.

A run first finds the tenants with rows to do (one statement over the spec's partial index, all
tenants: on Citus a plain multi-shard SELECT; when there is nothing to do it is one probe of an
empty partial index per partition and nothing else runs), then works tenant by tenant. Each batch
is one transaction as the owner (cross-tenant, policy `owner_all`) under the rollups' lock, holding
ONE tenant's rows: the todo SELECT and the UPDATE both carry `client_id = %s`, so on Citus each is
routed to the tenant's shard (Citus refuses `FOR UPDATE` across shards), and a batch never reads,
locks or writes another tenant's rows. Each batch marks the UTC days it changed as not rolled up,
so the overview and the usage report aggregate them live until the next rollup refresh (a spec
with `rollups=False`, whose column no rollup reads, takes neither the lock nor marks days). A run does
at most `max_batches` batches over all its tenants; the next run finds the rest.

What a `Backfill` spec's strings must be (checked when the spec is made: a spec that does not
match raises ValueError at import, naming what is wrong):

`todo`, exactly this shape, on one line or several (whitespace as you like):

    SELECT <columns> FROM workflow_logs WHERE <pending> AND client_id = %s
    ORDER BY executed_at LIMIT %s FOR UPDATE SKIP LOCKED

  - parameters, in this order: the tenant's client_id, then the batch size. No other `%s`.
  - <columns> returns at least `id`, `executed_at` and `day` (the UTC date:
    `(executed_at AT TIME ZONE 'UTC')::date AS day`), plus whatever the derivation reads.
  - <pending> is the predicate of the partial index that holds only the rows still to do (e.g.
    `critical_path IS NULL`); wrap it in parentheses if it has an OR. The runner takes it out of
    the todo to find the tenants: `SELECT DISTINCT client_id FROM (SELECT client_id FROM
    workflow_logs WHERE <pending> LIMIT n) t`, n = batch * max_batches, so a run with much to do
    reads a bounded number of index entries to find its tenants.
  - the partial index: `(client_id, executed_at) WHERE <pending>` lets a tenant's batch read only
    its own entries; an index on `(executed_at)` alone works but a tenant's batch then steps over
    the other tenants' pending rows (fine for a few thousand, not for a whole table).

`update`, this shape:

    UPDATE workflow_logs w SET <col> = v.<col>, ...
    FROM unnest(%s::bigint[], %s::timestamptz[], <one %s::<type>[] per derived column>)
         AS v(id, executed_at, <col>, ...)
    WHERE w.client_id = %s AND w.id = v.id AND w.executed_at = v.executed_at AND <pending on w>

  - parameters, in this order: the ids, the executed_at values (both from the todo's rows), one
    array per derived column (what `derive` returns, in its order), then LAST the tenant's
    client_id. `client_id = %s` is the last placeholder of the text.
  - repeat <pending> (on `w.`) so a row another writer filled meanwhile is not overwritten.
"""
from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from psycopg_pool import AsyncConnectionPool

from collector_api.store.core import locks
from collector_api.store.core.db import owner_connection
from collector_api.store.logs.rollups import forget_days

logger = logging.getLogger(__name__)

# rows -> one list per derived column, each with one value per row, in order.
Derive = Callable[[list[dict]], Sequence[list]]

_TENANT = "client_id = %s"
_TODO = re.compile(r"SELECT\s.+?\sFROM\s+workflow_logs\s+WHERE\s+(?P<pending>.+?)\s+AND\s+client_id\s*=\s*%s\s+"
                   r"ORDER\s+BY\s+executed_at\s+LIMIT\s+%s\s+FOR\s+UPDATE\s+SKIP\s+LOCKED\s*", re.S | re.I)
_UPDATE_TENANT = re.compile(r"\bw\.client_id\s*=\s*%s", re.I)


@dataclass(frozen=True)
class Backfill:
    todo: str    # SELECT ... WHERE <pending> AND client_id = %s ORDER BY executed_at LIMIT %s FOR UPDATE SKIP LOCKED
    update: str  # UPDATE ... FROM unnest(%s ids, %s executed_at, <arrays>) ... WHERE w.client_id = %s AND ...
    what: str    # "the session key", for the log line
    rollups: bool = True  # False: it writes no column a rollup reads (no rollups' lock, no day marked)

    def __post_init__(self) -> None:
        pending = self.pending  # raises on a todo of another shape
        if " or " in f" {pending.lower()} " and not (pending.startswith("(") and pending.endswith(")")):
            raise ValueError(f"Backfill todo: put the pending predicate in parentheses, it has an OR: {pending!r}")
        if self.todo.count("%s") != 2:
            raise ValueError("Backfill todo: exactly two parameters (client_id = %s, then LIMIT %s)")
        tenant = list(_UPDATE_TENANT.finditer(self.update))
        if len(tenant) != 1 or "%s" in self.update[tenant[0].end():]:
            raise ValueError("Backfill update: `w.client_id = %s` once, as its LAST parameter (after the arrays)")

    @property
    def pending(self) -> str:
        """The todo's predicate of the rows still to do (its partial index's)."""
        match = _TODO.fullmatch(self.todo.strip())
        if not match:
            raise ValueError("Backfill todo: expected SELECT ... FROM workflow_logs WHERE <pending> AND client_id = %s"
                             f" ORDER BY executed_at LIMIT %s FOR UPDATE SKIP LOCKED, got {self.todo!r}")
        return match["pending"]

    @property
    def tenants(self) -> str:
        """The tenants with rows to do among the first `%s` index entries (any order)."""
        return (f"SELECT DISTINCT client_id FROM (SELECT client_id FROM workflow_logs WHERE {self.pending}"
                " LIMIT %s) AS todo")


async def _one_batch(pool: AsyncConnectionPool, spec: Backfill, derive: Derive, client_id: str, batch: int) -> int:
    async with owner_connection(pool) as conn, conn.transaction():
        if spec.rollups:
            # A rollup refresh running now could mark a day rolled up with the figures from before
            # this batch: take its lock (it skips while we hold it; we wait for one in progress).
            await conn.execute("SELECT pg_advisory_xact_lock(%s)", (locks.ROLLUPS,))
        rows = await (await conn.execute(spec.todo, (client_id, batch))).fetchall()
        if not rows:
            return 0
        columns = await asyncio.to_thread(derive, rows)
        await conn.execute(spec.update, ([r["id"] for r in rows], [r["executed_at"] for r in rows], *columns,
                                         client_id))
        if spec.rollups:
            await forget_days(conn, [r["day"] for r in rows])
    return len(rows)


async def _tenants_to_do(pool: AsyncConnectionPool, spec: Backfill, entries: int) -> list[str]:
    async with owner_connection(pool) as conn:
        return sorted(r["client_id"] for r in await (await conn.execute(spec.tenants, (entries,))).fetchall())


async def run_backfill(pool: AsyncConnectionPool, spec: Backfill, derive: Derive, *, batch: int,
                       max_batches: int) -> int:
    """Derive (with `derive`, in a thread) and store the columns of up to `batch * max_batches`
    logs still to do, each batch one tenant's; how many were done."""
    done, left = 0, max_batches
    for client_id in await _tenants_to_do(pool, spec, batch * max_batches):
        while left:
            left -= 1
            n = await _one_batch(pool, spec, derive, client_id, batch)
            done += n
            if n < batch:
                break
        if not left:
            break
    if done:
        logger.info("derived %s of %d older log(s)", spec.what, done)
    return done
