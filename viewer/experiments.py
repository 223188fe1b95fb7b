"""The data of the experiment pages, for HTML and JSON alike: the list, one experiment (per item the
expected output against the new draft as a word diff, outcome, cost, latency; totals), and two
experiments on the same dataset compared item by item.

A comparison is a list of METRICS per item, each judged better / worse / same. Evaluator scores
join as more metrics (`score:<evaluator>`): `item_scores` is the one place they are read, the latest
version's score of each online evaluator (collector_api.store.evals.reads.scores_by_log).
"""
from __future__ import annotations

import asyncio
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from collector_api.store.core.db import scoped_transaction
from collector_api.store.core.scope import narrowed
from collector_api.store.datasets.reads import (
    compare_counts,
    experiment_runs,
    experiment_totals,
    get_experiment,
    list_experiments,
    list_items,
)
from collector_api.store.evals.reads import scores_by_log

from .auth import Principal
from .context import ViewerContext
from .datasets import dataset_client, item_json
from .errors import BadRequest, NotFound
from .worddiff import changed, word_diff

_EXPERIMENT_ID = re.compile(r"^[0-9a-f]{32}$")
STATUS_RANK = {"SUCCESS": 3, "PARTIAL": 2, "FAILED": 1}
PAGE = 50


def experiment_json(row: dict) -> dict[str, Any]:
    return {"id": row["id"], "client_id": row["client_id"], "name": row["name"], "dataset": row["dataset"],
            "dataset_id": row["dataset_id"], "dataset_deleted": bool(row["dataset_deleted"]),
            "item_count": row["item_count"],
            "created_at": row["created_at"].isoformat()}


async def build_experiment_list(ctx: ViewerContext, principal: Principal, client: str | None) -> dict[str, Any]:
    rows = await list_experiments(ctx.pool, principal.scope, client)
    return {"experiments": [experiment_json(r) for r in rows]}


async def load_experiment(ctx: ViewerContext, principal: Principal, experiment_id: str) -> dict:
    """The experiment, or NotFound (absent, another tenant's, or no dataset of the tenant has its
    dataset id). A deleted dataset's experiment is found: its items stay (`dataset_deleted`)."""
    if not isinstance(experiment_id, str) or not _EXPERIMENT_ID.match(experiment_id):
        raise NotFound("no such experiment")
    row = await get_experiment(ctx.pool, principal.scope, experiment_id)
    if row is None or row["dataset"] is None:
        raise NotFound("no such experiment (or it belongs to another client, or it names no dataset of it)")
    return row


async def item_scores(ctx: ViewerContext, principal: Principal, client_id: str,
                      log_ids: list[int]) -> dict[int, dict[str, float]]:
    """log id -> {evaluator: latest score} of the runs' logs (tenant `client_id`, in its scope)."""
    async with scoped_transaction(ctx.pool, narrowed(principal.scope, client_id)) as conn:
        return await scores_by_log(conn, client_id, log_ids)


def totals_json(row: dict, item_count: int) -> dict[str, Any]:
    """Items, runs, outcome counts, success rate, cost and latency (mean, p50, p95) of the runs
    (aggregated by the store: store.datasets.reads.experiment_totals)."""
    ran = row["ran"]
    return {"item_count": item_count, "ran": ran, "not_run": max(item_count - ran, 0),
            "success": row["success"], "partial": row["partial"], "failed": row["failed"],
            "success_rate": row["success"] / ran if ran else None, "cost_usd": row["cost_usd"],
            "mean_cost_usd": row["mean_cost_usd"], "mean_latency_s": row["mean_latency_s"],
            "p50_latency_s": row["p50_latency_s"], "p95_latency_s": row["p95_latency_s"]}


def run_json(run: dict | None, expected: str | None) -> dict[str, Any] | None:
    if run is None:
        return None
    out = {"log_id": run["log_id"], "status": run["status"], "cost_usd": run["cost_usd"],
           "latency_s": run["execution_time_seconds"]}
    if "draft" in run:
        diff = word_diff(expected, run["draft"])
        out.update(draft=run["draft"], diff=diff, changed=changed(diff))
    return out


async def _page_of_items(ctx: ViewerContext, principal: Principal, experiment: dict, after: int,
                         limit: int) -> tuple[list[dict], int | None]:
    dataset = {"id": experiment["dataset_id"], "client_id": experiment["client_id"]}
    items = await list_items(ctx.pool, principal.scope, dataset, after=after, limit=limit + 1)
    return items[:limit], (items[limit - 1]["id"] if len(items) > limit else None)


async def build_experiment(ctx: ViewerContext, principal: Principal, experiment_id: str, *, after: int = 0,
                           limit: int = PAGE) -> dict[str, Any]:
    """One experiment: totals over every item, and one keyset page of items with their diffs."""
    exp = await load_experiment(ctx, principal, experiment_id)
    items, next_after = await _page_of_items(ctx, principal, exp, after, limit)
    totals, page_runs = await asyncio.gather(
        experiment_totals(ctx.pool, principal.scope, exp),
        experiment_runs(ctx.pool, principal.scope, exp, [i["id"] for i in items]))
    rows = [{"item": item_json(i), "run": run_json(page_runs.get(i["id"]), i["expected_output"])} for i in items]
    return {"experiment": experiment_json(exp), "totals": totals_json(totals, exp["item_count"] or 0),
            "items": rows, "next_after": next_after}


# --- two experiments compared ----------------------------------------------------------------

