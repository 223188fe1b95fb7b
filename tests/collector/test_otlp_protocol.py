"""Every line of the OTLP/HTTP behaviour the collector promises, against a real PostgreSQL."""
import gzip
import json
import socket
import zlib

import psycopg
import pytest
from google.rpc import status_pb2
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue, KeyValueList

from tests.collector.helpers import make_log, make_record, make_request
from tests.helpers import make_key, run_async

PB = {"Content-Type": "application/x-protobuf"}


def count_rows(dsn):
    with psycopg.connect(dsn) as conn:
        return conn.execute("SELECT count(*) FROM workflow_logs").fetchone()[0]


def post_pb(client, key, request, **headers):
    return client.post("/v1/logs", content=request.SerializeToString(), headers={**PB, "X-API-Key": key, **headers})


def test_empty_request_gets_200(client, acme_key):
    r = post_pb(client, acme_key, make_request())
    assert r.status_code == 200
    assert ExportLogsServiceResponse.FromString(r.content).partial_success.rejected_log_records == 0


def test_partial_success_stores_valid_records_and_names_the_first_failure(client, acme_key, db_dsn):
    bad = make_log()
    bad["outcome"]["status"] = "MAYBE"
    r = post_pb(client, acme_key, make_request(make_record(make_log()), make_record(bad),
                                               make_record(make_log(), event_name="something.else")))
    assert r.status_code == 200
    partial = ExportLogsServiceResponse.FromString(r.content).partial_success
    assert partial.rejected_log_records == 2
    assert "record 1" in partial.error_message and "outcome.status" in partial.error_message
    assert count_rows(db_dsn) == 1


def test_all_records_invalid_is_400_with_rpc_status(client, acme_key, db_dsn):
    r = post_pb(client, acme_key, make_request(make_record(make_log(), event_name="app.log")))
    assert r.status_code == 400
    status = status_pb2.Status.FromString(r.content)
    assert "not a workflow log" in status.message
    assert count_rows(db_dsn) == 0


def test_undecodable_protobuf_is_400(client, acme_key):
    r = client.post("/v1/logs", content=b"\xff\xff\xff garbage", headers={**PB, "X-API-Key": acme_key})
    assert r.status_code == 400
    assert "protobuf" in status_pb2.Status.FromString(r.content).message


def test_undecodable_json_is_400_in_json(client, acme_key):
    r = client.post("/v1/logs", content=b"{not json",
                    headers={"Content-Type": "application/json", "X-API-Key": acme_key})
    assert r.status_code == 400
    assert "not valid JSON" in r.json()["message"]


@pytest.mark.parametrize("headers", [{}, {"X-API-Key": "fo_wrong" + "x" * 40}, {"Authorization": "Bearer nope"}])
def test_missing_or_wrong_key_is_401(client, headers):
    r = client.post("/v1/logs", content=make_request().SerializeToString(), headers={**PB, **headers})
    assert r.status_code == 401


def test_bearer_key_works_and_revoked_key_is_401(client, db_dsn):

    from collector_api.store.accounts.principals import create_api_key, revoke_api_key
    from collector_api.store.core.db import create_pool

    async def setup():
        async with create_pool(db_dsn) as pool:
            new = await create_api_key(pool, "acme")
            return new

    new = run_async(setup())
    ok = client.post("/v1/logs", content=make_request(make_record(make_log())).SerializeToString(),
                     headers={**PB, "Authorization": f"Bearer {new.secret}"})
    assert ok.status_code == 200

    async def revoke():
        async with create_pool(db_dsn) as pool:
            return await revoke_api_key(pool, new.key.key_id)

    assert run_async(revoke())
    r = post_pb(client, new.secret, make_request(make_record(make_log())))
    assert r.status_code == 401 and "revoked" in status_pb2.Status.FromString(r.content).message


def test_read_scope_key_cannot_ingest(client, db_dsn):
    key = make_key(db_dsn, "acme", scope="read")
    assert post_pb(client, key, make_request()).status_code == 401


