"""OTLP/gRPC Export of logs and traces against a live collector: the same edge as HTTP.

Every test talks to the real gRPC server (grpc.aio in uvicorn's event loop) on 127.0.0.1 with a
real PostgreSQL. What each proves is in its name; the answer comes after COMMIT, so a row counted
right after an OK was stored before the OK.
"""
from __future__ import annotations

import secrets

import grpc
import httpx
import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from tests.collector.conftest import make_key
from tests.collector.helpers import make_log, make_record, make_request
from tests.traces.conftest import trace_settings

from .conftest import (
    CALL_TIMEOUT_S,
    LOGS_METHOD,
    TRACES_METHOD,
    count_rows,
    logs_stub,
    raw_call,
    retry_delay_s,
    span_request,
    traces_stub,
)
from .live import GrpcLiveServer


def test_logs_export_is_stored_before_the_ok(grpc_server, channel, acme_key, db_dsn):
    logs = [make_log(ticket_id=f"T-{i}") for i in range(3)]
    response = logs_stub(channel).Export(make_request(*map(make_record, logs)), metadata=(("x-api-key", acme_key),),
                                         timeout=CALL_TIMEOUT_S)
    assert response == ExportLogsServiceResponse()  # no partial success
    assert count_rows(db_dsn, "workflow_logs") == 3  # committed before the answer


def test_bearer_metadata_and_gzip(grpc_server, channel, acme_key, db_dsn):
    request = make_request(make_record(make_log()))
    logs_stub(channel).Export(request, metadata=(("authorization", f"Bearer {acme_key}"),),
                              compression=grpc.Compression.Gzip, timeout=CALL_TIMEOUT_S)
    assert count_rows(db_dsn, "workflow_logs") == 1


@pytest.mark.parametrize("compression", [grpc.Compression.Deflate, grpc.Compression.NoCompression])
def test_deflate_and_plain_messages(grpc_server, channel, acme_key, db_dsn, compression):
    logs_stub(channel).Export(make_request(make_record(make_log()), make_record(make_log())),
                              metadata=(("x-api-key", acme_key),), compression=compression, timeout=CALL_TIMEOUT_S)
    assert count_rows(db_dsn, "workflow_logs") == 2


def test_message_encoding_is_told_from_the_first_bytes():
    """gzip's magic is no protobuf's first byte; an OTLP request starts with field 1 (0x0a)."""
    import gzip
    import zlib

    from collector_api.http.grpc_edge import message_encoding

    message = make_request(make_record(make_log())).SerializeToString()
    assert message[0] == 0x0A and message_encoding(message) == "identity"
    assert message_encoding(gzip.compress(message)) == "gzip"
    assert all(message_encoding(zlib.compress(message, level)) == "deflate" for level in (1, 6, 9))
    assert message_encoding(b"") == message_encoding(b"\x1f") == "identity"


def test_replay_is_not_stored_twice(grpc_server, channel, acme_key, db_dsn):
    request = make_request(make_record(make_log()))
    for _ in range(2):
        logs_stub(channel).Export(request, metadata=(("x-api-key", acme_key),), timeout=CALL_TIMEOUT_S)
    assert count_rows(db_dsn, "workflow_logs") == 1


def test_partial_success_names_the_refused_record(grpc_server, channel, acme_key, db_dsn):
    bad = make_log()
    del bad["outcome"]
    response = logs_stub(channel).Export(make_request(make_record(make_log()), make_record(bad)),
                                         metadata=(("x-api-key", acme_key),), timeout=CALL_TIMEOUT_S)
    assert response.partial_success.rejected_log_records == 1
    assert "record 1" in response.partial_success.error_message
    assert count_rows(db_dsn, "workflow_logs") == 1


def test_all_rejected_is_invalid_argument(grpc_server, channel, acme_key):
    payload = make_request(make_record(make_log(client_id="globex"))).SerializeToString()
    _, error = raw_call(channel, LOGS_METHOD, payload, (("x-api-key", acme_key),))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and "all 1 log records rejected" in error.details()


def test_keys_and_scopes(grpc_server, channel, acme_key, db_dsn):
    read_key = make_key(db_dsn, "acme", "read")
    payload = make_request(make_record(make_log())).SerializeToString()
    cases = {"no key": ((), grpc.StatusCode.UNAUTHENTICATED),
             "bad key": ((("x-api-key", "fo_nope"),), grpc.StatusCode.UNAUTHENTICATED),
             "bad bearer": ((("authorization", "Bearer fo_nope"),), grpc.StatusCode.UNAUTHENTICATED),
             "read key": ((("x-api-key", read_key),), grpc.StatusCode.PERMISSION_DENIED)}
    for method in (LOGS_METHOD, TRACES_METHOD):
        for name, (metadata, expected) in cases.items():
            _, error = raw_call(channel, method, payload, metadata)
            assert error is not None and error.code() == expected, (method, name, error)
    assert count_rows(db_dsn, "workflow_logs") == 0


