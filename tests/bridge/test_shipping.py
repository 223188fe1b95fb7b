"""Fire-and-forget: the workflow never fails and never waits, whatever the collector does.
Every test talks to a real socket on 127.0.0.1 (or a name under .invalid) through the real
OTLP/HTTP log exporter, with a 1 s exporter timeout so each test stays bounded."""

import logging
import time

import pytest
from opentelemetry.sdk._logs.export import LogRecordExporter

import otel_bridge
from otel_bridge import node, pipeline, record, workflow

# A ticket that waited for telemetry would take >= 3 s (the slow receiver's delay; the blackhole and 429
# cases longer); typical overhead is well under 1 ms. 1 s separates the two even on a loaded box
# (0.4 s was seen at load average 12 on 2 cores, from scheduling alone).
MAX_CALL_SECONDS = 1.0


@node("step", kind="tool")
def step(i):
    record.react_iteration(thought=f"step {i}", action="lookup", observation="ok")
    return i


@workflow("flusso_ticket")
def handle(ticket):
    record.ticket(ticket["ticket_id"], requester_email="jane@example.com", subject="help")
    for i in range(3):
        step(i)
    record.outcome("SUCCESS", "resolved", overall_confidence=0.9)
    return ticket["ticket_id"]


def run_tickets(n=5):
    worst = 0.0
    for i in range(n):
        t0 = time.perf_counter()
        assert handle({"ticket_id": f"T-{i}"}) == f"T-{i}"
        worst = max(worst, time.perf_counter() - t0)
    return worst


def assert_bounded_shutdown():
    t0 = time.perf_counter()
    otel_bridge.shutdown(timeout_seconds=1.0)
    assert time.perf_counter() - t0 < 2.5


def test_delivers_one_otlp_log_record_per_ticket(receiver, configure_bridge, validate_log):
    configure_bridge(endpoint=receiver.url)
    run_tickets(3)
    recs = receiver.wait_for(3)
    assert len(recs) == 3
    req = receiver.requests[0]
    assert req["path"] == "/v1/logs"
    assert req["headers"]["content-encoding"] == "gzip"
    assert req["headers"]["content-type"] == "application/x-protobuf"
    assert req["headers"]["x-api-key"] == "k-123"
    for lr, log in recs:
        validate_log(log)
        assert lr.event_name == "flusso.workflow_log"
        attrs = {kv.key: kv.value.string_value for kv in lr.attributes}
        assert attrs == {"flusso.ticket_id": log["ticket_info"]["ticket_id"], "flusso.status": "SUCCESS",
                         "flusso.schema_version": "1", "flusso.client_id": "acme"}
        assert lr.trace_id.hex() == log["trace_id"]
        root = next(s for s in log["trace"]["spans"] if s["parent_span_id"] is None)
        assert lr.span_id.hex() == root["span_id"]
        assert log["identification"] == {"client_id": "acme", "environment": "test",
                                         "workflow_version": "2.3.0", "workflow_name": "flusso_ticket",
                                         "content": "hash"}
        assert "jane@example.com" not in lr.body.string_value


def test_no_collector_url_warns_once_and_workflow_runs(configure_bridge, caplog, monkeypatch):
    monkeypatch.setattr(pipeline, "warned", set())
    with caplog.at_level(logging.WARNING, logger="otel_bridge.pipeline"):
        configure_bridge(endpoint=None)
        assert run_tickets(3) < MAX_CALL_SECONDS
        configure_bridge(endpoint=None)
        run_tickets(2)
    assert len([r for r in caplog.records if "no collector URL" in r.getMessage()]) == 1
    assert otel_bridge.flush(1.0)


def _fault_case(case, receiver, blackhole, refused_url):
    if case == "refused":
        return refused_url
    if case == "dns":
        return "http://collector.flusso-test.invalid:4318"
    if case == "blackhole":
        return blackhole
    behaviours = {
        "slow": {"status": 200, "delay_s": 3.0},
        "400": {"status": 400, "body": b"bad"},
        "401": {"status": 401, "body": b"no key"},
        "500": {"status": 500, "body": b"oops"},
        "429": {"status": 429, "headers": {"Retry-After": "30"}},
        "garbage": {"status": 200, "body": b"\xff\x00not-protobuf" * 10},
    }
    receiver.behaviour.update(behaviours[case])
    return receiver.url


