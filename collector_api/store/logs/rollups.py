"""The overview's daily rollups, written only here (by the rollup-refresh job, flusso_obs.jobs).

Additive: a refresh's work follows what was stored since the last one. Triggers on
`workflow_logs` (migration 0025) queue each new log's key in `viewer_rollup_pending`, in the
transaction that stores it, and a (tenant, UTC day) whose stored log changed in place in a column
a rollup reads (a trace re-assembled, the derived backfill). A refresh aggregates just the queued
logs and adds them to the rollup rows (`n = n + delta`); it recomputes whole only the queued
(tenant, day) pairs changed in place and the days not rolled up yet (for all tenants). The
recontact rollup is added to as well (`_RECONTACT_DELTA`: a late ticket can make the latest earlier
ticket of its session recontacted), except over the window before a day recomputed whole, where it
is recomputed too (for all tenants on a new day, for that tenant on a day changed in place).

Exactly once: the queue rows a refresh consumes and the logs it counts come from one REPEATABLE
READ snapshot, taken after the rollups' lock (`db.locked_snapshot`), and the rows it consumed are
deleted in that transaction. A log and its queue row commit together, so a log committing during a
refresh is invisible to it, queue row included, and counted by the next. A recompute of a tenant's
days outside a refresh (recompute_days, after an erasure) queues them to be recomputed whole by the
next refresh as well, which then adds no queued log to them. A queued log erased before the refresh
joins nothing.
"""
from __future__ import annotations

import logging
from datetime import UTC, date, datetime, timedelta

from psycopg_pool import AsyncConnectionPool

from collector_api.store.core import additive, locks
from collector_api.store.core.db import Scope, locked_snapshot, scoped_transaction
from collector_api.store.logs.recontact import RECONTACT_LIVE, affected_days
from collector_api.store.logs.stats import DAILY_LIVE, DURATION_LIVE, FINE_EDGES, NODE_LIVE, utc_midnight
from collector_api.store.logs.usage import CRITICAL_LIVE, USAGE_LIVE

logger = logging.getLogger(__name__)

DEFAULT_RECONTACT_DAYS = 7  # FLUSSO_RECONTACT_DAYS' default (config.server)
_DAY_FILTER = "executed_at >= %s AND executed_at < %s AND (executed_at AT TIME ZONE 'UTC')::date = ANY(%s)"
_BIGINT = "9223372036854775807"


# Each rollup table: its name, the columns the *_LIVE query (its source) fills, its key, and how
# the figures of new logs add to a stored row (ON CONFLICT of the additive refresh).
_WRITES = (
    ("viewer_daily_rollup", "client_id, day, success, partial, failed, conf_sum, conf_n, risk_sum, risk_n,"
     " exec_sum, exec_n, input_tokens, output_tokens, cost_usd, last_ticket_at", DAILY_LIVE, "day, client_id",
     additive.added("success", "partial", "failed", "conf_sum", "conf_n", "risk_sum", "risk_n", "exec_sum",
                    "exec_n", "cost_usd") + ", last_ticket_at = greatest(r.last_ticket_at, excluded.last_ticket_at), "
     # clamped as DAILY_LIVE clamps its sums: one failing cast would stop the job for every tenant
     + ", ".join(f"{c} = LEAST(r.{c}::numeric + excluded.{c}, {_BIGINT})::bigint"
                 for c in ("input_tokens", "output_tokens"))),
    ("viewer_daily_duration_rollup", "client_id, day, bucket, n", DURATION_LIVE, "day, client_id, bucket",
     additive.added("n")),
    ("viewer_daily_node_rollup", "client_id, day, node, ms_sum, n", NODE_LIVE, "day, client_id, node",
     additive.added("ms_sum", "n")),
    ("viewer_daily_usage_rollup", "client_id, day, model, calls, input_tokens, output_tokens, cost_usd", USAGE_LIVE,
     "day, client_id, model", additive.added("calls", "input_tokens", "output_tokens", "cost_usd")),
    ("viewer_daily_critical_rollup", "client_id, day, node, n", CRITICAL_LIVE, "day, client_id, node",
     additive.added("n")),
)
ROLLUP_TABLES = tuple(w[0] for w in _WRITES)  # the last two: migration 0013