def test_401_is_decided_before_the_body_is_read(live_server):
    """A huge declared body with no key: the answer comes without sending a byte of it."""
    with socket.create_connection(("127.0.0.1", live_server.port), timeout=5) as sock:
        sock.sendall(b"POST /v1/logs HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\n"
                     b"Content-Length: 500000000\r\n\r\n")
        head = sock.recv(4096)
    assert head.startswith(b"HTTP/1.1 401")


def test_413_from_content_length_without_reading(live_server, db_dsn):
    key = make_key(db_dsn, "acme")
    with socket.create_connection(("127.0.0.1", live_server.port), timeout=5) as sock:
        sock.sendall(b"POST /v1/logs HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\n"
                     b"X-API-Key: " + key.encode() + b"\r\nContent-Length: 500000000\r\n\r\n")
        head = sock.recv(4096)
    assert head.startswith(b"HTTP/1.1 413")


def test_gzip_bomb_is_413(client, acme_key):
    bomb = gzip.compress(b"\0" * (64 * 1024 * 1024), compresslevel=9)
    assert len(bomb) < 200 * 1024
    r = client.post("/v1/logs", content=bomb, headers={**PB, "X-API-Key": acme_key, "Content-Encoding": "gzip"})
    assert r.status_code == 413
    assert "decompressed" in status_pb2.Status.FromString(r.content).message


@pytest.mark.parametrize("encoding,compress", [("gzip", gzip.compress), ("deflate", zlib.compress)])
def test_gzip_and_deflate_are_accepted(client, acme_key, db_dsn, encoding, compress):
    body = compress(make_request(make_record(make_log())).SerializeToString())
    r = client.post("/v1/logs", content=body, headers={**PB, "X-API-Key": acme_key, "Content-Encoding": encoding})
    assert r.status_code == 200, r.content
    assert count_rows(db_dsn) == 1


def test_corrupt_gzip_is_400(client, acme_key):
    r = client.post("/v1/logs", content=b"\x1f\x8b\x08garbage", headers={**PB, "X-API-Key": acme_key,
                                                                          "Content-Encoding": "gzip"})
    assert r.status_code == 400


@pytest.mark.parametrize("headers", [{"Content-Type": "text/plain"}, {**PB, "Content-Encoding": "br"}])
def test_unsupported_media_is_415(client, acme_key, headers):
    r = client.post("/v1/logs", content=b"x", headers={"X-API-Key": acme_key, **headers})
    assert r.status_code == 415


def test_hand_written_otlp_json_is_accepted(client, acme_key, db_dsn):
    log = make_log(ticket_id="JSON-1")
    body = {"resourceLogs": [{"resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "x"}}]},
                              "scopeLogs": [{"scope": {"name": "hand"}, "logRecords": [{
                                  "timeUnixNano": "1732500000000000000", "severityNumber": 9,
                                  "eventName": "flusso.workflow_log", "traceId": log["trace_id"],
                                  "spanId": "00f067aa0ba902b7", "body": {"stringValue": json.dumps(log)},
                                  "attributes": [{"key": "flusso.ticket_id", "value": {"stringValue": "JSON-1"}}],
                                  "someFutureField": {"ignored": True}}]}]}]}
    r = client.post("/v1/logs", json=body, headers={"X-API-Key": acme_key})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/json")
    with psycopg.connect(db_dsn) as conn:
        assert conn.execute("SELECT ticket_id, trace_id FROM workflow_logs").fetchone() == ("JSON-1", log["trace_id"])


def test_kvlist_body_is_accepted(client, acme_key, db_dsn):
    def to_any(v):
        if isinstance(v, dict):
            return AnyValue(kvlist_value=KeyValueList(values=[KeyValue(key=k, value=to_any(x)) for k, x in v.items()]))
        if isinstance(v, list):
            from opentelemetry.proto.common.v1.common_pb2 import ArrayValue
            return AnyValue(array_value=ArrayValue(values=[to_any(x) for x in v]))
        if isinstance(v, bool):
            return AnyValue(bool_value=v)
        if isinstance(v, int):
            return AnyValue(int_value=v)
        if isinstance(v, float):
            return AnyValue(double_value=v)
        if v is None:
            return AnyValue()
        return AnyValue(string_value=str(v))

    log = make_log(ticket_id="KV-1")
    r = post_pb(client, acme_key, make_request(make_record(log, body=to_any(log))))
    assert r.status_code == 200
    assert ExportLogsServiceResponse.FromString(r.content).partial_success.rejected_log_records == 0
    assert count_rows(db_dsn) == 1


