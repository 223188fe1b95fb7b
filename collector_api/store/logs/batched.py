"""The one runner of the backfill jobs (store.logs.backfill, store.logs.session_backfill): logs
stored before a column existed get it, derived from their stored document, in batches.

A `Backfill` names the rows to do (a SELECT ... LIMIT %s FOR UPDATE SKIP LOCKED over a partial
index that holds only them, returning at least `id`, `executed_at` and the UTC `day`) and the
UPDATE writing the derived columns back (parameters: the ids, the executed_at values, then one
array per derived column). Each batch is one transaction as the owner (cross-tenant, policy
`owner_all`) under the rollups' lock, and marks the UTC days it changed as not rolled up, so the
overview and the usage report aggregate them live until the next rollup refresh.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from psycopg_pool import AsyncConnectionPool

from collector_api.store.core import locks
from collector_api.store.core.db import owner_connection
from collector_api.store.logs.rollups import forget_days

logger = logging.getLogger(__name__)

# rows -> one list per derived column, each with one value per row, in order.
Derive = Callable[[list[dict]], Sequence[list]]


@dataclass(frozen=True)
class Backfill:
    todo: str    # SELECT id, executed_at, day, ... LIMIT %s FOR UPDATE SKIP LOCKED
    update: str  # UPDATE ... FROM unnest(%s::bigint[], %s::timestamptz[], <one array per column>)
    what: str    # "the session key", for the log line
    rollups: bool = True  # False: it writes no column a rollup reads (no rollups' lock, no day marked)


async def _one_batch(pool: AsyncConnectionPool, spec: Backfill, derive: Derive, batch: int) -> int:
    async with owner_connection(pool) as conn, conn.transaction():
        if spec.rollups:
            # A rollup refresh running now could mark a day rolled up with the figures from before
            # this batch: take its lock (it skips while we hold it; we wait for one in progress).
            await conn.execute("SELECT pg_advisory_xact_lock(%s)", (locks.ROLLUPS,))
        rows = await (await conn.execute(spec.todo, (batch,))).fetchall()
        if not rows:
            return 0
        columns = await asyncio.to_thread(derive, rows)
        await conn.execute(spec.update, ([r["id"] for r in rows], [r["executed_at"] for r in rows], *columns))
        if spec.rollups:
            await forget_days(conn, [r["day"] for r in rows])
    return len(rows)


async def run_backfill(pool: AsyncConnectionPool, spec: Backfill, derive: Derive, *, batch: int,
                       max_batches: int) -> int:
    """Derive (with `derive`, in a thread) and store the columns of up to `batch * max_batches`
    logs still to do; how many were done."""
    done = 0
    for _ in range(max_batches):
        n = await _one_batch(pool, spec, derive, batch)
        done += n
        if n < batch:
            break
    if done:
        logger.info("derived %s of %d older log(s)", spec.what, done)
    return done