def test_traces_export_stages_spans(grpc_server, channel, acme_key, db_dsn):
    request = span_request(secrets.token_bytes(16), secrets.token_bytes(8))
    response = traces_stub(channel).Export(request, metadata=(("x-api-key", acme_key),), timeout=CALL_TIMEOUT_S)
    assert not response.HasField("partial_success")
    assert count_rows(db_dsn, "trace_spans") == 1


def test_traces_partial_success(grpc_server, channel, acme_key, db_dsn):
    request = span_request(secrets.token_bytes(16), secrets.token_bytes(8))
    request.resource_spans[0].scope_spans[0].spans.append(Span(name="no ids"))
    response = traces_stub(channel).Export(request, metadata=(("x-api-key", acme_key),), timeout=CALL_TIMEOUT_S)
    assert response.partial_success.rejected_spans == 1 and "span 1" in response.partial_success.error_message
    assert count_rows(db_dsn, "trace_spans") == 1


def test_draining_is_unavailable_with_retry_info(grpc_server, channel, acme_key, db_dsn):
    grpc_server.app.state.drain.begin()
    _, error = raw_call(channel, LOGS_METHOD, make_request(make_record(make_log())).SerializeToString(),
                        (("x-api-key", acme_key),))
    assert error.code() == grpc.StatusCode.UNAVAILABLE
    delay = grpc_server.settings.flusso_retry_after_seconds
    assert retry_delay_s(error) == (delay, delay)
    assert count_rows(db_dsn, "workflow_logs") == 0


def test_tenant_rate_is_resource_exhausted_with_retry_info(db_dsn):
    server = GrpcLiveServer(db_dsn, trace_settings(flusso_tenant_rate_limit_per_s=0.01)).start()
    try:
        key = make_key(db_dsn, "acme")
        with grpc.insecure_channel(server.target) as channel:
            errors = [raw_call(channel, LOGS_METHOD, make_request(make_record(make_log())).SerializeToString(),
                               (("x-api-key", key),))[1] for _ in range(3)]
    finally:
        server.stop()
    refused = [e for e in errors if e is not None]
    assert refused and all(e.code() == grpc.StatusCode.RESOURCE_EXHAUSTED for e in refused), errors
    assert retry_delay_s(refused[0])[0] == server.settings.flusso_retry_after_seconds


def test_traces_unconfigured_is_unimplemented(db_dsn):
    server = GrpcLiveServer(db_dsn, trace_settings(flusso_pii_hash_key=None)).start()
    try:
        key = make_key(db_dsn, "acme")
        with grpc.insecure_channel(server.target) as channel:
            _, error = raw_call(channel, TRACES_METHOD, span_request(b"\x01" * 16, b"\x02" * 8).SerializeToString(),
                                (("x-api-key", key),))
    finally:
        server.stop()
    assert error.code() == grpc.StatusCode.UNIMPLEMENTED and "FLUSSO_PII_HASH_KEY" in error.details()


def test_grpc_calls_are_counted_apart_from_http(grpc_server, channel, acme_key):
    logs_stub(channel).Export(make_request(make_record(make_log()), make_record(make_log())),
                              metadata=(("x-api-key", acme_key),), timeout=CALL_TIMEOUT_S)
    metrics = httpx.get(grpc_server.url + "/metrics", timeout=10).text
    assert 'flusso_logs_received_total{endpoint="otlp_grpc"} 2.0' in metrics
    assert 'flusso_request_seconds_count{endpoint="otlp_grpc",status="200"} 1.0' in metrics


def test_the_grpc_server_serves_the_apps_own_receivers(grpc_server):
    """Same objects as the HTTP routes, so a rule of the edge cannot differ between transports."""
    from collector_api.http.edge import all_routes, receiver_of

    http = {r.signal.grpc_service: r for r in map(receiver_of, all_routes(grpc_server.app.routes))
            if r is not None and r.signal is not None}
    served = grpc_server.app.state.grpc.methods
    assert set(served) == {LOGS_METHOD, TRACES_METHOD}
    for name, receiver in served.items():
        assert receiver is http[name.split("/")[1]]


def test_port_zero_turns_grpc_off(db_dsn):
    from tests.conftest import LiveServer

    server = LiveServer(db_dsn).start()  # create_app without grpc_port: HTTP only
    try:
        assert server.server.config.app.state.grpc is None
    finally:
        server.stop()


@pytest.mark.parametrize("method", [LOGS_METHOD, TRACES_METHOD])
def test_unknown_method_of_a_service_is_unimplemented(channel, method):
    _, error = raw_call(channel, method.replace("/Export", "/Upload"), b"")
    assert error.code() == grpc.StatusCode.UNIMPLEMENTED
