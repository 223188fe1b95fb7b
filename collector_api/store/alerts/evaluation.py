"""Alert evaluation's reads and writes (migration 0012), SQL only: the rules, the tenants, the
stored states and each window's figures from the alert rollups and the ingest counters; then the
state changes and their notifications, in the same transaction. What changes, and what the
notification says, the caller decides (collector_api.alerts.evaluate passes its `judge`).

Reads per tick: one aggregate per distinct window over `alert_rollup` (minutes below 6 h,
hours from 6 h), the histogram only for windows a p95 rule uses, one over `ingest_counts` for
`tickets` and `rejections`. A state changes only if it differs from the stored one (checked in
the upsert itself), so a transition yields exactly one delivery even if two evaluators race.
"""
from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from psycopg_pool import AsyncConnectionPool

from collector_api.store.alerts.rules import RULE_COLUMNS
from collector_api.store.core.db import owner_connection
from collector_api.store.evals.reads import evaluator_averages
from collector_api.store.logs.stats import histogram_quantile

HOUR_GRAIN_FROM_S = 6 * 3600  # windows from 6 h read hour rollups (rounded to whole hours)
COUNTER_METRICS = ("tickets", "rejections")  # from ingest_counts; min_tickets does not apply
EVAL_PREFIX = "eval:"  # eval:<evaluator>: the average score over the window (evaluation_scores, migration 0019)


@dataclass(frozen=True)
class EvaluationInput:
    rules: list[dict]  # rows of alert_rules (RULE_COLUMNS)
    tenants: list[str]
    previous: dict[tuple[int, str], str]  # (rule id, tenant) -> stored state; absent: resolved
    windows: dict[int, dict[str, dict]]  # window_s -> tenant -> figures (total, failed, p95, stored, ...)


@dataclass(frozen=True)
class StateChange:
    rule_id: int
    rule_name: str
    client_id: str
    state: str  # "firing" or "resolved"
    value: float | None
    body: bytes  # the notification, queued as is


Judge = Callable[[EvaluationInput], Sequence[StateChange]]

def window_start(now: datetime, window_s: int) -> tuple[str, datetime]:
    """(grain, first bucket): the window's whole buckets, the current partial one included."""
    grain, size = ("h", 3600) if window_s >= HOUR_GRAIN_FROM_S else ("m", 60)
    now = now.astimezone(UTC)
    current = now.replace(second=0, microsecond=0, minute=0 if grain == "h" else now.minute)
    buckets = max(1, round(window_s / size))
    return grain, current - timedelta(seconds=size * (buckets - 1))


async def _window_data(conn, window_s: int, now: datetime, want_p95: bool, want_counts: bool,
                       want_recontact: bool = False) -> dict[str, dict]:
    grain, start = window_start(now, window_s)
    data: dict[str, dict] = defaultdict(dict)
    rows = await (await conn.execute(
        "SELECT client_id, sum(total)::bigint AS total, sum(partial)::bigint AS partial, sum(failed)::bigint AS failed,"
        " sum(risk_sum) AS risk_sum, sum(risk_n)::bigint AS risk_n, sum(cost_usd) AS cost_usd FROM alert_rollup"
        " WHERE grain = %s AND start >= %s GROUP BY 1", (grain, start))).fetchall()
    for r in rows:
        data[r["client_id"]].update(r)
    if want_p95:
        hist: dict[str, dict[int, int]] = defaultdict(dict)
        for r in await (await conn.execute(
                "SELECT client_id, bucket, sum(n)::bigint AS n FROM alert_rollup_duration WHERE grain = %s"
                " AND start >= %s GROUP BY 1, 2", (grain, start))).fetchall():
            hist[r["client_id"]][r["bucket"]] = r["n"]
        for client, counts in hist.items():
            data[client]["p95"] = histogram_quantile(counts, 0.95)
    if want_recontact:  # whole UTC days from the window's first, from the recontact rollup (store.rollups)
        first_day = (now.astimezone(UTC) - timedelta(seconds=window_s)).date()
        for r in await (await conn.execute(
                "SELECT client_id, sum(resolved)::bigint AS resolved, sum(recontacted)::bigint AS recontacted"
                " FROM viewer_daily_recontact_rollup WHERE day >= %s GROUP BY 1", (first_day,))).fetchall():
            data[r["client_id"]].update(resolved=r["resolved"], recontacted=r["recontacted"])
    if want_counts:
        minute_start = now.astimezone(UTC).replace(second=0, microsecond=0) - timedelta(seconds=window_s - 60)
        for r in await (await conn.execute(
                "SELECT client_id, COALESCE(sum(count) FILTER (WHERE reason = 'stored'), 0)::bigint AS stored,"
                " COALESCE(sum(count) FILTER (WHERE reason NOT IN ('stored', 'duplicate')), 0)::bigint AS rejected"
                " FROM ingest_counts WHERE minute >= %s GROUP BY 1", (minute_start,))).fetchall():
            data[r["client_id"]].update(stored=r["stored"], rejected=r["rejected"])
    return data


