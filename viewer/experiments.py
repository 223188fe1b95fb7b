"""The data of the experiment pages, for HTML and JSON alike: the list, one experiment (per item the
expected output against the new draft as a word diff, outcome, cost, latency; totals), and two
experiments on the same dataset compared item by item.

A comparison is a list of METRICS per item, each judged better / worse / same. Evaluator scores
join as more metrics: `item_scores` is the one place they are read (empty until the evaluations'
store module is wired in: collector_api.store.evals.reads.scores_by_log(conn, client_id, log_ids)).
"""
from __future__ import annotations

import asyncio
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from collector_api.store.datasets.reads import experiment_runs, get_experiment, list_experiments, list_items

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
            "dataset_id": row["dataset_id"], "item_count": row["item_count"],
            "created_at": row["created_at"].isoformat()}


async def build_experiment_list(ctx: ViewerContext, principal: Principal, client: str | None) -> dict[str, Any]:
    rows = await list_experiments(ctx.pool, principal.scope, client)
    return {"experiments": [experiment_json(r) for r in rows]}


async def load_experiment(ctx: ViewerContext, principal: Principal, experiment_id: str) -> dict:
    """The experiment, or NotFound (absent, another tenant's, or its dataset is gone)."""
    if not isinstance(experiment_id, str) or not _EXPERIMENT_ID.match(experiment_id):
        raise NotFound("no such experiment")
    row = await get_experiment(ctx.pool, principal.scope, experiment_id)
    if row is None or row["dataset"] is None:
        raise NotFound("no such experiment (or it belongs to another client, or its dataset was deleted)")
    return row


async def item_scores(ctx: ViewerContext, principal: Principal, client_id: str,
                      log_ids: list[int]) -> dict[int, dict[str, float]]:
    """log id -> {evaluator: score} of the runs' logs. The seam for evaluator scores: none yet."""
    return {}


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def totals_of(runs: dict[int, dict], item_count: int) -> dict[str, Any]:
    """Items, runs, outcome counts, success rate, cost and latency (mean, p50, p95) of the runs."""
    statuses = [r["status"] for r in runs.values()]
    costs = [r["cost_usd"] for r in runs.values() if r["cost_usd"] is not None]
    latencies = [r["execution_time_seconds"] for r in runs.values() if r["execution_time_seconds"] is not None]
    ran = len(runs)
    return {"item_count": item_count, "ran": ran, "not_run": max(item_count - ran, 0),
            "success": statuses.count("SUCCESS"), "partial": statuses.count("PARTIAL"),
            "failed": statuses.count("FAILED"), "success_rate": statuses.count("SUCCESS") / ran if ran else None,
            "cost_usd": sum(costs) if costs else None, "mean_cost_usd": sum(costs) / len(costs) if costs else None,
            "mean_latency_s": sum(latencies) / len(latencies) if latencies else None,
            "p50_latency_s": _percentile(latencies, 0.5), "p95_latency_s": _percentile(latencies, 0.95)}


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
    runs, page_runs = await asyncio.gather(
        experiment_runs(ctx.pool, principal.scope, exp),
        experiment_runs(ctx.pool, principal.scope, exp, [i["id"] for i in items]))
    rows = [{"item": item_json(i), "run": run_json(page_runs.get(i["id"]), i["expected_output"])} for i in items]
    return {"experiment": experiment_json(exp), "totals": totals_of(runs, exp["item_count"] or 0),
            "items": rows, "next_after": next_after}


# --- two experiments compared ----------------------------------------------------------------

@dataclass(frozen=True)
class Metric:
    """One figure compared per item: `value` reads it from a run (None: unknown); higher is better
    unless `lower_is_better`."""

    name: str
    value: Callable[[dict | None], float | None]
    lower_is_better: bool = False


def _status(run: dict | None) -> float | None:
    return STATUS_RANK.get(run["status"], 0) if run else 0


METRICS = (
    Metric("status", _status),
    Metric("cost_usd", lambda r: r["cost_usd"] if r else None, lower_is_better=True),
    Metric("latency_s", lambda r: r["execution_time_seconds"] if r else None, lower_is_better=True),
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


def metrics_for(scored: list[dict]) -> tuple[Metric, ...]:
    evaluators = sorted({name for run in scored if run for name in run.get("scores", {})})
    return METRICS + tuple(score_metric(e) for e in evaluators)


def summary_of(metrics: tuple[Metric, ...], runs_a: dict, runs_b: dict, item_ids: set[int]) -> dict[str, dict]:
    """Per metric, how many items B did better, worse, the same as A (over every item)."""
    out = {m.name: {"better": 0, "worse": 0, "same": 0, "unknown": 0} for m in metrics}
    for item_id in item_ids:
        for m in metrics:
            out[m.name][judge(m, runs_a.get(item_id), runs_b.get(item_id))["outcome"]] += 1
    return out


async def _with_scores(ctx: ViewerContext, principal: Principal, client_id: str, *runs: dict[int, dict]) -> None:
    log_ids = [r["log_id"] for rs in runs for r in rs.values()]
    scores = await item_scores(ctx, principal, client_id, log_ids) if log_ids else {}
    for rs in runs:
        for r in rs.values():
            r["scores"] = scores.get(r["log_id"], {})


async def build_experiment_comparison(ctx: ViewerContext, principal: Principal, first: str, second: str, *,
                                      after: int = 0, limit: int = PAGE) -> dict[str, Any]:
    """Experiments `first` (A) and `second` (B) on the same dataset: per item the metrics judged
    (B against A), a summary over every item, and one keyset page of items."""
    a, b = (await load_experiment(ctx, principal, first), await load_experiment(ctx, principal, second))
    if (a["client_id"], a["dataset_id"]) != (b["client_id"], b["dataset_id"]):
        raise BadRequest("b: the two experiments must be runs on the same dataset")
    items, next_after = await _page_of_items(ctx, principal, a, after, limit)
    ids = [i["id"] for i in items]
    runs_a, runs_b, page_a, page_b = await asyncio.gather(
        experiment_runs(ctx.pool, principal.scope, a), experiment_runs(ctx.pool, principal.scope, b),
        experiment_runs(ctx.pool, principal.scope, a, ids), experiment_runs(ctx.pool, principal.scope, b, ids))
    await _with_scores(ctx, principal, a["client_id"], runs_a, runs_b)
    for page, full in ((page_a, runs_a), (page_b, runs_b)):
        for item_id, run in page.items():
            run["scores"] = full.get(item_id, {}).get("scores", {})
    metrics = metrics_for([*runs_a.values(), *runs_b.values()])
    rows = []
    for i in items:
        ra, rb = page_a.get(i["id"]), page_b.get(i["id"])
        judged = [judge(m, ra, rb) for m in metrics]
        rows.append({"item": item_json(i), "a": run_json(ra, i["expected_output"]),
                     "b": run_json(rb, i["expected_output"]), "metrics": judged, "outcome": judged[0]["outcome"]})
    all_ids = set(runs_a) | set(runs_b)
    return {"a": experiment_json(a), "b": experiment_json(b),
            "totals": {"a": totals_of(runs_a, a["item_count"] or 0), "b": totals_of(runs_b, b["item_count"] or 0)},
            "summary": summary_of(metrics, runs_a, runs_b, all_ids), "metrics": [m.name for m in metrics],
            "items": rows, "next_after": next_after}


def experiment_client(value: Any, principal: Principal) -> str | None:
    """A provider's optional `client` narrowing of the experiment list."""
    return dataset_client(value, principal) if principal.is_provider and value else None
