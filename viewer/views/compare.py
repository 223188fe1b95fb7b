"""Compare two tickets: both headers, metrics and node durations side by side with their
differences, and both waterfalls on one time scale with their critical paths marked."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from collector_api.contract.numbers import finite_number

from ..auth import Principal
from ..context import ViewerContext
from ..deps import Context, CurrentPrincipal
from ..errors import BadRequest
from ..formatting import metric_value, nice_axis, ordered_metrics
from ..render import render
from ..routing import PageRoute
from .ticket import _dict, _list, _trace_end, build_ticket_detail, build_waterfall, critical_spans, mark_critical

router = APIRouter(include_in_schema=False, route_class=PageRoute)
MAX_ID_DIGITS = 18


def _log_id(name: str, text: str) -> int:
    value = text.strip()
    if not (value.isascii() and value.isdigit()) or len(value) > MAX_ID_DIGITS:
        raise BadRequest(f"{name}: not a ticket id (the number in /tickets/ID), got {text[:40]!r}")
    return int(value)


def parse_pair(params) -> tuple[int, int]:
    """The two log ids: `a` and `b`, or exactly two `id` values (the search page's check boxes)."""
    picked = params.getlist("id") if hasattr(params, "getlist") else []
    if "a" in params or "b" in params or not picked:
        pair = [("a", params.get("a") or ""), ("b", params.get("b") or "")]
    elif len(picked) != 2:
        raise BadRequest(f"id: pick exactly two tickets to compare, got {len(picked)}")
    else:
        pair = [("id", picked[0]), ("id", picked[1])]
    first, second = (_log_id(name, value) for name, value in pair)
    if first == second:
        raise BadRequest(f"{pair[1][0]}: the same ticket twice; pick two different tickets")
    return first, second


def _diff(a: Any, b: Any) -> float | None:
    x, y = finite_number(a), finite_number(b)
    return None if x is None or y is None else y - x


def metric_rows(a: Mapping, b: Mapping) -> list[dict[str, Any]]:
    """Scalar metrics of both logs in the ticket page's order: key, both values (formatted), b - a."""
    scalar = {k: None for m in (a, b) for k, v in m.items() if not isinstance(v, (dict, list))}
    rows = []
    for title, items in ordered_metrics(scalar):
        for key, _ in items:
            rows.append({"group": title, "key": key,
                         "a": metric_value(key, a.get(key)) if key in a else "–",
                         "b": metric_value(key, b.get(key)) if key in b else "–",
                         "diff": _diff(a.get(key), b.get(key))})
    return rows


def node_rows(a: Mapping, b: Mapping, crit_a: set[str], crit_b: set[str]) -> list[dict[str, Any]]:
    """Per node: both durations (ms), b - a, and whether it was on each critical path."""
    names = list(dict.fromkeys([*a, *b]))
    return [{"node": str(n), "a": finite_number(a.get(n)), "b": finite_number(b.get(n)),
             "diff": _diff(a.get(n), b.get(n)), "crit_a": n in crit_a, "crit_b": n in crit_b} for n in names[:200]]


def _side(row: dict, axis_end: float) -> dict[str, Any]:
    log = _dict(row["log_data"])
    spans = _list(_dict(log.get("trace")).get("spans"))
    critical = critical_spans(row)
    waterfall = mark_critical(build_waterfall(spans, axis_end), critical)
    stored = row.get("critical_path") if isinstance(row.get("critical_path"), dict) else {}
    return {"row": row, "metrics": _dict(log.get("metrics")), "waterfall": waterfall,
            "critical_known": critical is not None,
            "critical_nodes": {n for n in _list(stored.get("nodes")) if isinstance(n, str)}}


async def build_comparison(ctx: ViewerContext, principal: Principal, params) -> dict[str, Any]:
    first, second = parse_pair(params)
    row_a = await build_ticket_detail(ctx, principal, first)  # NotFound (404) for another tenant's
    row_b = await build_ticket_detail(ctx, principal, second)
    ends = [_trace_end(_list(_dict(_dict(r["log_data"]).get("trace")).get("spans"))[:2000]) for r in (row_a, row_b)]
    axis_end, ticks = nice_axis(max(ends))
    a, b = _side(row_a, axis_end), _side(row_b, axis_end)
    return {"a": a, "b": b, "ticks": ticks,
            "metric_rows": metric_rows(a["metrics"], b["metrics"]),
            "node_rows": node_rows(_dict(a["metrics"].get("node_durations_ms")),
                                   _dict(b["metrics"].get("node_durations_ms")),
                                   a["critical_nodes"], b["critical_nodes"])}


@router.get("/compare")
async def get_compare(request: Request, ctx: Context, principal: CurrentPrincipal) -> Response:
    data = await build_comparison(ctx, principal, request.query_params)
    return render(request, "compare.html", {"principal": principal, **data})
