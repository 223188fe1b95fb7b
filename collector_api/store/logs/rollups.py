"""The overview's daily rollups, written only here (by the rollup-refresh job, flusso_obs.jobs).

Incremental: each refresh recomputes the (tenant, UTC day) pairs touched by logs stored since
the previous refresh, found through `created_at` (indexed), plus every day not rolled up yet (for
all tenants). A tenant's rollup rows depend on its own logs only, so the other tenants' rows of a
touched day are left as they are: a refresh's work follows what was stored since the last one, not
how many logs every tenant already has on that day (at 10M logs, ~110,000 a day: recomputing whole
days made ingest ~15 % slower, docs/benchmarks-viewer.md "Ten million logs"). The cursor
(`viewer_rollup_state.watermark`) is durable, so a restart resumes where the last refresh
stopped instead of recomputing everything.

A log's `created_at` is its transaction's start, but it becomes visible only at commit: a
transaction that began before a refresh and commits after it would fall behind the cursor. The
cursor is therefore never later than the start of the oldest transaction in progress when the
refresh begins (sessions of the application's role; pg_stat_activity), with LATE_COMMIT_SLACK
as a further overlap for sessions of other roles, which pg_stat_activity does not show us.
"""
from __future__ import annotations

import logging
from datetime import UTC, date, datetime, timedelta

from psycopg_pool import AsyncConnectionPool

from collector_api.store.core import locks
from collector_api.store.core.db import Scope, owner_connection, scoped_transaction
from collector_api.store.logs.recontact import RECONTACT_LIVE, affected_days
from collector_api.store.logs.stats import DAILY_LIVE, DURATION_LIVE, FINE_EDGES, NODE_LIVE, utc_midnight
from collector_api.store.logs.usage import CRITICAL_LIVE, USAGE_LIVE

logger = logging.getLogger(__name__)

LATE_COMMIT_SLACK = "2 minutes"
ROLLUP_TABLES = ("viewer_daily_rollup", "viewer_daily_duration_rollup", "viewer_daily_node_rollup",
                 "viewer_daily_usage_rollup", "viewer_daily_critical_rollup")  # the last two: migration 0013
DEFAULT_RECONTACT_DAYS = 7  # FLUSSO_RECONTACT_DAYS' default (config.server)
_DAY_FILTER = "executed_at >= %s AND executed_at < %s AND (executed_at AT TIME ZONE 'UTC')::date = ANY(%s)"


async def refresh_rollups(pool: AsyncConnectionPool, *, today: date | None = None,
                          recontact_days: int = DEFAULT_RECONTACT_DAYS) -> int:
    """Bring the daily rollups up to date (up to `today`, UTC); returns the days recomputed.

    The recontact rollup (window `recontact_days`) is recomputed for every changed day AND the
    `recontact_days` days before it (a late ticket can be the recontact of an earlier one), and
    for every day when the window changed. Safe to call from many processes: one refresh runs at
    a time (advisory lock), the others return 0 at once.
    """
    today = today or datetime.now(UTC).date()
    stop = today + timedelta(days=1)  # days before `stop` are rolled up, today included
    cursor = await safe_cursor(pool)
    async with scoped_transaction(pool, Scope.provider()) as conn:
        locked = await (await conn.execute("SELECT pg_try_advisory_xact_lock(%s) AS ok", (locks.ROLLUPS,))).fetchone()
        if not locked["ok"]:
            return 0
        state = await (await conn.execute(
            "SELECT watermark, recontact_days FROM viewer_rollup_state WHERE id = 1 FOR UPDATE")).fetchone()
        bounds = await (await conn.execute(
            "SELECT (min(executed_at) AT TIME ZONE 'UTC')::date AS first FROM workflow_logs")).fetchone()
        first = bounds["first"]
        done = 0
        if first is not None and first < stop:
            done = await _refresh_changed(conn, state, first, stop, recontact_days)
        if first is not None:  # retention dropped older partitions: forget their days too
            for table in (*ROLLUP_TABLES, "viewer_daily_recontact_rollup", "viewer_rollup_days"):
                await conn.execute(f"DELETE FROM {table} WHERE day < %s", (first,))
        await conn.execute("UPDATE viewer_rollup_state SET watermark = %s, recontact_days = %s WHERE id = 1",
                           (cursor, recontact_days))
    if done:
        logger.info("rolled up %d day(s) of workflow logs", done)
    return done