# The queued new logs to add: of rolled-up days in [first, stop) (the days of tenants to recompute whole
# are taken out of the copy after, _NOT_DIRTY). Only what the *_LIVE queries read is copied; they then
# run on this table instead of workflow_logs. One index probe per queued log (LIMIT 1 keeps the lateral
# subquery a nested loop; the partition is found by executed_at at run time): planned as a join, the
# queue's statistics (of whatever it held when last analyzed) made PostgreSQL hash every log of the
# table, or anti-join each queued row with a scan of the whole queue, which took over 10 minutes for a
# 220,000-row queue (2M logs) and failed every refresh at its deadline from then on.
_DELTA = (
    "CREATE TEMP TABLE rollup_delta ON COMMIT DROP AS"
    " SELECT w.* FROM viewer_rollup_pending p CROSS JOIN LATERAL ("
    "   SELECT w.id, w.client_id, w.executed_at, w.status, w.overall_confidence, w.hallucination_risk,"
    "   w.execution_time_seconds, w.input_tokens, w.output_tokens, w.cost_usd, w.node_durations,"
    "   w.usage_by_model, w.critical_path, w.session_key, w.resolution_status FROM workflow_logs w"
    "   WHERE w.id = p.log_id AND w.executed_at = p.executed_at AND w.client_id = p.client_id LIMIT 1) w"
    " WHERE p.log_id IS NOT NULL AND p.day >= %(first)s AND p.day < %(stop)s AND NOT p.day = ANY(%(fresh)s::date[])"
)
# The logs of (tenant, day) pairs recomputed whole in this refresh: counted by the recompute, not added.
_NOT_DIRTY = ("DELETE FROM rollup_delta d USING unnest(%s::text[], %s::date[]) AS x(client_id, day)"
              " WHERE d.client_id = x.client_id AND (d.executed_at AT TIME ZONE 'UTC')::date = x.day")
# The logs the recontact delta reads (below, as `session_logs`): those of the new logs' sessions within
# the window either side of them (prev reads [n - w, n), flipped (c, c + w] with c >= n - w, d (n, n + w]),
# copied first so that the delta joins local tables only. On Citus workflow_logs is distributed and a
# lateral join of it with the local rollup_delta is refused; this plain join of it with a subquery of the
# local table is planned (the subquery becomes an intermediate result sent to the shards). One index probe
# per session on one node (workflow_logs_session_idx).
_SESSION_LOGS = (
    "CREATE TEMP TABLE session_logs ON COMMIT DROP AS"
    " SELECT c.id, c.client_id, c.session_key, c.executed_at, c.resolution_status FROM workflow_logs c"
    " JOIN (SELECT client_id, session_key, min(executed_at) - make_interval(days => %(w)s) AS lo,"
    "   max(executed_at) + make_interval(days => %(w)s) AS hi FROM rollup_delta"
    "   WHERE session_key IS NOT NULL GROUP BY 1, 2) s"
    " ON c.client_id = s.client_id AND c.session_key = s.session_key AND c.executed_at >= s.lo"
    " AND c.executed_at <= s.hi"
)
# The recontact rollup, additively (window %(w)s days), from the new logs N (rollup_delta) and the
# logs counted before, C (every other log this snapshot sees; a log of a day recomputed whole in this
# refresh can only change days excluded here). A new resolved ticket adds 1 to `resolved`, and 1 to
# `recontacted` if a later ticket of its session falls in its window. A counted resolved ticket T
# becomes recontacted when no counted ticket but a new one falls in its window: with L the first new
# ticket after T, T is the latest counted ticket in [the new ticket before L, L) within the window
# (a later one would lie in T's window). So one backward index probe per new log finds every
# candidate, never walking past the previous new ticket of its session.
# The `flipped` check walks the session forward from each candidate and stops at the first counted
# ticket: its inner NOT EXISTS has OFFSET 0 so it stays a per-row probe (as a hash anti-join it read
# every later ticket of the session per candidate: 39.8 s for a 40,000-ticket session at 10M logs).
_RECONTACT_DELTA = (
    "WITH n AS MATERIALIZED (SELECT id, client_id, session_key, executed_at, resolution_status,"
    "   lag(executed_at) OVER (PARTITION BY client_id, session_key ORDER BY executed_at) AS before"
    "   FROM rollup_delta WHERE session_key IS NOT NULL),"
    " prev AS (SELECT DISTINCT n.client_id, n.session_key, p.executed_at AS t FROM n CROSS JOIN LATERAL ("
    "   SELECT c.executed_at FROM session_logs c WHERE c.client_id = n.client_id AND c.session_key = n.session_key"
    "   AND c.executed_at < n.executed_at"
    "   AND c.executed_at >= greatest(n.before, n.executed_at - make_interval(days => %(w)s))"
    "   AND NOT EXISTS (SELECT 1 FROM rollup_delta d WHERE d.id = c.id) ORDER BY c.executed_at DESC LIMIT 1) p),"
    " flipped AS (SELECT c.client_id, c.executed_at FROM prev JOIN session_logs c ON c.client_id = prev.client_id"
    "   AND c.session_key = prev.session_key AND c.executed_at = prev.t"
    "   WHERE c.resolution_status = 'resolved' AND NOT EXISTS (SELECT 1 FROM rollup_delta d WHERE d.id = c.id)"
    "   AND NOT EXISTS (SELECT 1 FROM session_logs x WHERE x.client_id = c.client_id"
    "     AND x.session_key = c.session_key AND x.executed_at > c.executed_at"
    "     AND x.executed_at <= c.executed_at + make_interval(days => %(w)s)"
    "     AND NOT EXISTS (SELECT 1 FROM rollup_delta d WHERE d.id = x.id OFFSET 0))),"
    " d AS (SELECT client_id, executed_at, 1 AS resolved, (EXISTS (SELECT 1 FROM session_logs x"
    "     WHERE x.client_id = n.client_id AND x.session_key = n.session_key AND x.executed_at > n.executed_at"
    "     AND x.executed_at <= n.executed_at + make_interval(days => %(w)s)))::int AS recontacted"
    "   FROM n WHERE resolution_status = 'resolved'"
    "   UNION ALL SELECT client_id, executed_at, 0, 1 FROM flipped)"
    " INSERT INTO viewer_daily_recontact_rollup AS r (client_id, day, resolved, recontacted)"
    " SELECT client_id, day, sum(resolved), sum(recontacted) FROM"
    "   (SELECT client_id, (executed_at AT TIME ZONE 'UTC')::date AS day, resolved, recontacted FROM d) g"
    " WHERE NOT day = ANY(%(everyone)s::date[])"
    "   AND (client_id, day) NOT IN (SELECT * FROM unnest(%(clients)s::text[], %(days)s::date[]))"
    " GROUP BY 1, 2"
    " ON CONFLICT (day, client_id) DO UPDATE SET resolved = r.resolved + excluded.resolved,"
    "   recontacted = r.recontacted + excluded.recontacted"
)
_DIRTY = (
    "SELECT DISTINCT client_id, day FROM viewer_rollup_pending WHERE log_id IS NULL AND day >= %s AND day < %s"
    " AND NOT day = ANY(%s::date[])"
)


