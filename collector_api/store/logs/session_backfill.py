"""The session-backfill job: logs stored before migration 0017 get their session key, in
batches. The caller passes the derivation (the job registry passes
collector_api.contract.sessions.session_keys_of, the function the ingest path calls): this
module only reads the rows to do and writes the keys back.

New logs get their key at ingest (`session_done` true) and never need this; the partial index
of 0017 holds only the logs still to do, so an idle run is one index probe. Each batch is one
transaction as the owner (cross-tenant, policy `owner_all`) under the rollups' lock, and marks
the UTC days it changed as not rolled up: the next rollup refresh recomputes them, and their
recontact figures with the days before (store.rollups).
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from psycopg_pool import AsyncConnectionPool

from collector_api.store.core import locks
from collector_api.store.core.db import owner_connection
from collector_api.store.logs.rollups import forget_days

logger = logging.getLogger(__name__)

BATCH = 1000
MAX_BATCHES = 40  # per run: at most 40,000 logs, then the other jobs get their turn

_TODO = ("SELECT id, executed_at, client_id, (executed_at AT TIME ZONE 'UTC')::date AS day,"
         " log_data->'trace'->'ticket' AS ticket FROM workflow_logs WHERE session_done IS NULL"
         " ORDER BY executed_at LIMIT %s FOR UPDATE SKIP LOCKED")
_UPDATE = ("UPDATE workflow_logs w SET session_key = v.key, session_done = true"
           " FROM unnest(%s::bigint[], %s::timestamptz[], %s::text[]) AS v(id, executed_at, key)"
           " WHERE w.id = v.id AND w.executed_at = v.executed_at AND w.session_done IS NULL")

# rows (each with "client_id" and "ticket", the log's trace.ticket) -> one session key (or None) per row.
Derive = Callable[[list[dict]], list[str | None]]


async def _one_batch(pool: AsyncConnectionPool, derive: Derive, batch: int) -> int:
    async with owner_connection(pool) as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (locks.ROLLUPS,))  # as store.logs.backfill
        rows = await (await conn.execute(_TODO, (batch,))).fetchall()
        if not rows:
            return 0
        keys = await asyncio.to_thread(derive, rows)
        await conn.execute(_UPDATE, ([r["id"] for r in rows], [r["executed_at"] for r in rows], keys))
        await forget_days(conn, [r["day"] for r in rows])
    return len(rows)


async def backfill_sessions(pool: AsyncConnectionPool, derive: Derive, *, batch: int = BATCH,
                            max_batches: int = MAX_BATCHES) -> int:
    """Derive (with `derive`, in a thread) and store the session keys of up to
    `batch * max_batches` logs stored without them; how many were done."""
    done = 0
    for _ in range(max_batches):
        n = await _one_batch(pool, derive, batch)
        done += n
        if n < batch:
            break
    if done:
        logger.info("derived the session key of %d older log(s)", done)
    return done
