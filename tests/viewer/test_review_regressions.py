"""Inputs a reviewer found that gave 500s: odd ids, dates at the ends of time, deep span chains."""
import json

import psycopg
import pytest
from fastapi.testclient import TestClient

from config.server import ServerSettings
from flusso_obs.server import create_app
from tests.collector.helpers import make_log, make_record, make_request
from tests.helpers import make_key as _make_key


def make_key(dsn, client, scope="ingest"):
    """In a thread: a session-wide Playwright loop may own this thread's event loop."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(_make_key, dsn, client, scope).result()


@pytest.fixture()
def reader(db_dsn):
    settings = ServerSettings(_env_file=None, flusso_session_secret="s" * 40)
    with TestClient(create_app(settings, db_dsn)) as client:
        client.headers["X-API-Key"] = make_key(db_dsn, "acme", scope="read")
        yield client


def _bad_date(name: str, value: str) -> str:
    return (f"{name}: expected a date like 2026-11-25 or an ISO 8601 date-time between the years 1 and 9999,"
            f" got {value!r}")


@pytest.mark.parametrize("url, status, detail", [
    # "²".isdigit() is True but int("²") raises: an id is ASCII digits or no ticket at all
    ("/api/v1/tickets/²", 404, "no such ticket"),
    # the last day of year 9999 ends in year 10000; year 1 at +05:00 starts in year 0 (UTC)
    ("/api/v1/tickets?end=9999-12-31", 400, _bad_date("end", "9999-12-31")),
    ("/api/v1/tickets?start=0001-01-01T00:00:00%2B05:00", 400, _bad_date("start", "0001-01-01T00:00:00+05:00")),
    # an unencoded "+" arrives as a space: a malformed date-time, named as such
    ("/api/v1/tickets?start=0001-01-01T00:00:00+05:00", 400, _bad_date("start", "0001-01-01T00:00:00 05:00")),
    ("/api/v1/stats?end=9999-12-31", 400, _bad_date("end", "9999-12-31")),
    ("/api/v1/stats?start=0001-01-01T00:00:00%2B05:00", 400, _bad_date("start", "0001-01-01T00:00:00+05:00")),
    ("/api/v1/tickets/export.csv?end=9999-12-31", 400, _bad_date("end", "9999-12-31")),
])
def test_odd_inputs_are_refused_with_the_reason_not_a_500(reader, url, status, detail):
    r = reader.get(url)
    assert (r.status_code, r.json()) == (status, {"detail": detail}), (url, r.status_code, r.text[:300])


def test_digits_of_other_scripts_never_name_a_ticket(reader, db_dsn):
    """int("١٢") is 12: an id written in Arabic-Indic digits must not open ticket 12."""
    ingest = make_key(db_dsn, "acme")
    r = reader.post("/v1/logs", content=make_request(make_record(make_log(ticket_id="DIGITS"))).SerializeToString(),
                    headers={"Content-Type": "application/x-protobuf", "X-API-Key": ingest})
    assert r.status_code == 200, r.content[:200]
    with psycopg.connect(db_dsn) as conn:
        log_id = conn.execute("SELECT id FROM workflow_logs WHERE ticket_id = 'DIGITS'").fetchone()[0]
    assert reader.get(f"/api/v1/tickets/{log_id}").status_code == 200
    arabic_indic = str(log_id).translate(str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩"))
    assert int(arabic_indic) == log_id  # what a plain int() would have looked up
    r = reader.get(f"/api/v1/tickets/{arabic_indic}")
    assert (r.status_code, r.json()) == (404, {"detail": "no such ticket"})


def test_a_deep_chain_of_nested_spans_renders(reader, db_dsn):
    log = make_log(ticket_id="DEEP")
    spans = [{"name": f"s{i}", "kind": "chain", "span_id": f"{i + 1:016x}",
              "parent_span_id": f"{i:016x}" if i else None, "start_offset_ms": float(i), "duration_ms": 1.0,
              "status": "OK", "error": None, "attributes": {}} for i in range(1900)]
    log["trace"]["spans"] = spans
    ingest = make_key(db_dsn, "acme")
    r = reader.post("/v1/logs", content=make_request(make_record(log)).SerializeToString(),
                    headers={"Content-Type": "application/x-protobuf", "X-API-Key": ingest})
    assert r.status_code == 200, r.content[:200]
    with psycopg.connect(db_dsn) as conn:
        log_id = conn.execute("SELECT id FROM workflow_logs WHERE ticket_id = 'DEEP'").fetchone()[0]
    assert reader.get(f"/api/v1/tickets/{log_id}").status_code == 200

    from viewer.pages import build_waterfall
    rows = build_waterfall(json.loads(json.dumps(spans)))
    assert len(rows) == 1900 and rows[0]["name"] == "s0" and rows[-1]["name"] == "s1899"


def test_numbers_beyond_64_bits_display_and_export(reader, db_dsn):
    """jsonb returns 1e20 or a 30-digit id as a Python int beyond 64 bits; the ticket API, the
    ticket page and the raw download still answer 200 with the exact number."""
    from tests.collector.helpers import AnyValue

    log = make_log(ticket_id="BIG")
    log["metrics"]["custom_count"] = 0
    log["trace"]["external_id"] = 0
    text = (json.dumps(log).replace('"custom_count": 0', '"custom_count": 1e20')
            .replace('"external_id": 0', '"external_id": 123456789012345678901234567890'))
    record = make_record(None, body=AnyValue(string_value=text))
    record.trace_id = bytes.fromhex(log["trace_id"])
    ingest = make_key(db_dsn, "acme")
    r = reader.post("/v1/logs", content=make_request(record).SerializeToString(),
                    headers={"Content-Type": "application/x-protobuf", "X-API-Key": ingest})
    assert r.status_code == 200, r.content[:200]
    with psycopg.connect(db_dsn) as conn:
        log_id = conn.execute("SELECT id FROM workflow_logs WHERE ticket_id = 'BIG'").fetchone()[0]
    api = reader.get(f"/api/v1/tickets/{log_id}")
    assert api.status_code == 200, api.text[:300]
    assert "123456789012345678901234567890" in api.text
    from viewer.jsonout import dumps
    assert json.loads(dumps({"n": 10**30, "s": "é"})) == {"n": 10**30, "s": "é"}
    assert dumps({"a": [1, {"b": 10**25}]}, indent=True).decode().startswith("{\n  ")
