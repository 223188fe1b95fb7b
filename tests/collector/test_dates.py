"""collector_api.contract.dates: the one rule for date bounds (the viewer's ranges, the usage
month of the viewer and the CLI, the CLI's days back)."""
from datetime import UTC, datetime, timedelta

import pytest

from collector_api.contract.dates import DateError, check_range, days_before, parse_moment, parse_month


def test_a_month_takes_ascii_digits_only_as_a_date_does():
    """The month parser matched `\\d` (any Unicode digit) where the date parser (ISO 8601) takes
    ASCII digits only: `٢٠٢٦-١١` was a month but `٢٠٢٦-١١-01` not a day."""
    for month in ("٢٠٢٦-١١", "２０２６-１１"):
        with pytest.raises(DateError, match="month"):
            parse_month(month)
    with pytest.raises(DateError, match="start"):
        parse_moment("start", "٢٠٢٦-١١-01")
    assert parse_month(" 2026-11 ") == (datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC))


def test_days_back_are_zero_or_more_and_within_the_calendar():
    """`flusso-obs retention --days -40` took a cutoff 40 days ahead (dropping this month's
    partition); a range's start must come before its end, and days back likewise."""
    now = datetime(2026, 11, 25, 12, tzinfo=UTC)
    assert days_before(now, 0) == now and days_before(now, 30) == now - timedelta(days=30)
    with pytest.raises(DateError, match="days: expected 0 or more"):
        days_before(now, -40)
    for huge in (10**6, 10**12):
        with pytest.raises(DateError, match="days"):
            days_before(now, huge)


def test_ranges_end_after_they_start_and_span_at_most_ten_years():
    day = datetime(2026, 11, 1, tzinfo=UTC)
    with pytest.raises(DateError, match="start: must be before end"):
        check_range(day, day)
    with pytest.raises(DateError, match="end: a range spans at most 10 years"):
        check_range(day - timedelta(days=3661), day)
    now = datetime(2026, 11, 25, 23, 59, tzinfo=UTC)
    assert check_range(None, None, default_days=30, now=now) == (datetime(2026, 10, 27, tzinfo=UTC),
                                                                 datetime(2026, 11, 26, tzinfo=UTC))
    assert check_range(None, day) == (None, day)


def test_days_and_moments():
    assert parse_moment("end", "2026-11-25", end=True) == datetime(2026, 11, 26, tzinfo=UTC)
    assert parse_moment("start", "2026-11-25T10:00:00+02:00") == datetime(2026, 11, 25, 8, tzinfo=UTC)
    assert parse_moment("start", "2026-11-25T10:00:00") == datetime(2026, 11, 25, 10, tzinfo=UTC)
    with pytest.raises(DateError, match="end: expected a date"):
        parse_moment("end", "9999-12-31", end=True)
