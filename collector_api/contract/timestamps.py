"""`ticket_info.executed_at`: the one timestamp the collector reads, checked and parsed one way."""
from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

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


# Stored logs are dated in [EARLIEST, now + LATEST_AHEAD]: earlier or later is a clock or client
# bug, and a far-future date would sit in the DEFAULT partition for months (docs/collector.md).
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
LATEST_AHEAD = timedelta(days=1)


def out_of_bounds(moment: datetime, now: datetime | None = None) -> str | None:
    """None when `moment` is within [2000-01-01, now + 1 day], else why not (naming the bound)."""
    now = now or datetime.now(UTC)
    if moment < EARLIEST:
        return "is before 2000-01-01T00:00:00Z"
    if moment > now + LATEST_AHEAD:
        return "is more than 1 day in the future"
    return None


def is_date_time(value: str) -> bool:
    """The JSON Schema's "date-time" format as the collector checks it (same rule as the parser)."""
    try:
        parse_executed_at(value)
    except ValueError:
        return False
    return True
