"""The session-backfill job: logs stored before migration 0017 get their session key, in
batches. The caller passes the derivation (the job registry passes
collector_api.contract.sessions.session_keys_of, the function the ingest path calls): this
module only reads the rows to do and writes the keys back.

New logs get their key at ingest (`session_done` true) and never need this; the partial index
of 0017 holds only the logs still to do, so an idle run is one index probe. The batches are
store.logs.batched's (one tenant's rows each, one transaction as the owner, under the rollups'
lock; its docstring says what SESSIONS' two statements must look like); the next
rollup refresh recomputes the days they changed, and their recontact figures with the days
before (store.rollups).
"""
from __future__ import annotations

from collections.abc import Callable

from psycopg_pool import AsyncConnectionPool

from collector_api.store.logs.batched import Backfill, run_backfill

BATCH = 1000
MAX_BATCHES = 40  # per run: at most 40,000 logs, then the other jobs get their turn

SESSIONS = Backfill(
    todo=("SELECT id, executed_at, client_id, (executed_at AT TIME ZONE 'UTC')::date AS day,"
          " log_data->'trace'->'ticket' AS ticket FROM workflow_logs WHERE session_done IS NULL AND client_id = %s"
          " ORDER BY executed_at LIMIT %s FOR UPDATE SKIP LOCKED"),
    update=("UPDATE workflow_logs w SET session_key = v.key, session_done = true"
            " FROM unnest(%s::bigint[], %s::timestamptz[], %s::text[]) AS v(id, executed_at, key)"
            " WHERE w.client_id = %s AND w.id = v.id AND w.executed_at = v.executed_at AND w.session_done IS NULL"),
    what="the session key")

# rows (each with "client_id" and "ticket", the log's trace.ticket) -> one session key (or None) per row.
Derive = Callable[[list[dict]], list[str | None]]


async def backfill_sessions(pool: AsyncConnectionPool, derive: Derive, *, batch: int = BATCH,
                            max_batches: int = MAX_BATCHES) -> int:
    """Derive (with `derive`, in a thread) and store the session keys of up to
    `batch * max_batches` logs stored without them; how many were done."""
    return await run_backfill(pool, SESSIONS, lambda rows: (derive(rows),), batch=batch, max_batches=max_batches)
