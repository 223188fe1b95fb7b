"""The alert evaluation's rollups (migration 0012): per tenant and UTC minute ('m', kept 2 days)
and hour ('h', kept 8 days) of `executed_at`, written only here, by the alert job.

Incremental: each refresh recomputes the (tenant, minute) and (tenant, hour) buckets touched by
logs stored since its durable cursor (`alert_rollup_state.watermark`, on the indexed `created_at`).
A log's `created_at` is its transaction's start, but it becomes visible only at commit: the cursor
is never later than the start of the oldest transaction in progress when the refresh begins
(`safe_cursor`; sessions of the application's role, in pg_stat_activity), with LATE_COMMIT_SLACK
as a further overlap for sessions of other roles, which pg_stat_activity does not show us. So an
evaluation reads a few thousand rollup rows and never scans raw logs. Only the tenants whose logs
changed are recomputed: a refresh's work follows what was stored since the last one, not the
other tenants' logs of those minutes.
"""
from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from psycopg_pool import AsyncConnectionPool

from collector_api.store.core import locks
from collector_api.store.core.db import owner_connection
from collector_api.store.logs.stats import FINE_EDGES

logger = logging.getLogger(__name__)

LATE_COMMIT_SLACK = "2 minutes"

MINUTE_DAYS, HOUR_DAYS = 2, 8
GRAINS = {"m": ("minute", timedelta(minutes=1), MINUTE_DAYS), "h": ("hour", timedelta(hours=1), HOUR_DAYS)}

_BUCKET = "date_trunc(%(unit)s, executed_at, 'UTC')"
_WHERE = (f"executed_at >= %(first)s AND executed_at < %(stop)s AND {_BUCKET} = ANY(%(starts)s)"
          " AND client_id = %(client)s")
_TOTALS = (
    "INSERT INTO alert_rollup (grain, client_id, start, total, partial, failed, risk_sum, risk_n, cost_usd)"
    f" SELECT %(grain)s, client_id, {_BUCKET}, count(*), count(*) FILTER (WHERE status = 'PARTIAL'),"
    " count(*) FILTER (WHERE status = 'FAILED'), COALESCE(sum(hallucination_risk), 0), count(hallucination_risk),"
    f" COALESCE(sum(cost_usd), 0) FROM workflow_logs WHERE {_WHERE} GROUP BY 2, 3")
_DURATIONS = (
    "INSERT INTO alert_rollup_duration (grain, client_id, start, bucket, n)"
    f" SELECT %(grain)s, client_id, {_BUCKET}, width_bucket(execution_time_seconds, %(edges)s::float8[]), count(*)"
    f" FROM workflow_logs WHERE {_WHERE} AND execution_time_seconds IS NOT NULL GROUP BY 2, 3, 4")


async def safe_cursor(pool: AsyncConnectionPool) -> datetime:
    """The next watermark: now, or the start of the oldest open transaction if earlier.

    Read as the owner (before switching to the RLS role), which sees its own sessions'
    transactions in pg_stat_activity; the refresh's snapshot is taken after this.
    """
    async with owner_connection(pool) as conn:
        row = await (await conn.execute(
            "SELECT least(now(), (SELECT min(xact_start) FROM pg_stat_activity WHERE datname = current_database()"
            " AND pid <> pg_backend_pid() AND xact_start IS NOT NULL)) AS cursor")).fetchone()
    return row["cursor"]


async def refresh_alert_rollups(pool: AsyncConnectionPool) -> int:
    """Bring the minute and hour rollups up to date; returns how many (tenant, bucket) pairs were
    recomputed.
    One refresh at a time (advisory lock); a concurrent call returns 0 at once."""
    cursor = await safe_cursor(pool)
    async with owner_connection(pool) as conn, conn.transaction():
        locked = await (await conn.execute("SELECT pg_try_advisory_xact_lock(%s) AS ok",
                                           (locks.ALERT_ROLLUPS,))).fetchone()
        if not locked["ok"]:
            return 0
        row = await (await conn.execute(
            "SELECT watermark, now() AS now FROM alert_rollup_state WHERE id = 1 FOR UPDATE")).fetchone()
        now, touched = row["now"], await _touched_minutes(conn, row["watermark"], row["now"])
        done = 0
        for grain, (unit, size, days) in GRAINS.items():
            for client, minutes in sorted(touched.items()):
                starts = sorted({_trunc(m, unit) for m in minutes if m >= now - timedelta(days=days)})
                if starts:
                    await _recompute(conn, client, grain, unit, size, starts)
                    done += len(starts)
            for table in ("alert_rollup", "alert_rollup_duration"):
                await conn.execute(f"DELETE FROM {table} WHERE grain = %s AND start < %s",
                                   (grain, now - timedelta(days=days)))
        await conn.execute("UPDATE alert_rollup_state SET watermark = %s WHERE id = 1", (cursor,))
    if done:
        logger.debug("alert rollups: %d bucket(s) recomputed", done)
    return done


async def recompute_alert_minutes(pool: AsyncConnectionPool, client: str, minutes: list[datetime]) -> None:
    """Recompute the minute and hour buckets (within their reach) holding `minutes` (after an erasure
    of `client`'s logs executed then); nothing when the tenant has no alert rollup rows."""
    async with owner_connection(pool) as conn, conn.transaction():
        if await (await conn.execute("SELECT 1 FROM alert_rollup WHERE client_id = %s LIMIT 1", (client,))
                  ).fetchone() is None:
            return
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (locks.ALERT_ROLLUPS,))
        now = (await (await conn.execute("SELECT now() AS now")).fetchone())["now"]
        for grain, (unit, size, keep) in GRAINS.items():
            starts = sorted({_trunc(m, unit) for m in minutes if m >= now - timedelta(days=keep)})
            if starts:
                await _recompute(conn, client, grain, unit, size, starts)


async def _touched_minutes(conn, watermark: datetime | None, now: datetime) -> dict[str, list[datetime]]:
    """Per tenant, the UTC minutes (of executed_at, within the hour rollups' reach) of its logs
    stored since the cursor; every minute that has logs on the first run."""
    since = "" if watermark is None else f" AND created_at >= %(mark)s - interval '{LATE_COMMIT_SLACK}'"
    rows = await (await conn.execute(
        "SELECT DISTINCT client_id, date_trunc('minute', executed_at, 'UTC') AS m FROM workflow_logs"
        f" WHERE executed_at >= %(first)s{since}",
        {"first": now - timedelta(days=HOUR_DAYS), "mark": watermark})).fetchall()
    touched: dict[str, list[datetime]] = {}
    for r in rows:
        touched.setdefault(r["client_id"], []).append(r["m"])
    return touched


def _trunc(moment: datetime, unit: str) -> datetime:
    moment = moment.astimezone(UTC).replace(second=0, microsecond=0)
    return moment.replace(minute=0) if unit == "hour" else moment


async def _recompute(conn, client: str, grain: str, unit: str, size: timedelta, starts: list[datetime]) -> None:
    """Replace `client`'s rollup rows of `starts` (one grain) with fresh aggregates of its logs."""
    params = {"grain": grain, "unit": unit, "first": starts[0], "stop": starts[-1] + size, "starts": starts,
              "edges": FINE_EDGES, "client": client}
    for table in ("alert_rollup", "alert_rollup_duration"):
        await conn.execute(f"DELETE FROM {table} WHERE grain = %s AND start = ANY(%s) AND client_id = %s",
                           (grain, starts, client))
    await conn.execute(_TOTALS, params)
    await conn.execute(_DURATIONS, params)