async def refresh_rollups(pool: AsyncConnectionPool, *, today: date | None = None,
                          recontact_days: int = DEFAULT_RECONTACT_DAYS) -> int:
    """Bring the daily rollups up to date (up to `today`, UTC); returns the days changed.

    The recontact rollup (window `recontact_days`) is recomputed whole for every day recomputed
    whole AND the `recontact_days` days before it (a late ticket can be the recontact of an
    earlier one), and for every day when the window changed; new logs elsewhere are added to it.
    Safe to call from many processes: one refresh runs at a time (advisory lock), the others
    return 0 at once.
    """
    today = today or datetime.now(UTC).date()
    stop = today + timedelta(days=1)  # days before `stop` are rolled up, today included
    async with locked_snapshot(pool, Scope.provider(), locks.ROLLUPS, wait=False) as conn:
        if conn is None:
            return 0
        state = await (await conn.execute(
            "SELECT recontact_days FROM viewer_rollup_state WHERE id = 1 FOR UPDATE")).fetchone()
        bounds = await (await conn.execute(
            "SELECT (min(executed_at) AT TIME ZONE 'UTC')::date AS first FROM workflow_logs")).fetchone()
        first = bounds["first"]
        done = 0
        if first is not None and first < stop:
            done = await _refresh_changed(conn, state, first, stop, recontact_days)
        if first is not None:  # retention dropped older partitions: forget their days too
            for table in (*ROLLUP_TABLES, "viewer_daily_recontact_rollup", "viewer_rollup_days"):
                await conn.execute(f"DELETE FROM {table} WHERE day < %s", (first,))
        # Consumed: every queue row this snapshot sees (later days wait until they are rolled up).
        await conn.execute("DELETE FROM viewer_rollup_pending WHERE day < %s", (stop,))
        await conn.execute("UPDATE viewer_rollup_state SET recontact_days = %s WHERE id = 1", (recontact_days,))
    if done:
        logger.info("rolled up %d day(s) of workflow logs", done)
    return done


