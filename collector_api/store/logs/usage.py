"""The usage and cost report, and the nodes most often on the critical path (read side).

Per tenant over [start, end): tickets by status, LLM calls, tokens and cost, and the same by
model where the log names it. Whole UTC days already rolled up are read from the daily rollups
(`viewer_daily_rollup`, `viewer_daily_usage_rollup`, `viewer_daily_critical_rollup`, written only
by store.rollups); the rest is summed from `workflow_logs` live, with the same SQL the rollups
are built with, so both paths give the same figures. This module never writes.

Totals (tokens, cost) are the logs' metrics (`input_tokens`, `output_tokens`, `cost_usd`
columns); the by-model rows sum each log's `trace.llm_calls` (column `usage_by_model`). For logs
built by the bridge both agree; a log whose metrics say otherwise keeps its own totals.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from psycopg_pool import AsyncConnectionPool

from collector_api.store.core.db import Scope, scoped_transaction
from collector_api.store.core.scope import narrowed, tenant_condition
from collector_api.store.logs.stats import range_where, split_rolled

# Live SQL (also what store.rollups writes into the rollup tables, per tenant and UTC day).
USAGE_LIVE = (
    "SELECT client_id, (executed_at AT TIME ZONE 'UTC')::date AS day, u.model,"
    " sum((u.v->>'calls')::numeric) AS calls, sum((u.v->>'input_tokens')::numeric) AS input_tokens,"
    " sum((u.v->>'output_tokens')::numeric) AS output_tokens,"
    " sum((u.v->>'cost_usd')::float8) AS cost_usd"
    " FROM workflow_logs CROSS JOIN LATERAL jsonb_each(usage_by_model) AS u(model, v)"
    " WHERE {where} AND jsonb_typeof(usage_by_model) = 'object' GROUP BY 1, 2, 3"
)
CRITICAL_LIVE = (
    "SELECT client_id, (executed_at AT TIME ZONE 'UTC')::date AS day, c.node, count(*) AS n"
    " FROM workflow_logs CROSS JOIN LATERAL jsonb_array_elements_text("
    "CASE WHEN jsonb_typeof(critical_path->'nodes') = 'array' THEN critical_path->'nodes' ELSE '[]' END) AS c(node)"
    " WHERE {where} GROUP BY 1, 2, 3"
)
_TICKETS_LIVE = (
    "SELECT client_id, count(*) FILTER (WHERE status = 'SUCCESS') AS success,"
    " count(*) FILTER (WHERE status = 'PARTIAL') AS partial, count(*) FILTER (WHERE status = 'FAILED') AS failed,"
    " COALESCE(sum(input_tokens), 0) AS input_tokens, COALESCE(sum(output_tokens), 0) AS output_tokens,"
    " COALESCE(sum(cost_usd), 0) AS cost_usd FROM workflow_logs WHERE {where} GROUP BY 1"
)
_TICKETS_ROLLED = (
    "SELECT client_id, sum(success) AS success, sum(partial) AS partial, sum(failed) AS failed,"
    " sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens,"
    " sum(cost_usd) AS cost_usd FROM viewer_daily_rollup WHERE {where} GROUP BY 1"
)
_MODELS_ROLLED = (
    "SELECT client_id, model, sum(calls) AS calls, sum(input_tokens) AS input_tokens,"
    " sum(output_tokens) AS output_tokens, sum(cost_usd) AS cost_usd"
    " FROM viewer_daily_usage_rollup WHERE {where} GROUP BY 1, 2"
)
_CRITICAL_ROLLED = "SELECT node, sum(n) AS n FROM viewer_daily_critical_rollup WHERE {where} GROUP BY 1"
_TICKET_SUMS = ("success", "partial", "failed", "input_tokens", "output_tokens", "cost_usd")
_MODEL_SUMS = ("calls", "input_tokens", "output_tokens", "cost_usd")


@dataclass
class ClientUsage:
    client_id: str
    success: int = 0
    partial: int = 0
    failed: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    models: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def tickets(self) -> int:
        return self.success + self.partial + self.failed

    @property
    def llm_calls(self) -> int:
        return sum(m["calls"] for m in self.models.values())

    def as_dict(self) -> dict[str, Any]:
        return {"client_id": self.client_id, "tickets": self.tickets, "success": self.success,
                "partial": self.partial, "failed": self.failed, "llm_calls": self.llm_calls,
                "input_tokens": self.input_tokens, "output_tokens": self.output_tokens,
                "total_tokens": self.input_tokens + self.output_tokens, "cost_usd": round(self.cost_usd, 8),
                "models": [{"model": name, **{k: (round(v, 8) if k == "cost_usd" else v) for k, v in m.items()}}
                           for name, m in sorted(self.models.items(), key=lambda kv: -kv[1]["cost_usd"])]}


@dataclass
class UsageReport:
    start: datetime
    end: datetime
    clients: list[ClientUsage]

    def totals(self) -> dict[str, Any]:
        total = ClientUsage("*")
        for c in self.clients:
            for k in _TICKET_SUMS:
                setattr(total, k, getattr(total, k) + getattr(c, k))
            for name, m in c.models.items():
                acc = total.models.setdefault(name, dict.fromkeys(_MODEL_SUMS, 0))
                for k in _MODEL_SUMS:
                    acc[k] += m[k]
        data = total.as_dict()
        data.pop("client_id")
        return data

    def as_dict(self) -> dict[str, Any]:
        return {"start": self.start.isoformat(), "end": self.end.isoformat(), "totals": self.totals(),
                "clients": [c.as_dict() for c in self.clients]}


def _exact(name: str, value: Any) -> Any:
    """Counts and tokens as Python ints (PostgreSQL sums them as numeric: no bigint overflow), cost as float."""
    if value is None:
        return 0.0 if name == "cost_usd" else 0
    return float(value) if name == "cost_usd" else int(value)


def _add(clients: dict[str, ClientUsage], tickets: list, models: list) -> None:
    for r in tickets:
        c = clients.setdefault(r["client_id"], ClientUsage(r["client_id"]))
        for k in _TICKET_SUMS:
            setattr(c, k, getattr(c, k) + _exact(k, r[k]))
    for r in models:
        c = clients.setdefault(r["client_id"], ClientUsage(r["client_id"]))
        acc = c.models.setdefault(r["model"], dict.fromkeys(_MODEL_SUMS, 0))
        for k in _MODEL_SUMS:
            acc[k] += _exact(k, r[k])


async def get_usage(pool: AsyncConnectionPool, scope: Scope, start: datetime, end: datetime,
                    client_id: str | None = None, *, use_rollups: bool = True) -> UsageReport:
    """Usage over [start, end) per tenant (a client scope: its own only; a provider: all, or `client_id`)."""
    tenant = tenant_condition(scope, client_id)
    clients: dict[str, ClientUsage] = {}
    async with scoped_transaction(pool, narrowed(scope, client_id)) as conn:
        rolled, live = await split_rolled(conn, start, end) if use_rollups else (None, [(start, end)])
        if rolled and rolled[0] < rolled[1]:
            where, params = range_where(tenant, "day", *rolled)
            tickets = await (await conn.execute(_TICKETS_ROLLED.format(where=where), params)).fetchall()
            models = await (await conn.execute(_MODELS_ROLLED.format(where=where), params)).fetchall()
            _add(clients, tickets, models)
        for lo, hi in live:
            where, params = range_where(tenant, "executed_at", lo, hi)
            tickets = await (await conn.execute(_TICKETS_LIVE.format(where=where), params)).fetchall()
            models = await (await conn.execute(
                "SELECT client_id, model, sum(calls) AS calls, sum(input_tokens) AS input_tokens,"
                " sum(output_tokens) AS output_tokens, sum(cost_usd) AS cost_usd FROM ("
                + USAGE_LIVE.format(where=where) + ") d GROUP BY 1, 2", params)).fetchall()
            _add(clients, tickets, models)
    return UsageReport(start, end, sorted(clients.values(), key=lambda c: c.client_id))


async def get_critical_nodes(pool: AsyncConnectionPool, scope: Scope, start: datetime, end: datetime,
                             client_id: str | None = None, *, use_rollups: bool = True,
                             limit: int = 20) -> list[dict[str, Any]]:
    """The nodes most often on the critical path over [start, end): node, tickets (on whose path it was)."""
    tenant = tenant_condition(scope, client_id)
    counts: dict[str, int] = {}
    async with scoped_transaction(pool, narrowed(scope, client_id)) as conn:
        rolled, live = await split_rolled(conn, start, end) if use_rollups else (None, [(start, end)])
        parts = []
        if rolled and rolled[0] < rolled[1]:
            parts.append((_CRITICAL_ROLLED, range_where(tenant, "day", *rolled)))
        for lo, hi in live:
            parts.append(("SELECT node, sum(n) AS n FROM (" + CRITICAL_LIVE + ") d GROUP BY 1",
                          range_where(tenant, "executed_at", lo, hi)))
        for query, (where, params) in parts:
            for r in await (await conn.execute(query.format(where=where), params)).fetchall():
                counts[r["node"]] = counts.get(r["node"], 0) + int(r["n"])
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]
    return [{"node": node, "tickets": n} for node, n in ranked]