async def _eval_data(conn, data: dict[str, dict], metrics: list[str], window_s: int, now: datetime) -> None:
    """data[tenant]["eval:<name>"] = {mean, n} of the scores of logs executed in the window."""
    if not metrics:
        return
    averages = await evaluator_averages(conn, [m[len(EVAL_PREFIX):] for m in metrics],
                                        now - timedelta(seconds=window_s))
    for (name, client), figures in averages.items():
        data.setdefault(client, {})[EVAL_PREFIX + name] = figures


async def record_evaluation(pool: AsyncConnectionPool, judge: Judge, now: datetime) -> list[tuple[StateChange, str]]:
    """Read what the rules need, let `judge` decide the state changes, store them with their
    deliveries; (change, delivery id) of each change stored here (a racing evaluator may have
    stored the others)."""
    async with owner_connection(pool) as conn, conn.transaction():
        rules = await (await conn.execute(f"SELECT {RULE_COLUMNS} FROM alert_rules")).fetchall()
        if not rules:
            return []
        tenants = [r["client_id"] for r in await (await conn.execute("SELECT client_id FROM tenants")).fetchall()]
        previous = {(r["rule_id"], r["client_id"]): r["state"] for r in await (await conn.execute(
            "SELECT rule_id, client_id, state FROM alert_states")).fetchall()}
        windows: dict[int, dict[str, dict]] = {}
        for window_s in {r["window_s"] for r in rules}:
            used = {r["metric"] for r in rules if r["window_s"] == window_s}
            windows[window_s] = await _window_data(conn, window_s, now, "p95_execution_s" in used,
                                                   bool(used & set(COUNTER_METRICS)), "recontact_rate" in used)
            await _eval_data(conn, windows[window_s], [m for m in used if m.startswith(EVAL_PREFIX)], window_s, now)
        changes = judge(EvaluationInput(rules, tenants, previous, windows))
        return await _store_transitions(conn, changes, now)


async def _store_transitions(conn, changes: Sequence[StateChange], now: datetime) -> list[tuple[StateChange, str]]:
    """Two statements for any number of transitions (a mass state change after a quiet spell
    moved thousands at once, one round trip each)."""
    if not changes:
        return []
    recorded = {(r["rule_id"], r["client_id"]) for r in await (await conn.execute(
        "INSERT INTO alert_states AS s (rule_id, client_id, state, value, changed_at)"
        " SELECT c.rule_id, c.client_id, c.state, c.value, %s"
        " FROM unnest(%s::bigint[], %s::text[], %s::text[], %s::float8[]) AS c(rule_id, client_id, state, value)"
        " ON CONFLICT (rule_id, client_id) DO UPDATE SET state = excluded.state, value = excluded.value,"
        " changed_at = excluded.changed_at WHERE s.state <> excluded.state RETURNING rule_id, client_id",
        (now, [c.rule_id for c in changes], [c.client_id for c in changes], [c.state for c in changes],
         [c.value for c in changes]))).fetchall()}
    done = [(c, str(uuid.uuid4()))  # the others: recorded by someone else
            for c in changes if (c.rule_id, c.client_id) in recorded]
    if done:
        await conn.execute(
            "INSERT INTO alert_deliveries (id, rule_id, rule_name, client_id, state, body, next_attempt_at)"
            " SELECT d.id, d.rule_id, d.rule_name, d.client_id, d.state, d.body, %s FROM unnest(%s::uuid[],"
            " %s::bigint[], %s::text[], %s::text[], %s::text[], %s::bytea[]) AS d(id, rule_id, rule_name, client_id,"
            " state, body)",
            (now, [d for _, d in done], [c.rule_id for c, _ in done], [c.rule_name for c, _ in done],
             [c.client_id for c, _ in done], [c.state for c, _ in done], [c.body for c, _ in done]))
    return done
