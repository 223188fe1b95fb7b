"""The derived-backfill job: logs stored before migration 0013 get their critical path and LLM
usage by model, in batches. The caller passes the derivation (the job registry passes
collector_api.contract.derived.derive_rows, the functions the ingest path calls): this module
only reads the rows to do and writes the figures back.

New logs get both at ingest and never need this; the partial index of 0013 holds only the logs
still to do, so an idle run is one index probe. Each batch is one transaction as the owner
(cross-tenant, policy `owner_all`) under the rollups' lock, and marks the UTC days it changed
as not rolled up, so the usage report and the overview aggregate them live until the next
rollup refresh includes the new figures.
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

BATCH = 500
MAX_BATCHES = 40  # per run: at most 20,000 logs, then the other jobs get their turn

_TODO = ("SELECT id, executed_at, (executed_at AT TIME ZONE 'UTC')::date AS day,"
         " log_data->'trace'->'spans' AS spans, log_data->'trace'->'llm_calls' AS llm_calls"
         " FROM workflow_logs WHERE critical_path IS NULL ORDER BY executed_at LIMIT %s FOR UPDATE SKIP LOCKED")
_UPDATE = ("UPDATE workflow_logs w SET critical_path = v.cp::jsonb, usage_by_model = v.usage::jsonb"
           " FROM unnest(%s::bigint[], %s::timestamptz[], %s::text[], %s::text[]) AS v(id, executed_at, cp, usage)"
           " WHERE w.id = v.id AND w.executed_at = v.executed_at AND w.critical_path IS NULL")

# rows (each with "spans" and "llm_calls", the log's trace.spans and trace.llm_calls) ->
# (critical_path JSON texts, usage_by_model JSON texts), one of each per row, in order.
Derive = Callable[[list[dict]], tuple[list[str], list[str]]]


async def _one_batch(pool: AsyncConnectionPool, derive: Derive, batch: int) -> int:
    async with owner_connection(pool) as conn, conn.transaction():
        # A rollup refresh running now could mark a day rolled up with the figures from before
        # this batch: take its lock (it skips while we hold it; we wait for one in progress).
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (locks.ROLLUPS,))
        rows = await (await conn.execute(_TODO, (batch,))).fetchall()
        if not rows:
            return 0
        paths, usages = await asyncio.to_thread(derive, rows)
        await conn.execute(_UPDATE, ([r["id"] for r in rows], [r["executed_at"] for r in rows], paths, usages))
        await forget_days(conn, [r["day"] for r in rows])
    return len(rows)


async def backfill_derived(pool: AsyncConnectionPool, derive: Derive, *, batch: int = BATCH,
                           max_batches: int = MAX_BATCHES) -> int:
    """Derive (with `derive`, in a thread) and store the figures of up to `batch * max_batches`
    logs stored without them; how many were done."""
    done = 0
    for _ in range(max_batches):
        n = await _one_batch(pool, derive, batch)
        done += n
        if n < batch:
            break
    if done:
        logger.info("derived the critical path and usage of %d older log(s)", done)
    return done
