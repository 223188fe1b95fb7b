"""Writes the collector's ingest counters (migration 0008): the `ingest-counters` job's flush
and their retention. SQL + psycopg only; the counting itself is collector_api.telemetry.counters.

A flush is one transaction as the owning role (it spans tenants, including '' for requests no
key identified): counts are added to the row of their tenant, reason and minute, so any number
of processes flush into the same rows, and each key's `last_used_at` moves forward only.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import psycopg
from psycopg_pool import AsyncConnectionPool

from collector_api.store.core.db import owner_connection

CountKey = tuple[str, datetime, str]  # (client_id, minute, reason)


@dataclass
class CountBatch:
    """Counts taken from one process's memory: {(tenant, minute, reason): [count, last_at]} and
    {key_id: last used}."""

    counts: dict[CountKey, list] = field(default_factory=dict)
    keys: dict[str, datetime] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.counts or self.keys)


_UPSERT = (
    "INSERT INTO ingest_counts AS c (client_id, minute, reason, count, last_at)"
    " SELECT * FROM unnest(%s::text[], %s::timestamptz[], %s::text[], %s::bigint[], %s::timestamptz[])"
    " ON CONFLICT (client_id, minute, reason) DO UPDATE"
    " SET count = c.count + excluded.count, last_at = GREATEST(c.last_at, excluded.last_at)")
_KEYS = (
    "UPDATE api_keys AS k SET last_used_at = GREATEST(k.last_used_at, v.used)"
    " FROM unnest(%s::text[], %s::timestamptz[]) AS v(key_id, used) WHERE k.key_id = v.key_id")


async def flush_counts(pool: AsyncConnectionPool, batch: CountBatch) -> int:
    """Add `batch` to the table in one transaction; the number of rows upserted. Raises
    StoreUnavailable (or psycopg's error) with nothing written, so the caller can keep the batch."""
    if not batch:
        return 0
    items = sorted(batch.counts.items())  # one order for every process: no deadlock between flushes
    columns = [list(col) for col in zip(*((t, m, r, v[0], v[1]) for (t, m, r), v in items), strict=True)] \
        if items else [[], [], [], [], []]
    keys = sorted(batch.keys.items())
    async with owner_connection(pool) as conn, conn.transaction():
        if items:
            await conn.execute(_UPSERT, columns)
        if keys:
            await conn.execute(_KEYS, ([k for k, _ in keys], [t for _, t in keys]))
    return len(items)


def delete_counts_before(conn: psycopg.Connection, cutoff: datetime) -> int:
    """Retention: drop the counter rows of minutes before `cutoff` (the logs' retention cutoff)."""
    with conn.transaction():
        cur = conn.execute("DELETE FROM ingest_counts WHERE minute < %s", (cutoff,))
        return cur.rowcount
