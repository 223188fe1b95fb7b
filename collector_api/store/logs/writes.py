"""The write path: one request's workflow logs in one transaction, idempotent."""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, replace

import orjson
import psycopg
from psycopg_pool import AsyncConnectionPool

from collector_api.store.logs.rows import LogRow
from collector_api.store.logs.store_lock import store_transaction

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class StoredLog:
    id: int
    trace_id: str
    duplicate: bool
    erased: bool = False  # refused: its ticket, trace or a person token in it was erased (migration 0018)


_COLUMNS = ("client_id", "ticket_id", "status", "executed_at", "trace_id", "environment", "workflow_version",
            "resolution_status", "overall_confidence", "hallucination_risk", "react_iterations",
            "execution_time_seconds", "input_tokens", "output_tokens", "cost_usd", "complete", "node_durations",
            "log_data", "critical_path", "usage_by_model", "session_key", "experiment_id", "dataset_item_id",
            "draft_excerpt")
_TYPES = ("text", "text", "text", "timestamptz", "text", "text", "text", "text", "float8", "float8", "int4",
          "float8", "int8", "int8", "float8", "bool", "text", "text", "text", "text", "text", "text", "int8",
          "text")
_JSONB = ("node_durations", "log_data", "critical_path", "usage_by_model")  # sent as JSON text, cast on the server

_INSERT = (
    f"INSERT INTO workflow_logs ({', '.join(_COLUMNS)})"
    f" SELECT {', '.join(c if c not in _JSONB else f'{c}::jsonb' for c in _COLUMNS)}"
    f" FROM unnest({', '.join(f'%b::{t}[]' for t in _TYPES)}) AS u({', '.join(_COLUMNS)})"
    " ON CONFLICT (client_id, trace_id, executed_at) DO NOTHING RETURNING id, trace_id, executed_at"
)
_EXISTING = (
    "SELECT w.id, w.trace_id, w.executed_at FROM workflow_logs w"
    " JOIN unnest(%b::text[], %b::timestamptz[]) AS k(trace_id, executed_at)"
    " ON w.trace_id = k.trace_id AND w.executed_at = k.executed_at WHERE w.client_id = %s"
)


def row_values(row: LogRow) -> tuple:
    """The row's values in `_COLUMNS` order, JSON columns as text (also what a COPY would send)."""
    nodes = orjson.dumps(row.node_durations).decode() if row.node_durations else None
    return (row.client_id, row.ticket_id, row.status, row.executed_at, row.trace_id, row.environment,
            row.workflow_version, row.resolution_status, row.overall_confidence, row.hallucination_risk,
            row.react_iterations, row.execution_time_seconds, row.input_tokens, row.output_tokens, row.cost_usd,
            row.complete, nodes, row.log_json, row.critical_path, row.usage_by_model, row.session_key,
            row.experiment.id if row.experiment else None, row.experiment.item_id if row.experiment else None,
            row.draft_excerpt)


async def insert_workflow_logs(pool: AsyncConnectionPool, client_id: str, rows: list[LogRow]) -> list[StoredLog]:
    """Store `rows` of one tenant in one transaction; returns one StoredLog per input row, in order.

    A row whose (client_id, trace_id, executed_at) is already stored is not written again: its
    StoredLog carries the existing id and `duplicate=True`. Returns only after COMMIT.
    """
    if not rows:
        return []
    if any(r.client_id != client_id for r in rows):
        raise ValueError("every row must belong to the transaction's tenant")
    try:
        return await _insert(pool, client_id, rows)
    except psycopg.DataError as exc:  # SQLSTATE class 22: PostgreSQL refused a value
        if all(r.log_json_canonical for r in rows):
            raise
        logger.info("a sender's JSON text was refused (%s); storing our own serialization instead", exc)
        rows = await asyncio.to_thread(lambda: [canonical(r) for r in rows])  # up to 20 MB of JSON: off the loop
        return await _insert(pool, client_id, rows)