async def _refresh_changed(conn, state, first: date, stop: date, recontact_days: int) -> int:
    """Recompute every day not rolled up yet (all tenants), then each tenant's days touched since
    the watermark, and the recontact rollup of both with the window before each; the days
    recomputed (for any tenant)."""
    fresh = await _unrolled_days(conn, first, stop)
    touched = await _touched(conn, state["watermark"], stop) if state["watermark"] is not None else {}
    if fresh:
        await _recompute(conn, fresh)
    per_client = {c: [d for d in days if d not in fresh and first <= d] for c, days in touched.items()}
    for client, days in sorted(per_client.items()):
        if days:
            await _recompute(conn, days, client)
    if state["recontact_days"] != recontact_days:  # another window: every day, every tenant
        await conn.execute("DELETE FROM viewer_daily_recontact_rollup")
        await recompute_recontact(conn, _days(first, stop), recontact_days)
    else:
        everyone = [d for d in affected_days(fresh, recontact_days) if first <= d]
        await recompute_recontact(conn, everyone, recontact_days)
        for client, days in sorted(per_client.items()):
            again = set(affected_days(days, recontact_days)) - set(everyone)
            await recompute_recontact(conn, [d for d in again if first <= d], recontact_days, client_id=client)
    return len(set(fresh).union(*per_client.values()))


async def recompute_days(pool: AsyncConnectionPool, days: list[date], client: str) -> None:
    """Recompute `client`'s rollups of `days` now (after an erasure: totals must stop counting what
    it erased). Waits for a refresh in progress; days not rolled up yet are left to the refresh.
    The recontact rollup of those days and of the window before each is recomputed too (an erased
    ticket was maybe the later contact of an earlier one), with the window it was built with.
    The calibration rollups (migration 0021) need nothing here: the erasure's delete of the
    reviews' state already took them out, by trigger, in its own transaction."""
    days = sorted(set(days))
    async with scoped_transaction(pool, Scope.provider()) as conn:
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (locks.ROLLUPS,))
        state = await (await conn.execute("SELECT recontact_days FROM viewer_rollup_state WHERE id = 1")).fetchone()
        window = state["recontact_days"] if state and state["recontact_days"] else DEFAULT_RECONTACT_DAYS
        done = [r["day"] for r in await (await conn.execute(
            "SELECT day FROM viewer_rollup_days WHERE day = ANY(%s) ORDER BY day",
            (affected_days(days, window),))).fetchall()]
        if not done:
            return
        asked = set(days)
        own = [d for d in done if d in asked]
        if own:
            await _recompute(conn, own, client)
        await recompute_recontact(conn, done, window, client_id=client)


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


async def _touched(conn, watermark: datetime, stop: date) -> dict[str, list[date]]:
    """Per tenant, the days before `stop` of the logs stored since `watermark` (less the slack)."""
    rows = await (await conn.execute(
        "SELECT DISTINCT client_id, (executed_at AT TIME ZONE 'UTC')::date AS day FROM workflow_logs"
        f" WHERE created_at >= %s - interval '{LATE_COMMIT_SLACK}' AND executed_at < %s",
        (watermark, utc_midnight(stop)))).fetchall()
    touched: dict[str, list[date]] = {}
    for r in rows:
        touched.setdefault(r["client_id"], []).append(r["day"])
    return {c: sorted(days) for c, days in touched.items()}


async def _unrolled_days(conn, first: date, stop: date) -> list[date]:
    """The days in [first, stop) not rolled up yet (new, or forgotten by a backfill)."""
    done = {r["day"] for r in await (await conn.execute(
        "SELECT day FROM viewer_rollup_days WHERE day >= %s AND day < %s", (first, stop))).fetchall()}
    return [d for d in _days(first, stop) if d not in done]


