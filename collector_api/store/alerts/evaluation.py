"""Alert evaluation (migration 0012): every rule, per tenant, from the alert rollups and the
ingest counters; a change of state writes the new state and its notification in one transaction.

Reads per tick: one aggregate per distinct window over `alert_rollup` (minutes below 6 h,
hours from 6 h), the histogram only for windows a p95 rule uses, one over `ingest_counts` for
`tickets` and `rejections`. A state changes only if it differs from the stored one (checked in
the upsert itself), so a transition yields exactly one delivery even if two evaluators race.
"""
from __future__ import annotations

import json
import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from psycopg_pool import AsyncConnectionPool

from collector_api.store.alerts.rules import _COLUMNS, AlertRule, _rule, format_window
from collector_api.store.core.db import owner_connection
from collector_api.store.logs.stats import histogram_quantile

HOUR_GRAIN_FROM_S = 6 * 3600  # windows from 6 h read hour rollups (rounded to whole hours)
COUNTER_METRICS = ("tickets", "rejections")  # from ingest_counts; min_tickets does not apply
_OPS = {">": float.__gt__, ">=": float.__ge__, "<": float.__lt__, "<=": float.__le__}


@dataclass(frozen=True)
class Transition:
    rule: AlertRule
    client_id: str
    state: str
    value: float | None
    delivery_id: str


def window_start(now: datetime, window_s: int) -> tuple[str, datetime]:
    """(grain, first bucket): the window's whole buckets, the current partial one included."""
    grain, size = ("h", 3600) if window_s >= HOUR_GRAIN_FROM_S else ("m", 60)
    now = now.astimezone(UTC)
    current = now.replace(second=0, microsecond=0, minute=0 if grain == "h" else now.minute)
    buckets = max(1, round(window_s / size))
    return grain, current - timedelta(seconds=size * (buckets - 1))


async def _window_data(conn, window_s: int, now: datetime, want_p95: bool, want_counts: bool) -> dict[str, dict]:
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
    if want_counts:
        minute_start = now.astimezone(UTC).replace(second=0, microsecond=0) - timedelta(seconds=window_s - 60)
        for r in await (await conn.execute(
                "SELECT client_id, COALESCE(sum(count) FILTER (WHERE reason = 'stored'), 0)::bigint AS stored,"
                " COALESCE(sum(count) FILTER (WHERE reason NOT IN ('stored', 'duplicate')), 0)::bigint AS rejected"
                " FROM ingest_counts WHERE minute >= %s GROUP BY 1", (minute_start,))).fetchall():
            data[r["client_id"]].update(stored=r["stored"], rejected=r["rejected"])
    return data


def metric_value(rule: AlertRule, data: dict[str, Any]) -> float | None:
    """The rule's metric for one tenant's window, or None when there is nothing to judge."""
    if rule.metric == "tickets":
        return float(data.get("stored", 0))
    if rule.metric == "rejections":
        return float(data.get("rejected", 0))
    total = data.get("total", 0) or 0
    if total == 0 or total < rule.min_tickets:
        return None
    if rule.metric == "failure_rate":
        return data["failed"] / total
    if rule.metric == "partial_rate":
        return data["partial"] / total
    if rule.metric == "avg_hallucination_risk":
        return data["risk_sum"] / data["risk_n"] if data["risk_n"] else None
    if rule.metric == "p95_execution_s":
        return data.get("p95")
    return float(data["cost_usd"])


def holds(rule: AlertRule, value: float | None) -> bool:
    return value is not None and _OPS[rule.op](float(value), float(rule.threshold))


def tickets_link(public_url: str | None, rule: AlertRule, client_id: str, now: datetime) -> str:
    """The viewer's ticket list for this tenant and window (status filtered for the rate metrics)."""
    params = {"client": client_id, "start": (now - timedelta(seconds=rule.window_s)).isoformat(timespec="seconds"),
              "end": now.isoformat(timespec="seconds")}
    status = {"failure_rate": "FAILED", "partial_rate": "PARTIAL"}.get(rule.metric)
    if status:
        params["status"] = status
    return f"{(public_url or '').rstrip('/')}/tickets?{urlencode(params)}"