def test_replayed_request_stores_each_ticket_once(client, acme_key, db_dsn):
    request = make_request(make_record(make_log(ticket_id="A")), make_record(make_log(ticket_id="B")))
    for _ in range(3):
        assert post_pb(client, acme_key, request).status_code == 200
    assert count_rows(db_dsn) == 2


def test_a_key_never_writes_into_another_tenant(client, acme_key, db_dsn):
    r = post_pb(client, acme_key, make_request(make_record(make_log(client_id="globex"))))
    assert r.status_code == 400
    assert "does not match the API key's tenant" in status_pb2.Status.FromString(r.content).message
    assert count_rows(db_dsn) == 0


def test_log_without_client_id_gets_the_keys_tenant(client, acme_key, db_dsn):
    assert post_pb(client, acme_key, make_request(make_record(make_log(client_id=None)))).status_code == 200
    with psycopg.connect(db_dsn) as conn:
        assert conn.execute("SELECT client_id, log_data->'identification'->>'client_id' FROM workflow_logs"
                            ).fetchone() == ("acme", "acme")


HOSTILE_BODIES = {
    "nul": lambda log: json.dumps({**log, "trace": {**log["trace"], "note": "a\u0000b", "k\u0000ey": 1}}),
    "nan": lambda log: json.dumps({**log, "metrics": {**log["metrics"], "overall_confidence": float("nan")}}),
    "deep": lambda log: json.dumps({**log, "trace": {**log["trace"], "x": "PLACEHOLDER"}}).replace(
        '"PLACEHOLDER"', "[" * 10000 + "]" * 10000),
    "surrogate": lambda log: json.dumps({**log, "ticket_info": {**log["ticket_info"], "ticket_id": "T-\ud800"},
                                         "trace": {**log["trace"], "\udfff": "x\ud800y"}}),
    "huge_string": lambda log: json.dumps({**log, "trace": {**log["trace"], "blob": "x" * 10_000_000}}),
}


@pytest.mark.parametrize("kind", sorted(HOSTILE_BODIES))
def test_hostile_input_never_gives_500(client, acme_key, kind):
    log = make_log()
    record = make_record(log, body=AnyValue(string_value=HOSTILE_BODIES[kind](log)))
    r = post_pb(client, acme_key, make_request(record))
    expected = 400 if kind == "deep" else 200  # too deep to be a workflow log; the rest is stored cleaned
    assert r.status_code == expected, r.content[:200]
    if expected == 200:
        assert ExportLogsServiceResponse.FromString(r.content).partial_success.rejected_log_records == 0


def test_invalid_utf8_never_gives_500(client, acme_key):
    raw = make_request(make_record(make_log())).SerializeToString()
    r = client.post("/v1/logs", content=raw.replace(b"SUCCESS", b"SUCC\xff\xfeS"),
                    headers={**PB, "X-API-Key": acme_key})
    # proto3 string fields must be UTF-8: the protobuf parser refuses the whole request
    assert r.status_code == 400 and "bad UTF-8" in status_pb2.Status.FromString(r.content).message
    r = client.post("/v1/logs", content=b'{"resourceLogs": "\xff"}',
                    headers={"Content-Type": "application/json", "X-API-Key": acme_key})
    assert r.status_code == 400


