"""One nesting limit (decode.MAX_NESTING levels) for a workflow log on both
ingest endpoints. At the limit a log is stored and readable; beyond it, 400 naming the limit."""
import json

import pytest
from google.rpc import status_pb2
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from collector_api.contract.jsontext import MAX_NESTING
from tests.collector.helpers import make_log, make_record, make_request
from tests.helpers import make_key

LIMIT_TEXT = f"limit of {MAX_NESTING} levels"


def deep_text(levels: int) -> tuple[dict, str]:
    """A valid log (1 level) whose extra top-level field nests arrays so the whole is `levels` deep."""
    log = make_log(ticket_id=f"deep-{levels}")
    nested = "[" * (levels - 1) + "1" + "]" * (levels - 1)
    return log, json.dumps(log).replace('"schema_version"', f'"deep": {nested}, "schema_version"', 1)


def deep_kvlist_request(log: dict, levels: int) -> bytes:
    """An OTLP request whose one record has the log as a kvlist body, `levels` deep. Built in place:
    protobuf refuses to copy messages nested beyond its own cap."""
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

    request = ExportLogsServiceRequest()
    record = request.resource_logs.add().scope_logs.add().log_records.add()
    record.event_name = "flusso.workflow_log"
    record.trace_id = bytes.fromhex(log["trace_id"])

    def fill(target: AnyValue, value) -> None:
        if isinstance(value, dict):
            target.kvlist_value.SetInParent()
            for k, v in value.items():
                if v is None:
                    continue
                kv = target.kvlist_value.values.add()
                kv.key = k
                fill(kv.value, v)
        elif isinstance(value, bool):
            target.bool_value = value
        elif isinstance(value, (int, float)):
            target.double_value = float(value)
        elif isinstance(value, str):
            target.string_value = value
        elif isinstance(value, list):
            target.array_value.SetInParent()
            for item in value:
                fill(target.array_value.values.add(), item)
        # None: an AnyValue with nothing set reads as null

    fill(record.body, log)
    kv = record.body.kvlist_value.values.add()
    kv.key = "deep"
    cursor = kv.value
    for _ in range(levels - 2):
        kv = cursor.kvlist_value.values.add()
        kv.key = "k"
        cursor = kv.value
    cursor.string_value = "bottom"
    return request.SerializeToString()


def otlp_json(text: str) -> bytes:
    return json.dumps({"resourceLogs": [{"scopeLogs": [{"logRecords": [
        {"eventName": "flusso.workflow_log", "body": {"stringValue": text}}]}]}]}).encode()


def _post(client, key, endpoint: str, levels: int):
    log, text = deep_text(levels)
    if endpoint == "legacy":
        return log, client.post("/api/v1/logs", content=text,
                                headers={"Content-Type": "application/json", "X-API-Key": key})
    if endpoint == "otlp-json":
        return log, client.post("/v1/logs", content=otlp_json(text),
                                headers={"Content-Type": "application/json", "X-API-Key": key})
    if endpoint == "otlp-pb":
        record = make_record(log, body=AnyValue(string_value=text))
    else:  # otlp-kvlist
        return log, client.post("/v1/logs", content=deep_kvlist_request(log, levels),
                                headers={"Content-Type": "application/x-protobuf", "X-API-Key": key})
    return log, client.post("/v1/logs", content=make_request(record).SerializeToString(),
                            headers={"Content-Type": "application/x-protobuf", "X-API-Key": key})


ENDPOINTS = ["legacy", "otlp-json", "otlp-pb", "otlp-kvlist"]


@pytest.mark.parametrize("endpoint", ENDPOINTS[:3])
def test_a_log_at_the_limit_is_stored_and_readable(client, acme_key, db_dsn, endpoint):
    log, r = _post(client, acme_key, endpoint, MAX_NESTING)
    assert r.status_code == 200, r.content[:300]
    read_key = make_key(db_dsn, "acme", "read")
    found = client.get("/api/v1/tickets", params={"ticket": log["ticket_info"]["ticket_id"]},
                       headers={"X-API-Key": read_key})
    assert found.status_code == 200
    rows = found.json()["tickets"]
    assert len(rows) == 1
    one = client.get(f"/api/v1/tickets/{rows[0]['id']}", headers={"X-API-Key": read_key})
    assert one.status_code == 200, one.text[:300]


@pytest.mark.parametrize("levels", [MAX_NESTING + 1, 1000, 1100])
@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_beyond_the_limit_is_400_naming_it(client, acme_key, endpoint, levels):
    if endpoint == "otlp-kvlist" and levels > MAX_NESTING + 1:
        pytest.skip("such a kvlist cannot even be built: protobuf caps messages at 100 levels")
    _, r = _post(client, acme_key, endpoint, levels)
    assert r.status_code == 400, r.content[:300]
    if endpoint == "legacy":
        message = r.json()["detail"]
    elif endpoint == "otlp-json":
        message = json.loads(r.content)["message"]
    else:
        message = status_pb2.Status.FromString(r.content).message
    if endpoint == "otlp-kvlist":  # protobuf's own cap (100 messages, ~32 kvlist levels) comes first
        assert "not a valid protobuf" in message and "MaxDepth" in message, message
    else:
        assert LIMIT_TEXT in message, message


def test_kvlist_body_below_protobufs_own_cap_is_stored(client, acme_key):
    _, r = _post(client, acme_key, "otlp-kvlist", 30)
    assert r.status_code == 200, r.content[:300]


@pytest.mark.parametrize("levels", [1020, 5000])
def test_a_deep_otlp_json_envelope_is_400_not_500(client, acme_key, levels):
    """The request itself ~1,000 levels deep (not the log inside it): it used to reach Python's
    recursion limit while its ids were converted, a 500."""
    body = ('{"resourceLogs": [{"scopeLogs": [{"logRecords": [{"attributes": ' + '{"a":' * levels + "1"
            + "}" * levels + "}]}]}]}").encode()
    r = client.post("/v1/logs", content=body, headers={"Content-Type": "application/json", "X-API-Key": acme_key})
    assert r.status_code == 400, r.content[:300]
    assert LIMIT_TEXT in json.loads(r.content)["message"]
