"""executed_at: the schema's "date-time" format and the parser agree, and keep accepting what
senders write (strftime's "+0000" offsets included)."""
from datetime import UTC, datetime

import pytest

from collector_api.ingest import Rejected, prepare_row
from collector_api.timestamps import is_date_time, parse_executed_at
from collector_api.validate import schema_error
from tests.collector.helpers import make_log


@pytest.mark.parametrize("value, utc", [
    ("2026-11-25T10:00:00Z", datetime(2026, 11, 25, 10, tzinfo=UTC)),
    ("2026-11-25T10:00:00.123456+00:00", datetime(2026, 11, 25, 10, 0, 0, 123456, tzinfo=UTC)),
    ("2026-11-25T15:30:00+0530", datetime(2026, 11, 25, 10, tzinfo=UTC)),  # strftime("%z")
    ("2026-11-25t10:00:00z", datetime(2026, 11, 25, 10, tzinfo=UTC)),  # RFC 3339 allows lower case
    ("2026-11-25T10:00:00.123456789-02:00", datetime(2026, 11, 25, 12, 0, 0, 123456, tzinfo=UTC)),
])
def test_accepted_and_parsed_to_utc(value, utc):
    assert is_date_time(value)
    assert parse_executed_at(value) == utc
    log = make_log()
    log["ticket_info"]["executed_at"] = value
    assert schema_error(log) is None


@pytest.mark.parametrize("value", [
    "2026-11-25T10:00:00",        # no offset: the moment is unknown
    "2026-11-25 10:00:00+00:00",  # space instead of T
    "2026-02-30T10:00:00Z",       # no such day
    "2026-11-25T23:59:60Z",       # leap second: Python cannot represent it
    "0001-01-01T00:00:00+05:00",  # before year 1 in UTC
    "2026-11-25",
    "20261125T100000Z",
    "yesterday",
])
def test_refused_with_the_field_named(value):
    assert not is_date_time(value)
    with pytest.raises(ValueError):
        parse_executed_at(value)
    log = make_log()
    log["ticket_info"]["executed_at"] = value
    # by the schema, or (a leap second, year 1 at +05:00: valid RFC 3339) when the row is built
    result = prepare_row(0, log, "acme", None)
    assert isinstance(result, Rejected) and "executed_at" in result.reason, result
