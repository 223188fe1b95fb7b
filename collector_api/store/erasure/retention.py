"""Retention per tenant (`tenants.retention_days`): its logs older than that many days (from UTC
midnight) are deleted inside the shared monthly partitions, in bounded batches, and a month
whose every tenant's data has expired is dropped whole. Each run of a tenant is an erasure_log row
of kind `retention` (request id `retention-<cutoff day>`: a crashed run resumes the same row),
with exact counts. The global `flusso-obs retention` (store.logs.partitions) is unchanged.
SQL + psycopg only.
"""
from __future__ import annotations

import hashlib
import logging
from datetime import UTC, date, datetime, timedelta

from psycopg import sql
from psycopg_pool import AsyncConnectionPool

from collector_api.store.core import locks
from collector_api.store.core.db import Scope, owner_connection, scoped_transaction
from collector_api.store.erasure.run import add_counts, begin, canonical_json, erase_items, mark_done
from collector_api.store.erasure.targets import TARGETS
from collector_api.store.logs.partitions import Partition
from collector_api.store.logs.rollups import ROLLUP_TABLES

logger = logging.getLogger(__name__)

BATCH = 5000  # logs per transaction: each batch's locks are held only for its own rows
_LIST_PARTITIONS = (
    "SELECT c.relname AS name, pg_get_expr(c.relpartbound, c.oid) AS bound FROM pg_inherits i"
    " JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent"
    " WHERE p.relname = 'workflow_logs' ORDER BY c.relname")


def cutoff_of(days: int, now: datetime) -> datetime:
    """Logs executed before this (a UTC midnight) have expired."""
    day = now.astimezone(UTC).date() - timedelta(days=days)
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


async def retention_tenants(pool: AsyncConnectionPool) -> dict[str, int]:
    async with owner_connection(pool) as conn:
        rows = await (await conn.execute(
            "SELECT client_id, retention_days FROM tenants WHERE retention_days IS NOT NULL")).fetchall()
    return {r["client_id"]: r["retention_days"] for r in rows}


async def set_retention(pool: AsyncConnectionPool, client: str, days: int | None) -> bool:
    """A tenant's retention in days (None: none of its own). False when the tenant does not exist."""
    async with owner_connection(pool) as conn:
        cur = await conn.execute("UPDATE tenants SET retention_days = %s WHERE client_id = %s", (days, client))
        return cur.rowcount == 1


async def run_retention(pool: AsyncConnectionPool, *, now: datetime | None = None, batch: int = BATCH,
                        max_batches: int = 200) -> list[dict]:
    """One pass over every tenant with a retention: returns the erasure_log rows it finished."""
    now = now or datetime.now(UTC)
    rows: dict[str, dict] = {}
    for client, days in (await retention_tenants(pool)).items():
        row = await _open_run(pool, client, days, cutoff_of(days, now))
        if row is not None:
            rows[client] = row
    await drop_expired_months(pool, {c: r["asked"]["before"] for c, r in rows.items()})
    finished = []
    for client, row in rows.items():
        cutoff = datetime.fromisoformat(row["asked"]["before"])
        if await _delete_batches(pool, row, cutoff, batch, max_batches):
            await _forget_rollups(pool, client, cutoff)
            finished.append(await mark_done(pool, client, row["request_id"]))
    return finished


async def _open_run(pool: AsyncConnectionPool, client: str, days: int, cutoff: datetime) -> dict | None:
    """The tenant's running retention row for `cutoff`, begun when it has expired logs; else None."""
    async with scoped_transaction(pool, Scope.tenant(client)) as conn:
        expired = await (await conn.execute("SELECT 1 FROM workflow_logs WHERE client_id = %s AND executed_at < %s"
                                            " LIMIT 1", (client, cutoff))).fetchone()
        running = await (await conn.execute("SELECT 1 FROM erasure_log WHERE client_id = %s AND request_id = %s"
                                            " AND status = 'running'", (client, _request_id(cutoff)))).fetchone()
    if expired is None and running is None:
        return None
    asked = {"retention_days": days, "before": cutoff.isoformat()}
    digest = hashlib.sha256(canonical_json(asked).encode()).hexdigest()
    row = await begin(pool, client, _request_id(cutoff), asked, digest, "job", kind="retention")
    return row if row["status"] == "running" else None


def _request_id(cutoff: datetime) -> str:
    return f"retention-{cutoff:%Y-%m-%d}"


