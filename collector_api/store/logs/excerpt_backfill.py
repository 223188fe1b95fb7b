"""The excerpt-backfill job: logs stored before migration 0028 get their draft excerpt, in
batches. The caller passes the derivation (the job registry passes
collector_api.contract.derived.excerpt_rows, the function the ingest path's `draft_excerpt` is):
this module only reads the rows to do and writes the excerpts back.

New logs get theirs at ingest ('' when they have no draft) and never need this; the partial index
of 0028 holds only the logs still to do, tenant first, so an idle run is one index probe and a
tenant's batch reads only its own entries (store.logs.batched: one tenant per batch). The excerpt is read by
no rollup, so its batches leave the rollups alone (`rollups=False`). Until the job reaches a log,
a session's timeline reads its excerpt from the document (store.logs.sessions).
"""
from __future__ import annotations

from collections.abc import Callable

from psycopg_pool import AsyncConnectionPool

from collector_api.store.logs.batched import Backfill, run_backfill

BATCH = 1000
MAX_BATCHES = 40  # per run: at most 40,000 logs, then the other jobs get their turn

EXCERPTS = Backfill(
    todo=("SELECT id, executed_at, (executed_at AT TIME ZONE 'UTC')::date AS day,"
          " log_data->'trace'->'output'->'draft' AS draft FROM workflow_logs WHERE draft_excerpt IS NULL"
          " AND client_id = %s ORDER BY executed_at LIMIT %s FOR UPDATE SKIP LOCKED"),
    update=("UPDATE workflow_logs w SET draft_excerpt = v.excerpt"
            " FROM unnest(%s::bigint[], %s::timestamptz[], %s::text[]) AS v(id, executed_at, excerpt)"
            " WHERE w.client_id = %s AND w.id = v.id AND w.executed_at = v.executed_at AND w.draft_excerpt IS NULL"),
    what="the draft excerpt",
    rollups=False)

# rows (each with "draft", the log's trace.output.draft: any JSON value, or None) -> one excerpt per row.
Derive = Callable[[list[dict]], list[str]]


async def backfill_excerpts(pool: AsyncConnectionPool, derive: Derive, *, batch: int = BATCH,
                            max_batches: int = MAX_BATCHES) -> int:
    """Derive (with `derive`, in a thread) and store the draft excerpts of up to
    `batch * max_batches` logs stored without them; how many were done."""
    return await run_backfill(pool, EXCERPTS, lambda rows: (derive(rows),), batch=batch, max_batches=max_batches)