@dataclass(frozen=True)
class Metric:
    """One figure compared per item: `value` reads it from a run (None: unknown); higher is better
    unless `lower_is_better`. `figure` names the store's SQL form of it (store.datasets.reads.FIGURES),
    which counts it over every item; a metric without one (an evaluator's score) is counted here."""

    name: str
    value: Callable[[dict | None], float | None]
    lower_is_better: bool = False
    figure: str | None = None


def _status(run: dict | None) -> float | None:
    return STATUS_RANK.get(run["status"], 0) if run else 0


METRICS = (
    Metric("status", _status, figure="status"),
    Metric("cost_usd", lambda r: r["cost_usd"] if r else None, lower_is_better=True, figure="cost_usd"),
    Metric("latency_s", lambda r: r["execution_time_seconds"] if r else None, lower_is_better=True,
           figure="latency_s"),
)


def score_metric(evaluator: str) -> Metric:
    """An evaluator's score as one more metric (higher is better)."""
    return Metric(f"score:{evaluator}", lambda r: (r or {}).get("scores", {}).get(evaluator))


def judge(metric: Metric, a: dict | None, b: dict | None) -> dict[str, Any]:
    """B against A on `metric`: better / worse / same, or unknown when either value is missing."""
    x, y = metric.value(a), metric.value(b)
    if x is None or y is None:
        return {"metric": metric.name, "a": x, "b": y, "outcome": "unknown"}
    if math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-12):
        outcome = "same"
    else:
        outcome = "better" if (y < x) == metric.lower_is_better else "worse"
    return {"metric": metric.name, "a": x, "b": y, "outcome": outcome}


def summary_of(metrics: tuple[Metric, ...], runs_a: dict, runs_b: dict, item_ids: set[int]) -> dict[str, dict]:
    """Per metric, how many of `item_ids` B did better, worse, the same as A (in Python)."""
    out = {m.name: {"better": 0, "worse": 0, "same": 0, "unknown": 0} for m in metrics}
    for item_id in item_ids:
        for m in metrics:
            out[m.name][judge(m, runs_a.get(item_id), runs_b.get(item_id))["outcome"]] += 1
    return out


async def _scored(ctx: ViewerContext, principal: Principal, client_id: str, *runs: dict[int, dict]) -> set[str]:
    """Attach each run's evaluator scores (`run["scores"]`); the evaluators seen."""
    log_ids = [r["log_id"] for rs in runs for r in rs.values()]
    scores = await item_scores(ctx, principal, client_id, log_ids) if log_ids else {}
    for rs in runs:
        for r in rs.values():
            r["scores"] = scores.get(r["log_id"], {})
    return {name for per_log in scores.values() for name in per_log}


async def _summary(ctx: ViewerContext, principal: Principal, a: dict, b: dict,
                   metrics: tuple[Metric, ...]) -> dict[str, dict]:
    """Counts over every item: the store counts the metrics it has a figure for; the others
    (scores) are judged here over every item's runs, read only when such a metric exists."""
    summary = await compare_counts(ctx.pool, principal.scope, a, b,
                                   {m.figure: m.lower_is_better for m in metrics if m.figure})
    rest = tuple(m for m in metrics if not m.figure)
    if rest:
        runs_a, runs_b = (await experiment_runs(ctx.pool, principal.scope, a),
                          await experiment_runs(ctx.pool, principal.scope, b))
        await _scored(ctx, principal, a["client_id"], runs_a, runs_b)
        summary.update(summary_of(rest, runs_a, runs_b, set(runs_a) | set(runs_b)))
    return {m.name: summary[m.figure or m.name] for m in metrics}


async def build_experiment_comparison(ctx: ViewerContext, principal: Principal, first: str, second: str, *,
                                      after: int = 0, limit: int = PAGE) -> dict[str, Any]:
    """Experiments `first` (A) and `second` (B) on the same dataset: per item the metrics judged
    (B against A), a summary over every item, and one keyset page of items."""
    a, b = (await load_experiment(ctx, principal, first), await load_experiment(ctx, principal, second))
    if (a["client_id"], a["dataset_id"]) != (b["client_id"], b["dataset_id"]):
        raise BadRequest("b: the two experiments must be runs on the same dataset")
    items, next_after = await _page_of_items(ctx, principal, a, after, limit)
    ids = [i["id"] for i in items]
    totals_a, totals_b, page_a, page_b = await asyncio.gather(
        experiment_totals(ctx.pool, principal.scope, a), experiment_totals(ctx.pool, principal.scope, b),
        experiment_runs(ctx.pool, principal.scope, a, ids), experiment_runs(ctx.pool, principal.scope, b, ids))
    evaluators = await _scored(ctx, principal, a["client_id"], page_a, page_b)
    metrics = METRICS + tuple(score_metric(e) for e in sorted(evaluators))
    rows = []
    for i in items:
        ra, rb = page_a.get(i["id"]), page_b.get(i["id"])
        judged = [judge(m, ra, rb) for m in metrics]
        rows.append({"item": item_json(i), "a": run_json(ra, i["expected_output"]),
                     "b": run_json(rb, i["expected_output"]), "metrics": judged, "outcome": judged[0]["outcome"]})
    return {"a": experiment_json(a), "b": experiment_json(b),
            "totals": {"a": totals_json(totals_a, a["item_count"] or 0),
                       "b": totals_json(totals_b, b["item_count"] or 0)},
            "summary": await _summary(ctx, principal, a, b, metrics), "metrics": [m.name for m in metrics],
            "items": rows, "next_after": next_after}


def experiment_client(value: Any, principal: Principal) -> str | None:
    """A provider's optional `client` narrowing of the experiment list."""
    return dataset_client(value, principal) if principal.is_provider and value else None