async def _refresh_changed(conn, state, first: date, stop: date, recontact_days: int) -> int:
    """Add the queued new logs, recompute every day not rolled up yet (all tenants) and each
    tenant's days changed in place, then the recontact rollup: whole over the window before each
    day recomputed, additively elsewhere; the days changed (for any tenant)."""
    fresh = await _unrolled_days(conn, first, stop)
    dirty: dict[str, set[date]] = {}
    for r in await (await conn.execute(_DIRTY, (first, stop, fresh))).fetchall():
        dirty.setdefault(r["client_id"], set()).add(r["day"])
    added = await _add_deltas(conn, first, stop, fresh, dirty)
    if fresh:
        await _recompute(conn, fresh)
    for client, days in sorted(dirty.items()):
        await _recompute(conn, sorted(days), client)
    if state["recontact_days"] != recontact_days:  # another window: every day, every tenant
        await conn.execute("DELETE FROM viewer_daily_recontact_rollup")
        await recompute_recontact(conn, _days(first, stop), recontact_days)
    else:  # whole: the new days and each dirty day, with the window before each; the rest additively
        everyone = [d for d in affected_days(fresh, recontact_days) if first <= d]
        await recompute_recontact(conn, everyone, recontact_days)
        whole = {c: sorted(set(affected_days(sorted(days), recontact_days)) - set(everyone))
                 for c, days in dirty.items()}
        for client, days in sorted(whole.items()):
            await recompute_recontact(conn, [d for d in days if first <= d], recontact_days, client_id=client)
        pairs = [(c, d) for c, days in whole.items() for d in days]
        await conn.execute(_SESSION_LOGS, {"w": recontact_days})
        await conn.execute("CREATE INDEX ON session_logs (client_id, session_key, executed_at)")
        await conn.execute("ANALYZE session_logs")
        await conn.execute(_RECONTACT_DELTA, {"w": recontact_days, "everyone": everyone,
                                              "clients": [c for c, _ in pairs], "days": [d for _, d in pairs]})
    return len(set(fresh).union(*added.values(), *dirty.values()))


async def _add_deltas(conn, first: date, stop: date, fresh: list[date],
                      dirty: dict[str, set[date]]) -> dict[str, set[date]]:
    """Add the queued new logs of rolled-up days, except those of `dirty` (tenant -> days recomputed
    whole), to the rollup rows; per tenant, the days they fell on."""
    await conn.execute(_DELTA, {"first": first, "stop": stop, "fresh": fresh})
    if dirty:
        pairs = [(c, d) for c, days in dirty.items() for d in days]
        await conn.execute(_NOT_DIRTY, ([c for c, _ in pairs], [d for _, d in pairs]))
    await conn.execute("CREATE INDEX ON rollup_delta (id)")
    await conn.execute("ANALYZE rollup_delta")
    for table, columns, live, key, add in _WRITES:
        query = live.format(where="true").replace("workflow_logs", "rollup_delta")
        await conn.execute(f"INSERT INTO {table} AS r ({columns}) {query} ON CONFLICT ({key}) DO UPDATE SET {add}",
                           [FINE_EDGES] if live is DURATION_LIVE else [])
    per_client: dict[str, set[date]] = {}
    for r in await (await conn.execute(
            "SELECT DISTINCT client_id, (executed_at AT TIME ZONE 'UTC')::date AS day FROM rollup_delta")).fetchall():
        per_client.setdefault(r["client_id"], set()).add(r["day"])
    return per_client


async def recompute_days(pool: AsyncConnectionPool, days: list[date], client: str) -> None:
    """Recompute `client`'s rollups of `days` now (after an erasure: totals must stop counting what
    it erased). Waits for a refresh in progress; days not rolled up yet are left to the refresh,
    and the days recomputed are queued to be recomputed whole by the next (`_recomputed_whole`).
    The recontact rollup of those days and of the window before each is recomputed too (an erased
    ticket was maybe the later contact of an earlier one), with the window it was built with.
    The calibration rollups (migration 0021) need nothing here: the erasure's delete of the
    reviews' state already took them out, by trigger, in its own transaction."""
    days = sorted(set(days))
    async with locked_snapshot(pool, Scope.provider(), locks.ROLLUPS, wait=True) as conn:
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
        await _recomputed_whole(conn, client, own)


async def _recomputed_whole(conn, client: str, days: list[date]) -> None:
    """Queue `client`'s `days`, just recomputed whole outside a refresh, to be recomputed whole by
    the next refresh too. That recompute counted the logs still queued for the refresh, whose
    additive pass would count their recontact effect on these days (the window before a queued
    log) a second time; recomputed whole, these days and their windows take no additive part."""
    if days:
        await conn.execute("INSERT INTO viewer_rollup_pending (client_id, day) SELECT %s, unnest(%s::date[])",
                           (client, sorted(set(days))))


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
    for table, *_ in _WRITES:
        await conn.execute(f"DELETE FROM {table} WHERE day = ANY(%s){only}", [days] + params[3:])
    for table, columns, live, *_ in _WRITES:
        await conn.execute(f"INSERT INTO {table} ({columns}) " + live.format(where=where),
                           [FINE_EDGES] + params if live is DURATION_LIVE else params)
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
        await _recomputed_whole(conn, client_id, list(ticket_days))
    return days
