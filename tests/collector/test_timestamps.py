"""executed_at: the schema's "date-time" format and the parser agree, and keep accepting what
senders write (strftime's "+0000" offsets included)."""
from datetime import UTC, datetime

import pytest

from collector_api.contract.prepare import Rejected, prepare_row
from collector_api.contract.schema import schema_error
from collector_api.contract.timestamps import is_date_time, parse_executed_at
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


# ---- stored dates are bounded to [2000-01-01, now + 1 day] ---------------------------------------

def _iso(moment: datetime) -> str:
    return moment.isoformat()


def _out_of_bounds_values() -> list[str]:
    from datetime import timedelta

    now = datetime.now(UTC)
    return ["1999-12-31T23:59:59Z", "1970-01-01T00:00:00Z", "2000-01-01T00:30:00+01:00",
            _iso(now + timedelta(days=1, minutes=5)), _iso(now + timedelta(days=150)), "9999-12-31T00:00:00Z"]


def _in_bounds_values() -> list[str]:
    from datetime import timedelta

    now = datetime.now(UTC)
    return ["2000-01-01T00:00:00Z", _iso(now + timedelta(hours=23)), _iso(now - timedelta(days=3000))]


def test_executed_at_outside_the_bounds_is_rejected_naming_the_field():
    for value in _out_of_bounds_values():
        log = make_log()
        log["ticket_info"]["executed_at"] = value
        result = prepare_row(0, log, "acme", None)
        assert isinstance(result, Rejected), value
        assert "ticket_info.executed_at" in result.reason and "2000-01-01 to now + 1 day" in result.reason
    for value in _in_bounds_values():
        log = make_log()
        log["ticket_info"]["executed_at"] = value
        assert not isinstance(prepare_row(0, log, "acme", None), Rejected), value


def test_legacy_endpoint_answers_422_naming_executed_at(client, acme_key, db_dsn):
    import psycopg

    for value in _out_of_bounds_values():
        log = make_log()
        log["ticket_info"]["executed_at"] = value
        r = client.post("/api/v1/logs", json=log, headers={"X-API-Key": acme_key})
        assert r.status_code == 422, (value, r.text)
        assert "ticket_info.executed_at" in r.json()["detail"]
    with psycopg.connect(db_dsn) as conn:
        assert conn.execute("SELECT count(*) FROM workflow_logs").fetchone()[0] == 0


def test_otlp_rejects_the_record_in_partial_success_and_stores_the_rest(client, acme_key, db_dsn):
    import psycopg
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse

    from tests.collector.helpers import make_record, make_request

    future = make_log(ticket_id="FUTURE")
    future["ticket_info"]["executed_at"] = _out_of_bounds_values()[4]
    request = make_request(make_record(make_log(ticket_id="NOW")), make_record(future))
    r = client.post("/v1/logs", content=request.SerializeToString(),
                    headers={"Content-Type": "application/x-protobuf", "X-API-Key": acme_key})
    assert r.status_code == 200
    partial = ExportLogsServiceResponse.FromString(r.content).partial_success
    assert partial.rejected_log_records == 1
    assert "record 1: ticket_info.executed_at" in partial.error_message
    with psycopg.connect(db_dsn) as conn:
        assert [t for (t,) in conn.execute("SELECT ticket_id FROM workflow_logs")] == ["NOW"]
