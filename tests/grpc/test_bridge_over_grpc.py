"""The bridge configured with OTEL_EXPORTER_OTLP_PROTOCOL=grpc delivers to the live gRPC port with
the guarantees it has over HTTP: a ticket's log is stored; with the collector down the log waits
(retries) and arrives once the collector is up; the collector's answers map to the same outcomes."""
from __future__ import annotations

import grpc
import psycopg
import pytest

import otel_bridge
from otel_bridge import record, workflow
from otel_bridge.grpc_wire import answer_of, grpc_target
from otel_bridge.wire import DELIVERED, REJECTED, RETRY, SPLIT, classify
from tests.bridge.conftest import settings
from tests.traces.conftest import trace_settings

from .live import GrpcLiveServer, free_port


@workflow("flusso_ticket")
def handle(ticket_id: str) -> str:
    record.ticket(ticket_id, requester_email="jane@example.com", subject="help")
    record.outcome("SUCCESS", "resolved", overall_confidence=0.9)
    return ticket_id


@pytest.fixture()
def bridge_cleanup():
    yield
    otel_bridge.shutdown(timeout_seconds=2.0)


def stored_tickets(dsn: str) -> list[str]:
    with psycopg.connect(dsn) as conn:
        return [r[0] for r in conn.execute("SELECT ticket_id FROM workflow_logs ORDER BY ticket_id")]


def configure_grpc(target: str, key: str, **kw) -> None:
    otel_bridge.configure(settings(otel_exporter_otlp_protocol="grpc", export_timeout_seconds=5.0, **kw),
                          endpoint=f"http://{target}", api_key=key)


def test_bridge_delivers_over_grpc(grpc_server, acme_key, db_dsn, bridge_cleanup):
    configure_grpc(grpc_server.target, acme_key)
    assert handle("GB-1") == "GB-1"
    assert otel_bridge.flush(timeout_seconds=10.0)
    assert stored_tickets(db_dsn) == ["GB-1"]
    assert otel_bridge.stats()["logs_exported"] == 1


def test_bridge_over_grpc_waits_out_a_collector_outage(db_dsn, acme_key, bridge_cleanup):
    """Nothing listens on the gRPC port: the log is kept and retried; once a collector listens
    there, it is delivered (the retry loop is the bridge's own, as over HTTP)."""
    grpc_port = free_port()
    configure_grpc(f"127.0.0.1:{grpc_port}", acme_key, retry_max_age_s=120)
    handle("GB-OUT")
    assert not otel_bridge.flush(timeout_seconds=1.0)  # no collector: not delivered, still held
    server = GrpcLiveServer(db_dsn, trace_settings(), grpc_port=grpc_port).start()
    try:
        assert otel_bridge.flush(timeout_seconds=30.0)
    finally:
        server.stop()
    assert stored_tickets(db_dsn) == ["GB-OUT"]


class _Failed(grpc.RpcError):
    def __init__(self, code, details="", trailers=()):
        self._code, self._details, self._trailers = code, details, trailers

    def code(self):
        return self._code

    def details(self):
        return self._details

    def trailing_metadata(self):
        return self._trailers


def test_grpc_answers_map_to_the_http_outcomes():
    from collector_api.http.errors import TooManyRequests, Unavailable
    from collector_api.http.grpc_edge import error_trailers

    codes = grpc.StatusCode
    busy = _Failed(codes.UNAVAILABLE, "busy", error_trailers(Unavailable("busy", retry_after=3)))
    quota = _Failed(codes.RESOURCE_EXHAUSTED, "quota", error_trailers(TooManyRequests("quota", retry_after=2)))
    cases = {
        "draining / overloaded": (busy, RETRY, 3.0),
        "tenant quota": (quota, RETRY, 2.0),
        "message too large": (_Failed(codes.RESOURCE_EXHAUSTED, "too large"), SPLIT, None),
        "no server": (_Failed(codes.UNAVAILABLE, "failed to connect"), RETRY, None),
        "bad key": (_Failed(codes.UNAUTHENTICATED, "invalid key"), REJECTED, None),
        "wrong scope": (_Failed(codes.PERMISSION_DENIED, "scope"), REJECTED, None),
        "undecodable": (_Failed(codes.INVALID_ARGUMENT, "not protobuf"), REJECTED, None),
        "slow": (_Failed(codes.DEADLINE_EXCEEDED, "timeout"), RETRY, None),
        "server bug": (_Failed(codes.INTERNAL, "ref 1"), RETRY, None),
    }
    for name, (error, kind, delay) in cases.items():
        outcome = classify(answer_of(error))
        assert (outcome.kind, outcome.retry_after_s) == (kind, delay), (name, outcome)
    assert classify(answer_of(_Failed(codes.INVALID_ARGUMENT, "all 1 log records rejected"))).message == \
        "all 1 log records rejected"
    assert DELIVERED  # the OK path is the live test above


def test_grpc_target_follows_the_otel_endpoint_rules():
    assert grpc_target("http://127.0.0.1:4317") == ("127.0.0.1:4317", False)
    assert grpc_target("http://collector:4317/v1/logs") == ("collector:4317", False)
    assert grpc_target("https://obs.example.com") == ("obs.example.com:4317", True)
    assert grpc_target("obs.example.com:4317") == ("obs.example.com:4317", True)
