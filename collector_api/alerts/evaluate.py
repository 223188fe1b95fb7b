"""Alert evaluation: every rule judged per tenant on its window's figures; a change of state is
stored with its notification in one transaction (collector_api.store.alerts.evaluation reads the
figures and writes the changes; this module decides them and words them).

A rule fires while its metric holds (`value op threshold`) and resolves otherwise; a window
with no tickets (or fewer than `min_tickets`) has nothing to judge and counts as resolved,
except for the counter metrics (`tickets`, `rejections`), where none is a value. An
`eval:<name>` rule judges the average score of that evaluator over the window's logs
(`min_tickets` then counts scored logs).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from psycopg_pool import AsyncConnectionPool

from collector_api.alerts.notify import notification_body, tickets_link
from collector_api.alerts.rules import AlertRule, is_eval_metric, rule_from_row
from collector_api.store.alerts.evaluation import EvaluationInput, StateChange, record_evaluation

_OPS = {">": float.__gt__, ">=": float.__ge__, "<": float.__lt__, "<=": float.__le__}


@dataclass(frozen=True)
class Transition:
    rule: AlertRule
    client_id: str
    state: str
    value: float | None
    delivery_id: str


def metric_value(rule: AlertRule, data: dict[str, Any]) -> float | None:
    """The rule's metric for one tenant's window, or None when there is nothing to judge."""
    if rule.metric == "tickets":
        return float(data.get("stored", 0))
    if rule.metric == "rejections":
        return float(data.get("rejected", 0))
    if rule.metric == "recontact_rate":  # min_tickets counts the resolved tickets it is a share of
        resolved = data.get("resolved", 0) or 0
        return data["recontacted"] / resolved if resolved and resolved >= rule.min_tickets else None
    if is_eval_metric(rule.metric):  # the evaluator's average score; no score in the window: nothing to judge
        scored = data.get(rule.metric)
        if not scored or scored["n"] < max(1, rule.min_tickets):
            return None
        return float(scored["mean"])
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


def judge(inputs: EvaluationInput, rules: list[AlertRule], public_url: str | None,
          now: datetime) -> list[StateChange]:
    """The state changes of `rules` over `inputs`, each with the notification it sends."""
    changes = []
    for rule in rules:
        for client in ([rule.client_id] if rule.client_id else inputs.tenants):
            value = metric_value(rule, inputs.windows[rule.window_s].get(client, {}))
            state = "firing" if holds(rule, value) else "resolved"
            if state != inputs.previous.get((rule.id, client), "resolved"):
                body = notification_body(rule, client, state, value, tickets_link(public_url, rule, client, now), now)
                changes.append(StateChange(rule.id, rule.name, client, state, value, body))
    return changes


async def evaluate_rules(pool: AsyncConnectionPool, *, public_url: str | None = None,
                         now: datetime | None = None) -> list[Transition]:
    """Judge every rule for every tenant it covers; store transitions and queue their webhooks."""
    now = now or datetime.now(UTC)
    rules: dict[int, AlertRule] = {}

    def decide(inputs: EvaluationInput) -> list[StateChange]:
        rules.update((row["id"], rule_from_row(row)) for row in inputs.rules)
        return judge(inputs, list(rules.values()), public_url, now)

    recorded = await record_evaluation(pool, decide, now)
    return [Transition(rules[c.rule_id], c.client_id, c.state, c.value, delivery_id) for c, delivery_id in recorded]
