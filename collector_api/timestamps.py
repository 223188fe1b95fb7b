"""`ticket_info.executed_at`: the one timestamp the collector reads, checked and parsed one way."""
from __future__ import annotations

import re
from datetime import UTC, datetime

# RFC 3339 date-time (T/t, Z/z), plus the offset without a colon that strftime("%z") writes and
# Python parses: "2026-11-25T10:00:00+0530". An offset (or Z) is required.
_SHAPE = re.compile(r"\d{4}-\d\d-\d\d[Tt]\d\d:\d\d:\d\d(?:\.\d+)?(?:[Zz]|[+-]\d\d:?\d\d)")


def parse_executed_at(value: str) -> datetime:
    """The moment in UTC; ValueError unless `value` is a date-time of the shape above."""
    if not isinstance(value, str) or not _SHAPE.fullmatch(value):
        raise ValueError(f"{value!r} is not an RFC 3339 date-time with an offset")
    try:
        return datetime.fromisoformat(value.upper()).astimezone(UTC)
    except OverflowError:  # year 1 at +05:00 is before year 1 in UTC
        raise ValueError(f"{value!r} is out of range in UTC") from None


def is_date_time(value: str) -> bool:
    """The JSON Schema's "date-time" format as the collector checks it (same rule as the parser)."""
    try:
        parse_executed_at(value)
    except ValueError:
        return False
    return True