async def insert_isolating(pool: AsyncConnectionPool, client_id: str,
                           rows: list[LogRow]) -> tuple[list[StoredLog], list[tuple[LogRow, str]]]:
    """insert_workflow_logs, except that a row PostgreSQL refuses (even in our own serialization)
    does not take the others down with it: the batch is then written row by row, each in its own
    transaction, and the refused rows come back with PostgreSQL's reason."""
    try:
        return await insert_workflow_logs(pool, client_id, rows), []
    except psycopg.DataError as exc:
        if len(rows) == 1:
            return [], [(rows[0], str(exc).splitlines()[0][:200])]
    stored, refused = [], []
    for row in rows:
        try:
            stored += await insert_workflow_logs(pool, client_id, [row])
        except psycopg.DataError as exc:
            refused.append((row, str(exc).splitlines()[0][:200]))
    return stored, refused


# An experiment is born with its first log (docs/experiments.md): registered in the logs' transaction.
_EXPERIMENTS = ("INSERT INTO experiments (client_id, id, name, dataset_id, dataset_name)"
                " SELECT %s, * FROM unnest(%s::text[], %s::text[], %s::int8[], %s::text[])"
                " ON CONFLICT (client_id, id) DO NOTHING")


async def register_experiments(conn: psycopg.AsyncConnection, client_id: str, rows: list[LogRow]) -> None:
    """Record the experiments `rows` were run in (nothing to do for production logs)."""
    seen = {r.experiment.id: r.experiment for r in rows if r.experiment is not None}
    if not seen:
        return
    tags = list(seen.values())
    await conn.execute(_EXPERIMENTS, (client_id, [t.id for t in tags], [t.name for t in tags],
                                      [t.dataset_id for t in tags], [t.dataset_name for t in tags]))


def canonical(row: LogRow) -> LogRow:
    """The row with its document re-serialized by orjson (numbers as doubles, compact)."""
    if row.log_json_canonical:
        return row
    return replace(row, log_json=orjson.dumps(orjson.loads(row.log_json)).decode(), log_json_canonical=True)


async def _insert(pool: AsyncConnectionPool, client_id: str, rows: list[LogRow]) -> list[StoredLog]:
    async with store_transaction(pool, client_id) as conn:
        return await insert_rows(conn, client_id, rows)


async def insert_rows(conn: psycopg.AsyncConnection, client_id: str, rows: list[LogRow]) -> list[StoredLog]:
    """insert_workflow_logs inside the caller's transaction (scoped to `client_id`), so that
    other writes can commit with the logs (the trace-assembly job marks its traces in it)."""
    if not rows:
        return []
    columns = [list(col) for col in zip(*map(row_values, rows), strict=False)]
    cur = await conn.execute(_INSERT, columns)
    await register_experiments(conn, client_id, rows)
    inserted = {(r["trace_id"], r["executed_at"]): r["id"] for r in await cur.fetchall()}
    missing = {(r.trace_id, r.executed_at) for r in rows} - inserted.keys()
    existing = {}
    if missing:
        traces, times = zip(*missing, strict=False)
        cur = await conn.execute(_EXISTING, (list(traces), list(times), client_id))
        existing = {(r["trace_id"], r["executed_at"]): r["id"] for r in await cur.fetchall()}
    result, first_seen = [], set()
    for r in rows:
        key = (r.trace_id, r.executed_at)
        if key in inserted and key not in first_seen:
            first_seen.add(key)
            result.append(StoredLog(inserted[key], r.trace_id, duplicate=False))
        elif key in inserted or key in existing:
            result.append(StoredLog(inserted.get(key) or existing[key], r.trace_id, duplicate=True))
        else:  # skipped by the erasure trigger: neither stored now nor before
            result.append(StoredLog(0, r.trace_id, duplicate=True, erased=True))
    return result
