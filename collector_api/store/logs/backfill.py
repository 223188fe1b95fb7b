"""The derived-backfill job: logs stored before migration 0013 get their critical path and LLM
usage by model, in batches. The caller passes the derivation (the job registry passes
collector_api.contract.derived.derive_rows, the functions the ingest path calls): this module
only reads the rows to do and writes the figures back.

New logs get both at ingest and never need this; the partial index of 0013 holds only the logs
still to do, so an idle run is one index probe. The batches are store.logs.batched's (one
tenant's rows each, one transaction as the owner, under the rollups' lock, days marked for the
next refresh); its docstring says what DERIVED's two statements must look like.
"""
from __future__ import annotations

from collections.abc import Callable

from psycopg_pool import AsyncConnectionPool

from collector_api.store.logs.batched import Backfill, run_backfill

BATCH = 500
MAX_BATCHES = 40  # per run: at most 20,000 logs, then the other jobs get their turn

DERIVED = Backfill(
    todo=("SELECT id, executed_at, (executed_at AT TIME ZONE 'UTC')::date AS day,"
          " log_data->'trace'->'spans' AS spans, log_data->'trace'->'llm_calls' AS llm_calls"
          " FROM workflow_logs WHERE critical_path IS NULL AND client_id = %s"
          " ORDER BY executed_at LIMIT %s FOR UPDATE SKIP LOCKED"),
    update=("UPDATE workflow_logs w SET critical_path = v.cp::jsonb, usage_by_model = v.usage::jsonb"
            " FROM unnest(%s::bigint[], %s::timestamptz[], %s::text[], %s::text[]) AS v(id, executed_at, cp, usage)"
            " WHERE w.client_id = %s AND w.id = v.id AND w.executed_at = v.executed_at AND w.critical_path IS NULL"),
    what="the critical path and usage")

# rows (each with "spans" and "llm_calls", the log's trace.spans and trace.llm_calls) ->
# (critical_path JSON texts, usage_by_model JSON texts), one of each per row, in order.
Derive = Callable[[list[dict]], tuple[list[str], list[str]]]


async def backfill_derived(pool: AsyncConnectionPool, derive: Derive, *, batch: int = BATCH,
                           max_batches: int = MAX_BATCHES) -> int:
    """Derive (with `derive`, in a thread) and store the figures of up to `batch * max_batches`
    logs stored without them; how many were done."""
    return await run_backfill(pool, DERIVED, derive, batch=batch, max_batches=max_batches)
