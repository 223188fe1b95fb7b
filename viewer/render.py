"""Jinja2 environment (autoescape ON) and the one function that renders a page."""
from __future__ import annotations

import math
from datetime import datetime, timezone
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from .formatting import compact, duration_ms, duration_s


def _num(value: Any, digits: int = 2) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return "–" if value is None else str(value)
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:,.{digits}f}"


def _pct(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return "–"
    return f"{value * 100:.1f} %"


def _when(value: Any) -> str:
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    return "–" if value is None else str(value)


def _when_parts(value: Any) -> tuple[str, str]:
    """(date, time) of a moment, so a page can keep each part unbroken."""
    if isinstance(value, datetime):
        moment = value.astimezone(timezone.utc)
        return moment.strftime("%Y-%m-%d"), moment.strftime("%H:%M:%S UTC")
    return ("–" if value is None else str(value)), ""


def _money(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return "–"
    return f"${value:,.4f}" if abs(value) < 1 else f"${value:,.2f}"


def create_environment() -> Environment:
    env = Environment(
        loader=PackageLoader("viewer", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(num=_num, pct=_pct, when=_when, when_parts=_when_parts, money=_money,
                       ms=duration_ms, secs=duration_s, compact=compact)
    return env


def render(request: Request, template: str, context: dict, *, status: int = 200) -> HTMLResponse:
    ctx = request.app.state.viewer
    values = {"request_path": request.url.path, "principal": None}
    values.update(context)
    values["csrf"] = getattr(values["principal"], "csrf", None)
    page = ctx.env.get_template(template).render(**values)
    return HTMLResponse(page, status_code=status)
