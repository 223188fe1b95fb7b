"""The alert evaluation's rollups (migration 0012): per tenant and UTC minute ('m', kept 2 days)
and hour ('h', kept 8 days) of `executed_at`, written only here, by the alert job (as the owner).

Additive (migration 0030, the design of the overview's rollups, store.logs.rollups): triggers on
`workflow_logs` queue each new log's key in `alert_rollup_pending`, in the transaction that stores
it, and a (tenant, UTC minute) whose stored log changed in place in a column these rollups read (a
trace re-assembled) or was erased. A refresh aggregates just the queued logs and adds them to the
minute and hour rows (`n = n + delta`); it recomputes whole only the minutes and hours of the
queued (tenant, minute) markers, and adds no queued log to those. So a refresh's work follows what
was stored since the last one, not how many logs a touched minute or hour already holds, and an
evaluation reads a few thousand rollup rows and never scans raw logs.

Exactly once: the queue rows a refresh consumes and the logs it counts come from one REPEATABLE
READ snapshot, taken after the alert rollups' lock (`db.locked_snapshot`), and the rows it consumed
are deleted in that transaction. A log and its queue row commit together, so a log committing
during a refresh is invisible to it, queue row included, and counted by the next: an evaluation
sees a log as soon as one refresh has run after its commit. A queued log erased before the refresh
joins nothing.
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta

from psycopg_pool import AsyncConnectionPool

from collector_api.store.core import additive, locks
from collector_api.store.core.db import locked_snapshot, owner_connection
from collector_api.store.logs.stats import FINE_EDGES

logger = logging.getLogger(__name__)

MINUTE_DAYS, HOUR_DAYS = 2, 8  # HOUR_DAYS: also the triggers' reach (migration 0030)
# alert_rollup_state.watermark, the cursor of the refresh before 0030, as every refresh now leaves
# it: a collector of an older version running beside (an upgrade) finds no log stored after it.
RETIRED_WATERMARK = "9999-12-31 00:00:00+00"

# Each grain: its bucket (date_trunc unit), its length and its reach (buckets starting earlier go).
_GRAINS = ("SELECT * FROM (VALUES"
           f" ('m', 'minute', interval '1 minute', %(now)s::timestamptz - interval '{MINUTE_DAYS} days'),"
           f" ('h', 'hour', interval '1 hour', %(now)s::timestamptz - interval '{HOUR_DAYS} days'))"
           " AS g(grain, unit, size, reach)")
_FIGURES = ("count(*), count(*) FILTER (WHERE x.status = 'PARTIAL'), count(*) FILTER (WHERE x.status = 'FAILED'),"
            " COALESCE(sum(x.hallucination_risk), 0), count(x.hallucination_risk), COALESCE(sum(x.cost_usd), 0)")
_TOTALS = "alert_rollup AS r (grain, client_id, start, total, partial, failed, risk_sum, risk_n, cost_usd)"
_DURATIONS = "alert_rollup_duration AS r (grain, client_id, start, bucket, n)"
_HISTOGRAM = "width_bucket(x.execution_time_seconds, %(edges)s::float8[])"

# The (grain, tenant, bucket) to recompute whole: each queued marker's minute and hour in reach
# (every queued row's, after an older collector's refresh ran: it may have counted them already).
_DIRTY = (
    "CREATE TEMP TABLE alert_dirty ON COMMIT DROP AS"
    " SELECT DISTINCT g.grain, g.size, p.client_id, date_trunc(g.unit, p.minute, 'UTC') AS start"
    f" FROM alert_rollup_pending p CROSS JOIN ({_GRAINS}) g"
    " WHERE (p.log_id IS NULL OR %(legacy)s) AND date_trunc(g.unit, p.minute, 'UTC') >= g.reach")
# The queued new logs (what the rollups read of them), each with its bucket of each grain in reach
# that is not recomputed whole. One index probe per queued log (LIMIT 1 keeps the subquery a
# nested loop, the partition found by executed_at at run time): the queue's statistics are those
# of whatever it last held, and a hash join planned on them read every log of the table.
_DELTA = (
    "CREATE TEMP TABLE alert_delta ON COMMIT DROP AS"
    " WITH q AS MATERIALIZED (SELECT p.minute, w.* FROM alert_rollup_pending p CROSS JOIN LATERAL ("
    "   SELECT l.client_id, l.status, l.hallucination_risk, l.cost_usd, l.execution_time_seconds"
    "   FROM workflow_logs l WHERE l.id = p.log_id AND l.executed_at = p.executed_at AND l.client_id = p.client_id"
    "   LIMIT 1) w WHERE p.log_id IS NOT NULL)"
    " SELECT g.grain, q.client_id, date_trunc(g.unit, q.minute, 'UTC') AS start, q.status, q.hallucination_risk,"
    " q.cost_usd, q.execution_time_seconds"
    f" FROM q CROSS JOIN ({_GRAINS}) g WHERE date_trunc(g.unit, q.minute, 'UTC') >= g.reach"
    " AND NOT EXISTS (SELECT 1 FROM alert_dirty d WHERE d.grain = g.grain AND d.client_id = q.client_id"
    "   AND d.start = date_trunc(g.unit, q.minute, 'UTC'))")
# Whole: every log of each dirty bucket (the tenant's index on (client_id, executed_at)).
_WHOLE = ("FROM alert_dirty d JOIN workflow_logs x ON x.client_id = d.client_id AND x.executed_at >= d.start"
          " AND x.executed_at < d.start + d.size")
_WRITES = (
    f"INSERT INTO {_TOTALS} SELECT d.grain, d.client_id, d.start, {_FIGURES} {_WHOLE} GROUP BY 1, 2, 3",
    f"INSERT INTO {_DURATIONS} SELECT d.grain, d.client_id, d.start, {_HISTOGRAM}, count(*) {_WHOLE}"
    " AND x.execution_time_seconds IS NOT NULL GROUP BY 1, 2, 3, 4",
    f"INSERT INTO {_TOTALS} SELECT x.grain, x.client_id, x.start, {_FIGURES} FROM alert_delta x GROUP BY 1, 2, 3"
    " ON CONFLICT (grain, start, client_id) DO UPDATE SET "
    + additive.added("total", "partial", "failed", "risk_sum", "risk_n", "cost_usd"),
    f"INSERT INTO {_DURATIONS} SELECT x.grain, x.client_id, x.start, {_HISTOGRAM}, count(*) FROM alert_delta x"
    " WHERE x.execution_time_seconds IS NOT NULL GROUP BY 1, 2, 3, 4"
    " ON CONFLICT (grain, start, client_id, bucket) DO UPDATE SET " + additive.added("n"),
)


async def refresh_alert_rollups(pool: AsyncConnectionPool) -> int:
    """Bring the minute and hour rollups up to date; returns how many (grain, tenant, bucket)
    rows were changed (added to or recomputed).
    One refresh at a time (advisory lock); a concurrent call returns 0 at once."""
    async with locked_snapshot(pool, None, locks.ALERT_ROLLUPS, wait=False) as conn:
        if conn is None:
            return 0
        state = await (await conn.execute(
            "SELECT watermark IS DISTINCT FROM %s::timestamptz AS legacy, now() AS now FROM alert_rollup_state"
            " WHERE id = 1", (RETIRED_WATERMARK,))).fetchone()
        params = {"now": state["now"], "legacy": state["legacy"], "edges": FINE_EDGES}
        done = await _apply_queue(conn, params)
        await conn.execute("DELETE FROM alert_rollup_pending")  # what this snapshot sees: consumed
        for grain, days in (("m", MINUTE_DAYS), ("h", HOUR_DAYS)):  # expired: a range of each key
            for table in ("alert_rollup", "alert_rollup_duration"):
                await conn.execute(f"DELETE FROM {table} WHERE grain = %s AND start < %s",
                                   (grain, state["now"] - timedelta(days=days)))
        if state["legacy"]:
            await conn.execute("UPDATE alert_rollup_state SET watermark = %s WHERE id = 1", (RETIRED_WATERMARK,))
    if done:
        logger.debug("alert rollups: %d bucket(s) changed", done)
    return done


async def _apply_queue(conn, params: dict) -> int:
    """Recompute the dirty buckets whole, add the queued logs to the others; the buckets changed."""
    await conn.execute(_DIRTY, params)
    await conn.execute("ANALYZE alert_dirty")
    await conn.execute(_DELTA, params)
    for table in ("alert_rollup", "alert_rollup_duration"):
        await conn.execute(f"DELETE FROM {table} t USING alert_dirty d WHERE t.grain = d.grain"
                           " AND t.client_id = d.client_id AND t.start = d.start")
    for statement in _WRITES:
        await conn.execute(statement, params)
    row = await (await conn.execute(
        "SELECT count(*) AS n FROM (SELECT grain, client_id, start FROM alert_dirty"
        " UNION SELECT grain, client_id, start FROM alert_delta) b")).fetchone()
    return row["n"]


async def recompute_alert_minutes(pool: AsyncConnectionPool, client: str, minutes: list[datetime]) -> None:
    """Have the next refresh recompute `client`'s minute and hour buckets (within reach) holding
    `minutes` whole (after an erasure of its logs executed then): queued, not recomputed here, as
    a recompute now would count the tenant's logs still queued, which the next refresh adds."""
    async with owner_connection(pool) as conn:
        await conn.execute(
            "INSERT INTO alert_rollup_pending (client_id, minute)"
            " SELECT DISTINCT %s, date_trunc('minute', m, 'UTC') FROM unnest(%s::timestamptz[]) AS m"
            " WHERE m >= now() - make_interval(days => %s)", (client, minutes, HOUR_DAYS))