@pytest.mark.parametrize("mutation", ["early_year", "late_year", "huge_node_ms", "huge_metric"])
def test_one_unusable_record_never_sinks_the_batch(client, acme_key, db_dsn, mutation):
    """Values the schema allows but Python can't represent reject that record only."""
    bad = make_log(ticket_id="BAD")
    text = None
    if mutation == "early_year":
        bad["ticket_info"]["executed_at"] = "0001-01-01T00:00:00+05:00"
    elif mutation == "late_year":
        bad["ticket_info"]["executed_at"] = "9999-12-31T23:00:00-05:00"
    else:
        key = ("node_durations_ms", "planner") if mutation == "huge_node_ms" else ("cost_usd", None)
        text = json.dumps(bad).replace('"planner": 700.1' if key[1] else '"cost_usd": 0.0231', (
            '"planner": 1' if key[1] else '"cost_usd": 1') + "0" * 400)
        assert text != json.dumps(bad)
    records = [make_record(make_log(ticket_id="GOOD")),
               make_record(bad, body=AnyValue(string_value=text) if text else None)]
    r = post_pb(client, acme_key, make_request(*records))
    assert r.status_code == 200, r.content[:300]
    with psycopg.connect(db_dsn) as conn:
        tickets = sorted(t for (t,) in conn.execute("SELECT ticket_id FROM workflow_logs"))
    rejected = ExportLogsServiceResponse.FromString(r.content).partial_success.rejected_log_records
    # A date beyond what Python represents in UTC rejects the record; a number beyond a double
    # does not refuse the log: its column is left empty and the log is stored.
    refused = mutation in ("early_year", "late_year")
    assert rejected == (1 if refused else 0)
    assert tickets == (["GOOD"] if refused else ["BAD", "GOOD"])


def _stored(dsn):
    with psycopg.connect(dsn) as conn:
        return {r[0]: r[1] for r in conn.execute("SELECT ticket_id, log_data FROM workflow_logs")}


def test_json_text_is_stored_as_sent_unless_postgres_refuses_it(client, acme_key, db_dsn):
    """The sender's JSON text is stored without re-serializing it when nothing had to change; a
    text PostgreSQL refuses (1e-20000 is beyond `numeric`) falls back to our own serialization,
    and the other records of the batch are stored with it."""
    exact = make_log(ticket_id="T-exact")
    exact["trace"]["big"] = 0  # placeholder replaced in the text below
    tiny = make_log(ticket_id="T-tiny")
    tiny["trace"]["tiny"] = 0
    exact_text = json.dumps(exact).replace('"big": 0', '"big": 123456789012345678901234567890')
    tiny_text = json.dumps(tiny).replace('"tiny": 0', '"tiny": 1e-20000')
    records = [make_record(None, body=AnyValue(string_value=text)) for text in (exact_text, tiny_text)]
    for record, log in zip(records, (exact, tiny), strict=True):
        record.trace_id = bytes.fromhex(log["trace_id"])
    r = post_pb(client, acme_key, make_request(*records))
    assert r.status_code == 200, r.text
    assert ExportLogsServiceResponse.FromString(r.content).partial_success.rejected_log_records == 0
    stored = _stored(db_dsn)
    assert stored["T-tiny"]["trace"]["tiny"] == 0.0
    assert stored["T-exact"]["trace"]["big"] == 123456789012345680000000000000  # via a double, like the fallback

    # alone, the exact text is stored as sent: the 30-digit integer survives intact
    exact["ticket_info"]["ticket_id"] = "T-exact-2"
    exact["trace_id"] = "ab" * 16
    text = json.dumps(exact).replace('"big": 0', '"big": 123456789012345678901234567890')
    r = post_pb(client, acme_key, make_request(make_record(None, body=AnyValue(string_value=text))))
    assert r.status_code == 200, r.text
    assert _stored(db_dsn)["T-exact-2"]["trace"]["big"] == 123456789012345678901234567890


def test_a_changed_document_is_reserialized(client, acme_key, db_dsn):
    """client_id filled in from the key, trace_id taken from the log record: what is stored is
    the completed document, not the text as sent."""
    log = make_log(client_id=None, ticket_id="T-fixed")
    trace_id = log.pop("trace_id")
    record = make_record(None, body=AnyValue(string_value=json.dumps(log)))
    record.trace_id = bytes.fromhex(trace_id)
    r = post_pb(client, acme_key, make_request(record))
    assert r.status_code == 200, r.text
    stored = _stored(db_dsn)["T-fixed"]
    assert stored["identification"]["client_id"] == "acme"
    assert stored["trace_id"] == trace_id


