"""Date bounds, one rule for the viewer and the CLI: a day or a moment, a month, a range, days back.

Every bound is a UTC moment; a range is [start, end). A day (YYYY-MM-DD) is a whole UTC day, so
an end day is included; a month (YYYY-MM) is [its 1st, the next 1st). Digits are ASCII only (the
ISO 8601 parser's rule; a month once accepted any Unicode digit). A range ends after it starts
and spans at most MAX_RANGE_DAYS; a number of days back is 0 or more. Every refusal is a
DateError naming the field. Pure: no I/O.
"""
from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta

MAX_RANGE_DAYS = 3660  # about 10 years
_MONTH = re.compile(r"^([0-9]{4})-([0-9]{2})$")


class DateError(ValueError):
    """A date, month, range or number of days refused; the message starts with the field's name."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field


def utc_midnight(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def parse_moment(field: str, value: str, *, end: bool = False) -> datetime:
    """YYYY-MM-DD (a whole UTC day; an `end` day is included) or an ISO 8601 date-time (UTC when
    it names no offset)."""
    try:
        if len(value) == 10:
            moment = utc_midnight(date.fromisoformat(value))
            return moment + timedelta(days=1) if end else moment
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return moment.astimezone(UTC)
    except (ValueError, OverflowError):  # OverflowError: 9999-12-31 + 1 day, year 1 at +05:00
        raise DateError(field, "expected a date like 2026-11-25 or an ISO 8601 date-time between the years "
                               f"1 and 9999, got {value[:40]!r}") from None


def parse_month(text: str) -> tuple[datetime, datetime]:
    """`2026-11` -> [2026-11-01, 2026-12-01) in UTC."""
    match = _MONTH.match(text.strip())
    if not match or not 1 <= int(match.group(2)) <= 12 or int(match.group(1)) < 1:
        raise DateError("month", f"expected a month like 2026-11 (YYYY-MM), got {text[:40]!r}")
    year, month = int(match.group(1)), int(match.group(2))
    if year == 9999 and month == 12:
        raise DateError("month", f"{text[:40]!r} is past the last month supported")
    return datetime(year, month, 1, tzinfo=UTC), datetime(year + month // 12, month % 12 + 1, 1, tzinfo=UTC)


def check_range(start: datetime | None, end: datetime | None, *, default_days: int | None = None,
                now: datetime | None = None) -> tuple[datetime | None, datetime | None]:
    """(start, end), checked: it ends after it starts and spans at most MAX_RANGE_DAYS. With
    `default_days`, a missing end is tomorrow's UTC midnight (today included) and a missing start
    `default_days` days before the end."""
    if default_days is not None:
        if end is None:
            end = utc_midnight((now or datetime.now(UTC)).astimezone(UTC).date() + timedelta(days=1))
        if start is None:
            start = days_before(end, default_days, field="start")
    if start and end and start >= end:
        raise DateError("start", "must be before end")
    if start and end and end - start > timedelta(days=MAX_RANGE_DAYS):
        raise DateError("end", "a range spans at most 10 years")
    return start, end


def days_before(moment: datetime, days: int, *, field: str = "days") -> datetime:
    """`days` (0 or more) days before `moment`; DateError for a negative count or one reaching
    past the year 1."""
    if days < 0:
        raise DateError(field, f"expected 0 or more days, got {days}")
    try:
        return moment - timedelta(days=days)
    except OverflowError:
        raise DateError(field, f"{days} days reach past the year 1") from None
