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


def _auc(pairs: list[tuple[float, bool]]) -> float | None:
    """Mann-Whitney: the chance a correct ticket outscores an incorrect one (ties count half)."""
    pos = sum(1 for _, c in pairs if c)
    neg = len(pairs) - pos
    if not pos or not neg:
        return None
    wins, below, i = 0.0, 0, 0
    ordered = sorted(pairs)
    while i < len(ordered):
        j = i
        while j < len(ordered) and ordered[j][0] == ordered[i][0]:
            j += 1
        tie_pos = sum(1 for _, c in ordered[i:j] if c)
        tie_neg = (j - i) - tie_pos
        wins += tie_pos * (below + 0.5 * tie_neg)
        below += tie_neg
        i = j
    return wins / (pos * neg)


def calibration_of(pairs: list[tuple[float, bool]]) -> dict[str, Any]:
    """n, enough, buckets (bounds, n, mean score, accuracy), ece, auc, agreement; below MIN_N the
    figures are None and `message` says why."""
    n = len(pairs)
    out: dict[str, Any] = {"n": n, "enough": n >= MIN_N, "min_n": MIN_N, "buckets": [], "ece": None,
                           "auc": None, "agreement": None, "message": None}
    if not out["enough"]:
        out["message"] = f"fewer than {MIN_N} reviewed tickets with this score ({n}): not enough to judge"
        return out
    groups: dict[int, list[tuple[float, bool]]] = defaultdict(list)
    for score, correct in pairs:
        groups[min(int(score * BUCKETS), BUCKETS - 1)].append((score, correct))
    ece = 0.0
    for b in range(BUCKETS):
        g = groups.get(b, [])
        entry = {"lower": b / BUCKETS, "upper": (b + 1) / BUCKETS, "n": len(g), "mean_score": None, "accuracy": None}
        if g:
            entry["mean_score"] = sum(s for s, _ in g) / len(g)
            entry["accuracy"] = sum(1 for _, c in g if c) / len(g)
            ece += len(g) / n * abs(entry["accuracy"] - entry["mean_score"])
        out["buckets"].append(entry)
    out["ece"] = ece
    out["auc"] = _auc(pairs)
    out["agreement"] = sum(1 for s, c in pairs if (s >= AGREE_AT) == c) / n
    return out


def judge_calibration(rows: list[dict]) -> list[dict[str, Any]]:
    """Per evaluator (by name), its calibration from rows of (evaluator, score, correct)."""
    by_name: dict[str, list[tuple[float, bool]]] = defaultdict(list)
    for r in rows:
        by_name[r["evaluator"]].append((float(r["score"]), bool(r["correct"])))
    return [{"evaluator": name, **calibration_of(pairs)} for name, pairs in sorted(by_name.items())]
