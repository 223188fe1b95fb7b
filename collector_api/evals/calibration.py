"""Judge calibration: an evaluator's scores against the reviewers' verdicts. Pure.

The same figures as the agent's confidence calibration (collector_api.store.reviews.reads:
ten buckets, ECE, fewer than MIN_N reviewed: not enough to judge): a score is read as the
probability that a reviewer judges the ticket `correct`. Plus the ROC AUC of the score for
`correct` against the rest and the agreement rate: the share of tickets where "score >= 0.5"
and "judged correct" agree.
"""
from __future__ import annotations

from collections import defaultdict
from typing import Any

MIN_N = 30
BUCKETS = 10
AGREE_AT = 0.5


Histogram = list[tuple[float, int, int]]  # (score, tickets judged correct, tickets judged otherwise)


def _auc(histogram: Histogram) -> float | None:
    """Mann-Whitney: the chance a correct ticket outscores an incorrect one (ties count half)."""
    pos = sum(c for _, c, _ in histogram)
    neg = sum(o for _, _, o in histogram)
    if not pos or not neg:
        return None
    wins, below = 0.0, 0
    for _, correct, other in sorted(histogram):  # one entry per distinct score: its ties
        wins += correct * (below + 0.5 * other)
        below += other
    return wins / (pos * neg)


def calibration_of(histogram: Histogram) -> dict[str, Any]:
    """n, enough, buckets (bounds, n, mean score, accuracy), ece, auc, agreement of one
    evaluator's histogram (one entry per distinct score value); below MIN_N the figures are None
    and `message` says why."""
    n = sum(c + o for _, c, o in histogram)
    out: dict[str, Any] = {"n": n, "enough": n >= MIN_N, "min_n": MIN_N, "buckets": [], "ece": None,
                           "auc": None, "agreement": None, "message": None}
    if not out["enough"]:
        out["message"] = f"fewer than {MIN_N} reviewed tickets with this score ({n}): not enough to judge"
        return out
    groups: dict[int, list[tuple[float, int, int]]] = defaultdict(list)
    for entry in histogram:
        groups[min(int(entry[0] * BUCKETS), BUCKETS - 1)].append(entry)
    ece = 0.0
    for b in range(BUCKETS):
        g = groups.get(b, [])
        count = sum(c + o for _, c, o in g)
        entry = {"lower": b / BUCKETS, "upper": (b + 1) / BUCKETS, "n": count, "mean_score": None, "accuracy": None}
        if count:
            entry["mean_score"] = sum(s * (c + o) for s, c, o in g) / count
            entry["accuracy"] = sum(c for _, c, _ in g) / count
            ece += count / n * abs(entry["accuracy"] - entry["mean_score"])
        out["buckets"].append(entry)
    out["ece"] = ece
    out["auc"] = _auc(histogram)
    out["agreement"] = sum(c if s >= AGREE_AT else o for s, c, o in histogram) / n
    return out


def judge_calibration(rows: list[dict]) -> list[dict[str, Any]]:
    """Per evaluator (by name), its calibration from histogram rows (evaluator, score, correct, other)."""
    by_name: dict[str, Histogram] = defaultdict(list)
    for r in rows:
        by_name[r["evaluator"]].append((float(r["score"]), int(r["correct"]), int(r["other"])))
    return [{"evaluator": name, **calibration_of(hist)} for name, hist in sorted(by_name.items())]
