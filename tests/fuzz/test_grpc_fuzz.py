"""Fuzzing what the OTLP/gRPC port adds: both Export methods get generated messages (workflow logs
mutated leaf by leaf, any body, spans with any ids, times, attributes, events and links, values
nested past the limit), broken wire bytes, every way of naming a key, and gzip/deflate.

Every answer is OK or one of the statuses the OTLP spec allows for a refusal (never UNKNOWN or
INTERNAL, always with a message); an OK's response message parses, a partial success says why;
a workflow log acknowledged without rejection is in the database; the server still answers after.

Short mode (`make test`): FLUSSO_FUZZ_EXAMPLES (default 10) x 5 cases per test.
Long mode: bench/fuzz_api.py (the same module, many more cases)."""
from __future__ import annotations

import os

import grpc
import httpx
import psycopg
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from tests.fuzz.helpers import COMPRESSION, TRACES_REQUESTS, auth_metadata, logs_requests, mutated_bytes
from tests.grpc.helpers import LOGS_METHOD, TRACES_METHOD, raw_call

EXAMPLES = 5 * int(os.environ.get("FLUSSO_FUZZ_EXAMPLES", "10"))
COUNT_FILE = os.environ.get("FLUSSO_FUZZ_COUNT_FILE")
REFUSALS = {grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED,
            grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.UNAVAILABLE}
EXPECTED_AUTH = {"scope": grpc.StatusCode.PERMISSION_DENIED, "none": grpc.StatusCode.UNAUTHENTICATED,
                 "bad": grpc.StatusCode.UNAUTHENTICATED}
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                suppress_health_check=list(HealthCheck))


def _call(channel, method: str, payload: bytes, auth, compression):
    metadata, kind = auth
    response, error = raw_call(channel, method, payload, metadata, compression=compression)
    if COUNT_FILE:
        with open(COUNT_FILE, "a", encoding="utf-8") as handle:
            handle.write("1\n")
    event(f"{kind} key: {error.code().name if error is not None else 'OK'}")
    if error is not None:
        assert error.code() in REFUSALS, (error.code(), error.details())
        assert error.details(), error.code()
        if kind in EXPECTED_AUTH:
            assert error.code() == EXPECTED_AUTH[kind], (kind, error.code(), error.details())
    else:
        assert kind == "ok", f"a call with a {kind} key was accepted"
    return response


def _stored(dsn: str, tickets: list[str]) -> set[str]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute("SELECT ticket_id FROM workflow_logs WHERE client_id = 'acme' AND ticket_id = ANY(%s)",
                            (tickets,)).fetchall()
    return {row[0] for row in rows}


def test_generated_logs_exports(grpc_fuzz):
    server, channel, keys = grpc_fuzz

    @FUZZ
    @given(drawn=logs_requests(), auth=auth_metadata(keys), compression=COMPRESSION)
    def run(drawn, auth, compression):
        request, logs = drawn
        raw = _call(channel, LOGS_METHOD, request.SerializeToString(), auth, compression)
        if raw is None:
            return
        response = ExportLogsServiceResponse.FromString(raw)
        partial = response.partial_success
        if partial.rejected_log_records:
            assert partial.error_message
            return
        tickets = [log["ticket_info"]["ticket_id"] for log in logs
                   if isinstance(log.get("ticket_info"), dict) and isinstance(log["ticket_info"].get("ticket_id"), str)]
        if len(tickets) == len(logs):  # an accepted log whose ticket id was replaced cannot be looked up by it
            event(f"{len(tickets)} acknowledged workflow logs looked up")
            assert _stored(server.dsn, tickets) == set(tickets), "acknowledged workflow logs are missing"
    run()
    _still_serving(server)


def test_generated_traces_exports(grpc_fuzz):
    server, channel, keys = grpc_fuzz

    @FUZZ
    @given(request=TRACES_REQUESTS, auth=auth_metadata(keys), compression=COMPRESSION)
    def run(request, auth, compression):
        raw = _call(channel, TRACES_METHOD, request.SerializeToString(), auth, compression)
        if raw is not None:
            partial = ExportTraceServiceResponse.FromString(raw).partial_success
            assert not partial.rejected_spans or partial.error_message
    run()
    _still_serving(server)


def test_broken_wire_bytes(grpc_fuzz):
    """Valid messages of both methods, truncated and overwritten; and bytes that were never a message."""
    server, channel, keys = grpc_fuzz
    ok = ((("x-api-key", keys["ingest"]),), "ok")

    @FUZZ
    @given(data=st.data(), method=st.sampled_from([LOGS_METHOD, TRACES_METHOD]), compression=COMPRESSION)
    def run(data, method, compression):
        if data.draw(st.booleans()):
            message = (data.draw(logs_requests())[0] if method == LOGS_METHOD else data.draw(TRACES_REQUESTS))
            payload = data.draw(mutated_bytes(message.SerializeToString()))
        else:
            payload = data.draw(st.binary(max_size=300))
        raw = _call(channel, method, payload, ok, compression)
        if raw is not None:
            (ExportLogsServiceResponse if method == LOGS_METHOD else ExportTraceServiceResponse).FromString(raw)
    run()
    _still_serving(server)


def _still_serving(server) -> None:
    assert httpx.get(f"{server.url}/healthz", timeout=10).status_code == 200
