"""How numbers read on the pages: durations with adaptive units, compact counts, metric values, axis ticks.

Pure functions returning plain strings; templates reach them as Jinja filters (autoescaped like
any other text).
"""
from __future__ import annotations

import math
from typing import Any

from collector_api.contract.numbers import finite_number, non_negative

# (unit, size in milliseconds), smallest first
_TIME_UNITS = (("ns", 1e-6), ("µs", 1e-3), ("ms", 1.0), ("s", 1000.0))


def _decimals(value: float, digits: int) -> int:
    """Decimals that show `value` with `digits` significant digits (never fewer than 0)."""
    return max(0, digits - 1 - math.floor(math.log10(abs(value))))


def duration_ms(value: Any, digits: int = 3) -> str:
    """A duration given in milliseconds, in the unit that reads best: 420 µs, 93.9 ms, 1.64 s."""
    ms = finite_number(value)
    if ms is None:
        return "–" if value is None else str(value)
    if ms == 0:
        return "0 ms"
    size = abs(ms)
    for index, (unit, scale) in enumerate(_TIME_UNITS):
        last = index == len(_TIME_UNITS) - 1
        if not last and size >= _TIME_UNITS[index + 1][1]:
            continue
        scaled = float(f"{ms / scale:.{digits}g}")  # rounded to `digits` significant digits
        if abs(scaled) >= 1000:
            if not last:  # 999.96 ms reads as 1.00 s
                continue
            return f"{ms / scale:,.0f} {unit}"  # long runs: every digit of the seconds
        return f"{scaled:,.{_decimals(scaled, digits)}f} {unit}"
    return f"{ms / 1000:,.0f} s"  # unreachable: the last unit always returns


def duration_s(value: Any, digits: int = 3) -> str:
    """A duration given in seconds (see duration_ms)."""
    seconds = finite_number(value)
    if seconds is None:
        return "–" if value is None else str(value)
    return duration_ms(seconds * 1000, digits)


def compact(value: Any) -> str:
    """A count in a few characters: 950, 35.1k, 146k, 1.23M, 4.5B."""
    number = finite_number(value)
    if number is None:
        return "–" if value is None else str(value)
    size = abs(number)
    if size < 1000:
        return f"{number:,.0f}" if number == int(number) else f"{number:.3g}"
    for suffix, scale in (("k", 1e3), ("M", 1e6), ("B", 1e9), ("T", 1e12)):
        scaled = number / scale
        places = _decimals(scaled, 3)
        if abs(round(scaled, places)) < 1000 or suffix == "T":
            text = f"{scaled:.{places}f}"
            if "." in text:
                text = text.rstrip("0").rstrip(".")
            return text + suffix
    return str(value)  # unreachable


def money(value: Any) -> str:
    number = finite_number(value)
    if number is None:
        return "–"
    return f"${number:,.4f}" if abs(number) < 1 else f"${number:,.2f}"


# --- the Metrics list of a ticket ----------------------------------------------------------

METRIC_GROUPS = (
    ("Outcome", ("overall_confidence", "hallucination_risk", "execution_time_seconds", "react_iterations")),
    ("Tokens and cost", ("input_tokens", "output_tokens", "total_tokens", "cost_usd", "llm_calls")),
    ("Retrieval", ("retrieval_calls", "retrieval_top_score", "retrieval_mean_score", "vision_results",
                   "visual_results", "text_results")),
    ("Evidence", ("evidence_items", "evidence_conflicts")),
    ("Errors", ("node_errors", "tool_errors", "dropped_spans", "dropped_events")),
    ("Other", ()),
)


def _metric_group(key: str) -> int:
    for index, (_, keys) in enumerate(METRIC_GROUPS):
        if key in keys:
            return index
    name = key.lower()
    if "token" in name or "cost" in name or name.startswith("llm_"):
        return 1
    if name.startswith("retrieval") or name.endswith("_results"):
        return 2
    if name.startswith("evidence"):
        return 3
    if "error" in name or name.startswith("dropped"):
        return 4
    return 5


def metric_value(key: str, value: Any) -> str:
    """A metric's value with its unit, judged from its name: *_ms, *_seconds, cost/usd, counts, scores."""
    if value is None:
        return "–"
    number = finite_number(value)
    if number is None:
        return str(value)
    name = key.lower()
    if name.endswith("_ms"):
        return duration_ms(number)
    if name.endswith(("_seconds", "_secs", "_s")):
        return duration_s(number)
    if "cost" in name or name.endswith("_usd"):
        return money(number)
    if name.endswith("_chars"):
        return f"{number:,.0f} chars"
    if isinstance(value, int) or number == int(number) and ("token" in name or abs(number) >= 10):
        return f"{number:,.0f}"
    if abs(number) < 10:
        return f"{number:.3f}".rstrip("0").rstrip(".") if number else "0"
    return f"{number:,.2f}"


def ordered_metrics(metrics: dict) -> list[tuple[str, list[tuple[str, str]]]]:
    """[(group title, [(key, formatted value), ...]), ...] in reading order; empty groups left out."""
    groups: list[list[str]] = [[] for _ in METRIC_GROUPS]
    for key in metrics:
        groups[_metric_group(str(key))].append(key)
    out = []
    for (title, known), keys in zip(METRIC_GROUPS, groups, strict=True):
        if not keys:
            continue
        rank = {k: i for i, k in enumerate(known)}
        keys.sort(key=lambda k: (rank.get(k, len(rank)), str(k)))
        out.append((title, [(str(k), metric_value(str(k), metrics[k])) for k in keys]))
    return out


# --- waterfall axis --------------------------------------------------------------------------

def nice_axis(total_ms: float, *, min_intervals: int = 3, max_intervals: int = 8) -> tuple[float, list[str]]:
    """(axis end in ms, tick labels from 0 to the end in even round steps: 1, 2, 2.5 or 5 × 10^k)."""
    total = non_negative(total_ms) or 1.0
    best: tuple[float, int, float] | None = None  # (axis end, intervals, step)
    for exponent in range(math.floor(math.log10(total / max_intervals)) - 1, math.floor(math.log10(total)) + 1):
        for mantissa in (1, 2, 2.5, 5):
            step = mantissa * 10.0 ** exponent
            intervals = max(1, math.ceil(total / step - 1e-9))
            if not min_intervals <= intervals <= max_intervals:
                continue
            end = intervals * step
            if best is None or (end, intervals) < (best[0], best[1]):
                best = (end, intervals, step)
    if best is None:  # cannot happen for a positive total; keep a sane fallback
        best = (total, 4, total / 4)
    end, intervals, step = best
    unit, scale = "ms", 1.0
    for name, size in reversed(_TIME_UNITS):  # the largest unit in which the step is at least 1
        if step / size >= 1 - 1e-9:
            unit, scale = name, size
            break
    else:
        unit, scale = _TIME_UNITS[0]
    scaled_step = step / scale
    places = next((p for p in (0, 1) if abs(scaled_step * 10**p - round(scaled_step * 10**p)) < 1e-9), 2)
    labels = [f"{i * scaled_step:,.{places}f} {unit}" if i else "0" for i in range(intervals + 1)]
    return end, labels