@pytest.mark.parametrize("case", ["refused", "dns", "blackhole", "slow", "400", "401", "500", "429", "garbage"])
def test_workflow_returns_normally_and_fast_whatever_the_collector_does(
        case, receiver, blackhole, refused_url, configure_bridge):
    configure_bridge(endpoint=_fault_case(case, receiver, blackhole, refused_url))
    worst = run_tickets(5)
    assert worst < MAX_CALL_SECONDS, f"{case}: a ticket call took {worst:.3f}s"
    time.sleep(0.1)  # let the exporter start its doomed request
    worst = run_tickets(5)  # still fast while the exporter thread is stuck or retrying
    assert worst < MAX_CALL_SECONDS, f"{case}: a ticket call took {worst:.3f}s"
    t0 = time.perf_counter()
    otel_bridge.flush(timeout_seconds=0.5)
    assert time.perf_counter() - t0 < 1.0
    assert_bounded_shutdown()


def test_429_with_retry_after_is_retried_then_delivered(receiver, configure_bridge):
    receiver.script = [{"status": 429, "headers": {"Retry-After": "0"}}]
    configure_bridge(endpoint=receiver.url, export_timeout_seconds=5.0)
    run_tickets(1)
    recs = receiver.wait_for(1)
    assert len(recs) == 1
    assert [r["status"] for r in receiver.requests][:2] == [429, 200]


class ExplodingExporter(LogRecordExporter):
    calls = 0

    def export(self, batch):
        ExplodingExporter.calls += 1
        raise RuntimeError("exporter bug")

    def shutdown(self):
        pass

    def force_flush(self, timeout_millis=30000):
        return True


def test_exception_inside_the_exporter(configure_bridge):
    configure_bridge(exporter=ExplodingExporter())
    assert run_tickets(5) < MAX_CALL_SECONDS
    deadline = time.monotonic() + 10
    while ExplodingExporter.calls == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert ExplodingExporter.calls >= 1
    assert run_tickets(2) < MAX_CALL_SECONDS
    assert_bounded_shutdown()


def test_flush_delivers_pending_logs_before_the_batch_delay(receiver, configure_bridge):
    configure_bridge(endpoint=receiver.url, log_batch_delay_millis=60_000)
    run_tickets(4)
    assert otel_bridge.flush(timeout_seconds=5.0)
    assert len(receiver.records()) == 4


def test_shutdown_delivers_pending_logs(receiver, configure_bridge):
    configure_bridge(endpoint=receiver.url, log_batch_delay_millis=60_000)
    run_tickets(2)
    assert otel_bridge.shutdown(timeout_seconds=5.0)
    assert len(receiver.records()) == 2
    assert handle({"ticket_id": "after"}) == "after"  # decorators keep working, without telemetry


def test_flush_reports_whether_logs_were_delivered(receiver, configure_bridge):
    configure_bridge(endpoint=receiver.url)
    run_tickets(2)
    assert otel_bridge.flush(5.0) is True
    receiver.behaviour.update(status=401, body=b"bad key")
    run_tickets(2)
    assert otel_bridge.flush(5.0) is False
    stats = otel_bridge.stats()
    assert stats["logs_exported"] == 2 and stats["export_failures"] >= 1
    receiver.behaviour.update(status=200, body=b"")
    run_tickets(1)
    assert otel_bridge.flush(5.0) is True


def test_no_client_id_means_no_client_attribute(receiver, validate_log):
    from .helpers import settings

    otel_bridge.configure(settings(client_id=None), endpoint=receiver.url + "/api/v1/logs", api_key="k")
    run_tickets(1)
    ((lr, log),) = receiver.wait_for(1)
    assert receiver.requests[0]["path"] == "/v1/logs"  # the seed's URL form is understood
    assert "client_id" not in log["identification"]
    assert "flusso.client_id" not in {kv.key for kv in lr.attributes}