async def _recompute(conn, days: list[date], client: str | None = None) -> None:
    """Replace the rollup rows of `days` (of one tenant with `client`) with fresh aggregates of their logs."""
    params = [utc_midnight(days[0]), utc_midnight(days[-1] + timedelta(days=1)), days]
    where, only = _DAY_FILTER, ""
    if client is not None:  # {where} is the last placeholder of every *_LIVE query
        where, only, params = _DAY_FILTER + " AND client_id = %s", " AND client_id = %s", params + [client]
    for table in ROLLUP_TABLES:
        await conn.execute(f"DELETE FROM {table} WHERE day = ANY(%s){only}", [days] + params[3:])
    await conn.execute(
        "INSERT INTO viewer_daily_rollup (client_id, day, success, partial, failed, conf_sum, conf_n, risk_sum,"
        " risk_n, exec_sum, exec_n, input_tokens, output_tokens, cost_usd, last_ticket_at) "
        + DAILY_LIVE.format(where=where), params)
    await conn.execute("INSERT INTO viewer_daily_duration_rollup (client_id, day, bucket, n) "
                       + DURATION_LIVE.format(where=where), [FINE_EDGES] + params)
    await conn.execute("INSERT INTO viewer_daily_node_rollup (client_id, day, node, ms_sum, n) "
                       + NODE_LIVE.format(where=where), params)
    await conn.execute("INSERT INTO viewer_daily_usage_rollup (client_id, day, model, calls, input_tokens,"
                       " output_tokens, cost_usd) " + USAGE_LIVE.format(where=where), params)
    await conn.execute("INSERT INTO viewer_daily_critical_rollup (client_id, day, node, n) "
                       + CRITICAL_LIVE.format(where=where), params)
    if client is None:
        await conn.execute(
            "INSERT INTO viewer_rollup_days (day, refreshed_at) SELECT unnest(%s::date[]), now()"
            " ON CONFLICT (day) DO UPDATE SET refreshed_at = excluded.refreshed_at", (days,))


async def forget_days(conn, days: list[date]) -> None:
    """Mark `days` as not rolled up (their logs changed in place, e.g. by the derived backfill):
    readers aggregate them live until the next refresh recomputes them."""
    if days:
        await conn.execute("DELETE FROM viewer_rollup_days WHERE day = ANY(%s)", (sorted(set(days)),))


def _days(first: date, stop: date) -> list[date]:
    return [first + timedelta(days=i) for i in range((stop - first).days)]


async def recompute_recontact(conn, days: list[date], window_days: int, *, client_id: str | None = None) -> None:
    """Replace the recontact rollup rows of `days` (of `client_id` only, when given) with fresh
    figures, inside the caller's transaction (provider scope or owner)."""
    days = sorted(set(days))
    if not days:
        return
    tenant, tenant_params = (" AND client_id = %s", [client_id]) if client_id is not None else ("", [])
    await conn.execute(f"DELETE FROM viewer_daily_recontact_rollup WHERE day = ANY(%s){tenant}",
                       [days, *tenant_params])
    params = [window_days, utc_midnight(days[0]), utc_midnight(days[-1] + timedelta(days=1)), days, *tenant_params]
    await conn.execute("INSERT INTO viewer_daily_recontact_rollup (client_id, day, resolved, recontacted) "
                       + RECONTACT_LIVE.format(where=_DAY_FILTER + tenant), params)


async def recompute_tenant_recontact(pool: AsyncConnectionPool, client_id: str, ticket_days: list[date],
                                     window_days: int = DEFAULT_RECONTACT_DAYS) -> list[date]:
    """Recompute `client_id`'s recontact rollup after its tickets on `ticket_days` changed or were
    removed (erasure): those days and the `window_days` before each (recontact.affected_days).
    Waits for a rollup refresh in progress; returns the days recomputed."""
    days = affected_days(list(ticket_days), window_days)
    async with scoped_transaction(pool, Scope.provider()) as conn:
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (locks.ROLLUPS,))
        await recompute_recontact(conn, days, window_days, client_id=client_id)
    return days
