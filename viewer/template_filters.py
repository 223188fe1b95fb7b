"""Every Jinja filter the templates use, registered in one place (`install_filters`).

Each takes any value a log may hold (None, text, a number out of range) and never raises.
"""
from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from jinja2 import Environment

from collector_api.contract.numbers import finite_number

from .formatting import compact, duration_ms, duration_s


def number(value: Any, digits: int = 2) -> str:
    if finite_number(value) is None:
        return "–" if value is None else str(value)
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:,.{digits}f}"


def percent(value: Any) -> str:
    fraction = finite_number(value)
    if fraction is None:
        return "–"
    return f"{fraction * 100:.1f} %"


def moment(value: Any) -> str:
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return "–" if value is None else str(value)


def moment_parts(value: Any) -> tuple[str, str]:
    """(date, time) of a moment, so a page can keep each part unbroken."""
    if isinstance(value, datetime):
        utc = value.astimezone(UTC)
        return utc.strftime("%Y-%m-%d"), utc.strftime("%H:%M:%S UTC")
    return ("–" if value is None else str(value)), ""


def iso_stamp(value: Any) -> str:
    """An ISO 8601 UTC time of the JSON builders, shown as "YYYY-MM-DD HH:MM UTC"."""
    if isinstance(value, datetime):
        return moment(value)
    if isinstance(value, str) and len(value) >= 16 and value[10:11] == "T":
        return f"{value[:10]} {value[11:16]} UTC"
    return "–" if value is None else str(value)


def dollars(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return "–"
    return f"${value:,.4f}" if abs(value) < 1 else f"${value:,.2f}"


# Filter name in the templates -> function.
FILTERS = {
    "num": number,
    "pct": percent,
    "when": moment,
    "stamp": iso_stamp,
    "when_parts": moment_parts,
    "money": dollars,
    "ms": duration_ms,
    "secs": duration_s,
    "compact": compact,
}


def install_filters(env: Environment) -> None:
    env.filters.update(FILTERS)