async def _delete_batches(pool: AsyncConnectionPool, row: dict, cutoff: datetime, batch: int,
                          max_batches: int) -> bool:
    """Delete the tenant's expired logs (and what follows them) `batch` per transaction; True when none is left."""
    client, targets = row["client_id"], tuple(t for t in TARGETS if t.retention)
    for _ in range(max_batches):
        async with scoped_transaction(pool, Scope.tenant(client)) as conn:
            items = await (await conn.execute(
                "SELECT id AS log_id, executed_at, trace_id, ticket_id FROM workflow_logs WHERE client_id = %s"
                " AND executed_at < %s ORDER BY executed_at, id LIMIT %s FOR UPDATE SKIP LOCKED",
                (client, cutoff, batch))).fetchall()
            if not items:
                return True
            counts = await erase_items(conn, client, items, [], targets)
            await add_counts(conn, client, row["request_id"], counts, set())
    return False


async def _forget_rollups(pool: AsyncConnectionPool, client: str, cutoff: datetime) -> None:
    """The tenant's rollup rows of expired days go with its logs (whole UTC days: the cutoff is a midnight).
    The calibration rollups (migration 0021) left already, by trigger, with the reviews' state."""
    async with scoped_transaction(pool, Scope.provider(client)) as conn:
        for table in (*ROLLUP_TABLES, "viewer_daily_recontact_rollup"):
            await conn.execute(sql.SQL("DELETE FROM {} WHERE client_id = %s AND day < %s").format(
                sql.Identifier(table)), (client, cutoff.date()))
    async with owner_connection(pool) as conn, conn.transaction():
        for table in ("alert_rollup", "alert_rollup_duration"):
            await conn.execute(sql.SQL("DELETE FROM {} WHERE client_id = %s AND start < %s").format(
                sql.Identifier(table)), (client, cutoff))


async def drop_expired_months(pool: AsyncConnectionPool, cutoffs: dict[str, str]) -> list[str]:
    """Drop each past month of workflow_logs whose every row belongs to a tenant in `cutoffs` (its
    running retention) and has expired; each tenant's receipt counts its rows, in the same transaction."""
    dropped = []
    async with owner_connection(pool) as conn:
        parts = [p for p in map(_partition, await (await conn.execute(_LIST_PARTITIONS)).fetchall()) if p]
    for part in parts:
        end = datetime(part.end.year, part.end.month, part.end.day, tzinfo=UTC)
        if all(datetime.fromisoformat(c) < end for c in cutoffs.values()):
            continue
        if await _drop_month(pool, part, end, cutoffs):
            dropped.append(part.name)
    if dropped:
        logger.info("retention dropped %s: every tenant's data in them had expired", ", ".join(dropped))
    return dropped


def _partition(row: dict) -> Partition | None:
    if "DEFAULT" in row["bound"]:
        return None
    suffix = row["name"][len("workflow_logs_"):]
    start = date(int(suffix[:4]), int(suffix[5:7]), 1)
    end = date(start.year + start.month // 12, start.month % 12 + 1, 1)
    return Partition("workflow_logs", row["name"], start, end)


async def _drop_month(pool: AsyncConnectionPool, part: Partition, end: datetime, cutoffs: dict[str, str]) -> bool:
    async with owner_connection(pool) as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (locks.PARTITIONS,))
        name = sql.Identifier(part.name)
        await conn.execute(sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(name))
        per_tenant = {r["client_id"]: r["n"] for r in await (await conn.execute(
            sql.SQL("SELECT client_id, count(*) AS n FROM {} GROUP BY 1").format(name))).fetchall()}
        if not per_tenant or any(c not in cutoffs or datetime.fromisoformat(cutoffs[c]) < end for c in per_tenant):
            return False
        for client, n in per_tenant.items():
            counts = {"workflow_logs": n, "partitions_dropped": 1}
            for table, kind in (("ticket_reviews", "reviews"), ("ticket_review_state", "review_states")):
                cur = await conn.execute(sql.SQL("DELETE FROM {} WHERE client_id = %s AND executed_at >= %s"
                                                 " AND executed_at < %s").format(sql.Identifier(table)),
                                         (client, part.start, part.end))
                counts[kind] = cur.rowcount
            await add_counts(conn, client, _request_id(datetime.fromisoformat(cutoffs[client])), counts, set())
        await conn.execute(sql.SQL("DROP TABLE {}").format(name))
        return True
