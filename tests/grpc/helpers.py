"""Helpers of the gRPC tests: a live collector with its OTLP/gRPC port (uvicorn in a thread, the gRPC
server in its event loop), stubs, raw calls and span requests.

Mirrors tests.helpers.LiveServer (HTTP only) with `create_app(..., grpc_port=...)`, as `serve` runs it.
"""
from __future__ import annotations

import time

import grpc
import psycopg
from google.rpc import error_details_pb2, status_pb2
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

from config.server import ServerSettings
from tests.helpers import LiveServer, free_port


class GrpcLiveServer(LiveServer):
    """LiveServer with its OTLP/gRPC port too (a free one unless given), as `serve` runs it."""

    def __init__(self, dsn: str, settings: ServerSettings | None = None, *, port: int | None = None,
                 grpc_port: int | None = None):
        self.grpc_port = grpc_port or free_port()
        self.target = f"127.0.0.1:{self.grpc_port}"
        super().__init__(dsn, settings or ServerSettings(_env_file=None, flusso_session_secret="grpc-test-" + "x" * 32),
                         port, grpc_port=self.grpc_port)


LOGS_METHOD = "/opentelemetry.proto.collector.logs.v1.LogsService/Export"


TRACES_METHOD = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


CALL_TIMEOUT_S = 20


def logs_stub(channel):
    return logs_service_pb2_grpc.LogsServiceStub(channel)


def traces_stub(channel):
    return trace_service_pb2_grpc.TraceServiceStub(channel)


def raw_call(channel, method: str, payload: bytes, metadata=(), **kwargs):
    """One unary call with the message as raw bytes; returns (response bytes or None, error or None)."""
    call = channel.unary_unary(method, request_serializer=None, response_deserializer=None)
    try:
        return call(payload, metadata=metadata, timeout=CALL_TIMEOUT_S, **kwargs), None
    except grpc.RpcError as exc:
        return None, exc


def retry_delay_s(error: grpc.RpcError) -> tuple[float | None, float | None]:
    """The RetryInfo delay in grpc-status-details-bin and in google.rpc.retryinfo-bin (None: absent)."""
    trailers = dict(error.trailing_metadata() or ())
    in_status = None
    if "grpc-status-details-bin" in trailers:
        status = status_pb2.Status.FromString(trailers["grpc-status-details-bin"])
        assert status.code == error.code().value[0] and status.message == error.details()
        for detail in status.details:
            info = error_details_pb2.RetryInfo()
            if detail.Unpack(info):
                in_status = info.retry_delay.seconds + info.retry_delay.nanos / 1e9
    own = trailers.get("google.rpc.retryinfo-bin")
    in_trailer = None
    if own is not None:
        info = error_details_pb2.RetryInfo.FromString(own)
        in_trailer = info.retry_delay.seconds + info.retry_delay.nanos / 1e9
    return in_status, in_trailer


def span_request(trace_id: bytes, span_id: bytes, name: str = "invoke_agent support",
                 **fields) -> ExportTraceServiceRequest:
    now = time.time_ns()
    span = Span(trace_id=trace_id, span_id=span_id, name=name, start_time_unix_nano=now - 10**9,
                end_time_unix_nano=now, **fields)
    return ExportTraceServiceRequest(resource_spans=[ResourceSpans(scope_spans=[ScopeSpans(spans=[span])])])


def count_rows(dsn: str, table: str) -> int:
    with psycopg.connect(dsn) as conn:
        return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # table: a constant of the tests