def notification_body(rule: AlertRule, client_id: str, state: str, value: float | None, link: str,
                      now: datetime) -> bytes:
    """The webhook's JSON (or, for a Slack rule, a Slack-compatible {"text": ...})."""
    shown = "n/a" if value is None else f"{value:.4g}"
    if rule.slack:
        icon = ":rotating_light:" if state == "firing" else ":white_check_mark:"
        text = (f"{icon} [{state.upper()}] {rule.name}: {rule.metric} {shown} {rule.op} {rule.threshold:g}"
                f" over {format_window(rule.window_s)} for tenant {client_id} - <{link}|tickets>")
        return json.dumps({"text": text}).encode()
    return json.dumps({
        "rule": {"id": rule.id, "name": rule.name}, "tenant": client_id, "metric": rule.metric, "value": value,
        "op": rule.op, "threshold": rule.threshold, "window": format_window(rule.window_s), "state": state,
        "at": now.isoformat(), "link": link}).encode()


async def evaluate_rules(pool: AsyncConnectionPool, *, public_url: str | None = None,
                         now: datetime | None = None) -> list[Transition]:
    """Judge every rule for every tenant it covers; store transitions and queue their webhooks."""
    now = now or datetime.now(UTC)
    async with owner_connection(pool) as conn, conn.transaction():
        rules = [_rule(r) for r in await (await conn.execute(f"SELECT {_COLUMNS} FROM alert_rules")).fetchall()]
        if not rules:
            return []
        tenants = [r["client_id"] for r in await (await conn.execute("SELECT client_id FROM tenants")).fetchall()]
        previous = {(r["rule_id"], r["client_id"]): r["state"] for r in await (await conn.execute(
            "SELECT rule_id, client_id, state FROM alert_states")).fetchall()}
        windows: dict[int, dict[str, dict]] = {}
        for window_s in {r.window_s for r in rules}:
            used = {r.metric for r in rules if r.window_s == window_s}
            windows[window_s] = await _window_data(conn, window_s, now, "p95_execution_s" in used,
                                                   bool(used & set(COUNTER_METRICS)))
        changes = []
        for rule in rules:
            for client in ([rule.client_id] if rule.client_id else tenants):
                value = metric_value(rule, windows[rule.window_s].get(client, {}))
                state = "firing" if holds(rule, value) else "resolved"
                if state != previous.get((rule.id, client), "resolved"):
                    changes.append((rule, client, state, value))
        return await _store_transitions(conn, changes, public_url, now)


async def _store_transitions(conn, changes: list, public_url: str | None, now: datetime) -> list[Transition]:
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
        (now, [r.id for r, _, _, _ in changes], [c for _, c, _, _ in changes], [st for _, _, st, _ in changes],
         [v for _, _, _, v in changes]))).fetchall()}
    done = [Transition(rule, client, state, value, str(uuid.uuid4()))  # the others: recorded by someone else
            for rule, client, state, value in changes if (rule.id, client) in recorded]
    if done:
        await conn.execute(
            "INSERT INTO alert_deliveries (id, rule_id, rule_name, client_id, state, body, next_attempt_at)"
            " SELECT d.id, d.rule_id, d.rule_name, d.client_id, d.state, d.body, %s FROM unnest(%s::uuid[],"
            " %s::bigint[], %s::text[], %s::text[], %s::text[], %s::bytea[]) AS d(id, rule_id, rule_name, client_id,"
            " state, body)",
            (now, [t.delivery_id for t in done], [t.rule.id for t in done], [t.rule.name for t in done],
             [t.client_id for t in done], [t.state for t in done],
             [notification_body(t.rule, t.client_id, t.state, t.value,
                                tickets_link(public_url, t.rule, t.client_id, now), now) for t in done]))
    return done
