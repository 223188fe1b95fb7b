"""Compare two tickets: both headers, metrics and node durations side by side with their
differences, and both waterfalls on one time scale with their critical paths marked."""
from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ..deps import Context, CurrentPrincipal
from ..errors import BadRequest
from ..pages import build_comparison
from ..render import render
from ..routing import PageRoute

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


@router.get("/compare")
async def get_compare(request: Request, ctx: Context, principal: CurrentPrincipal) -> Response:
    data = await build_comparison(ctx, principal, *parse_pair(request.query_params))
    return render(request, "compare.html", {"principal": principal, **data})