ODD_JSON_VALUES = [
    "1e-400", "-0", "1E+308", "-1.7976931348623157e308", "123456789012345678901234567890",
    "-9223372036854775809", "18446744073709551616", "0.000000000000000000000000000001", "1e-16383",
    '"\\ud83d\\ude00"', '"\\u00e9\\u2028\\/"', '{"a": 1, "a": 2}', "[" * 60 + "1" + "]" * 60,  # under MAX_NESTING
    '"' + "\\n" * 5000 + '"', '{"' + "k" * 10000 + '": true}',
]


def test_odd_but_valid_json_texts_are_stored_as_sent_or_reserialized_never_a_5xx(client, acme_key, db_dsn):
    """Texts stored as sent must never turn an unusual JSON value into a 500: each is stored
    (PostgreSQL's jsonb reads it, or the collector's own serialization is used instead)."""
    records = []
    for i, value in enumerate(ODD_JSON_VALUES):
        log = make_log(ticket_id=f"T-odd-{i}")
        log["trace"]["odd"] = "@@ODD@@"
        text = json.dumps(log).replace('"@@ODD@@"', value)
        record = make_record(None, body=AnyValue(string_value=text))
        record.trace_id = bytes.fromhex(log["trace_id"])
        records.append(record)
    r = post_pb(client, acme_key, make_request(*records))
    assert r.status_code == 200, r.text
    assert ExportLogsServiceResponse.FromString(r.content).partial_success.rejected_log_records == 0
    stored = _stored(db_dsn)
    assert len(stored) == len(ODD_JSON_VALUES)
    assert stored["T-odd-11"]["trace"]["odd"] == {"a": 2}  # duplicate keys: the last wins, as orjson read it
    assert stored["T-odd-9"]["trace"]["odd"] == "\U0001F600"


def test_a_value_postgres_refuses_rejects_that_record_only(client, acme_key, db_dsn):
    """A class-22 error from PostgreSQL on one row (here raised by a trigger the test installs)
    rejects that record by name; the others of the batch are stored; never a 500."""
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        conn.execute("""CREATE FUNCTION refuse_evil() RETURNS trigger LANGUAGE plpgsql AS $$
                        BEGIN IF NEW.ticket_id = 'EVIL' THEN
                          RAISE EXCEPTION 'ticket id EVIL is refused' USING ERRCODE = '22023'; END IF;
                        RETURN NEW; END $$""")
        conn.execute("CREATE TRIGGER refuse_evil BEFORE INSERT ON workflow_logs"
                     " FOR EACH ROW EXECUTE FUNCTION refuse_evil()")
    r = post_pb(client, acme_key, make_request(*(make_record(make_log(ticket_id=t)) for t in ("OK-1", "EVIL", "OK-2"))))
    assert r.status_code == 200, r.text
    partial = ExportLogsServiceResponse.FromString(r.content).partial_success
    assert partial.rejected_log_records == 1
    assert "record 1" in partial.error_message and "ticket id EVIL is refused" in partial.error_message
    assert sorted(_stored(db_dsn)) == ["OK-1", "OK-2"]
    r = client.post("/api/v1/logs", json=make_log(ticket_id="EVIL"), headers={"X-API-Key": acme_key})
    assert r.status_code == 422 and "EVIL is refused" in r.json()["detail"]
    r = post_pb(client, acme_key, make_request(make_record(make_log(ticket_id="EVIL"))))
    assert r.status_code == 400 and "EVIL is refused" in status_pb2.Status.FromString(r.content).message


def test_counts_beyond_the_column_type_are_stored_without_the_promoted_value(client, acme_key, db_dsn):
    log = make_log(ticket_id="T-many")
    log["metrics"]["react_iterations"] = 3_000_000_000  # beyond int4
    r = post_pb(client, acme_key, make_request(make_record(log)))
    assert r.status_code == 200, r.text
    with psycopg.connect(db_dsn) as conn:
        column, in_doc = conn.execute("SELECT react_iterations, log_data->'metrics'->>'react_iterations'"
                                      " FROM workflow_logs WHERE ticket_id = 'T-many'").fetchone()
    assert column is None and in_doc == "3000000000"
