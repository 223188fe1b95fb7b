"""Nothing lost on the client: retries beyond the exporter's window, 413 split, rejections by
reason, partial success, the byte budget and a truthful flush. Real sockets on 127.0.0.1: the
tiny receiver of conftest for scripted answers, and the real collector (uvicorn + PostgreSQL)
stopped and restarted for a real outage."""

import logging

import psycopg
import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse

import otel_bridge
from otel_bridge import pipeline
from tests.helpers import LiveServer, make_key, wait_until

from .helpers import send, settings


def delivery_warnings(caplog, word):
    return [r.getMessage() for r in caplog.records if r.name == "otel_bridge.delivery" and word in r.getMessage()]


def stored_ids(dsn):
    with psycopg.connect(dsn) as conn:
        return [r[0] for r in conn.execute("SELECT ticket_id FROM workflow_logs")]


def test_a_real_collector_outage_longer_than_the_exporters_window_loses_nothing(db_dsn, configure_bridge):
    key = make_key(db_dsn, "acme")
    server = LiveServer(db_dsn).start()
    port = server.port
    otel_bridge.configure(settings(), endpoint=server.url, api_key=key)
    send("before", 5)
    assert otel_bridge.flush(10.0)
    server.stop()  # the collector is gone: connections refused
    send("during", 20)
    assert otel_bridge.flush(1.5) is False  # nothing acknowledged: flush says so
    # The exporter alone gives up after its window (export timeout 1 s); the bridge keeps the logs
    # and tries again: two of its retries are a positive sign the outage outlasted that window.
    assert wait_until(lambda: otel_bridge.stats()["export_retries"] >= 2, 15), otel_bridge.stats()
    assert otel_bridge.stats()["logs_pending"] == 20
    server = LiveServer(db_dsn, port=port).start()  # back, same address
    try:
        assert otel_bridge.flush(20.0) is True
        ids = stored_ids(db_dsn)
        assert sorted(ids) == sorted([f"before-{i}" for i in range(5)] + [f"during-{i}" for i in range(20)])
        s = otel_bridge.stats()
        assert s["logs_exported"] == 25 and s.get("logs_rejected", 0) == 0
    finally:
        otel_bridge.shutdown(2.0)
        server.stop()


def test_a_collector_refusal_is_counted_with_its_message_and_not_retried(db_dsn, caplog):
    key = make_key(db_dsn, "acme")
    server = LiveServer(db_dsn).start()
    try:
        # The key is acme's; the log claims globex: the collector refuses it (400, not retried).
        otel_bridge.configure(settings(client_id="globex"), endpoint=server.url, api_key=key)
        with caplog.at_level(logging.WARNING, logger="otel_bridge.delivery"):
            send("spoof", 2)
            assert otel_bridge.flush(10.0) is False
        s = otel_bridge.stats()
        assert s["rejected_http_400"] == 2 and s["logs_rejected"] == 2 and s.get("export_retries", 0) == 0
        warned = delivery_warnings(caplog, "rejected")
        assert len(warned) == 1 and "globex" in warned[0]  # the collector's own words
        assert stored_ids(db_dsn) == []
        assert otel_bridge.flush(5.0) is True  # nothing new went wrong since
    finally:
        otel_bridge.shutdown(2.0)
        server.stop()


def _records_per_request(receiver):
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

    out = []
    for req in receiver.requests:
        msg = ExportLogsServiceRequest()
        msg.ParseFromString(req["body"])
        out.append((req["status"], sum(len(sl.log_records) for rl in msg.resource_logs for sl in rl.scope_logs)))
    return out


def test_413_splits_the_batch_and_delivers_the_halves(receiver, configure_bridge):
    receiver.script = [{"status": 413, "body": b"too big"}]
    configure_bridge(endpoint=receiver.url, log_batch_delay_millis=60_000)
    send("big", 4)
    assert otel_bridge.flush(10.0) is True
    assert _records_per_request(receiver) == [(413, 4), (200, 2), (200, 2)]
    assert sorted(log["ticket_info"]["ticket_id"] for _, log in receiver.records()) == [f"big-{i}" for i in range(4)]


def test_a_single_log_too_large_is_rejected_not_retried_forever(receiver, configure_bridge):
    receiver.behaviour.update(status=413, body=b"too big")
    configure_bridge(endpoint=receiver.url, log_batch_delay_millis=60_000)
    send("huge", 2)
    assert otel_bridge.flush(10.0) is False
    assert _records_per_request(receiver) == [(413, 2), (413, 1), (413, 1)]
    assert otel_bridge.stats()["rejected_too_large"] == 2


@pytest.mark.parametrize("status,retried", [(400, False), (401, False), (403, False), (404, False),
                                            (408, True), (429, True), (500, True), (503, True)])
def test_which_statuses_are_retried(receiver, configure_bridge, status, retried):
    receiver.script = [{"status": status, "body": b"nope", "headers": {"Retry-After": "0"}}]
    configure_bridge(endpoint=receiver.url)
    send("s", 1)
    assert otel_bridge.flush(10.0) is retried  # retried: then delivered; else rejected
    assert [r["status"] for r in receiver.requests] == ([status, 200] if retried else [status])
    s = otel_bridge.stats()
    assert s.get(f"rejected_http_{status}", 0) == (0 if retried else 1)


def test_partial_success_is_read_counted_and_warned_once_per_minute(receiver, configure_bridge, caplog):
    answer = ExportLogsServiceResponse()
    answer.partial_success.rejected_log_records = 1
    answer.partial_success.error_message = "record 0: schema_version 9 unknown"
    receiver.behaviour.update(status=200, body=answer.SerializeToString())
    configure_bridge(endpoint=receiver.url)
    with caplog.at_level(logging.WARNING, logger="otel_bridge.delivery"):
        send("p", 1)
        assert otel_bridge.flush(5.0) is False
        send("q", 1)
        assert otel_bridge.flush(5.0) is False
    s = otel_bridge.stats()
    assert s["rejected_partial_success"] == 2 and s["logs_rejected"] == 2
    warned = delivery_warnings(caplog, "partial_success")
    assert len(warned) == 1 and "schema_version 9 unknown" in warned[0]


def test_the_retry_age_limit_drops_and_counts(refused_url, configure_bridge):
    configure_bridge(endpoint=refused_url, retry_max_age_s=0.5)
    send("old", 3)
    assert wait_until(lambda: otel_bridge.stats().get("dropped_logs_expired") == 3, 10), otel_bridge.stats()
    assert otel_bridge.flush(3.0) is False
    s = otel_bridge.stats()
    assert s["dropped_logs_expired"] == 3 and s["logs_pending"] == 0


def test_the_memory_budget_drops_the_oldest_log_and_counts(refused_url, configure_bridge):
    configure_bridge(endpoint=refused_url, memory_max_mb=0.05)  # ~50 KB: a few logs
    send("m", 40)
    otel_bridge.flush(1.0)
    s = otel_bridge.stats()
    assert s["dropped_logs_memory"] > 0
    assert s["logs_pending"] + s["dropped_logs_memory"] == 40
    assert s["memory_bytes"] <= 0.05 * 1024 * 1024 + 20_000  # one log over at most
    assert s.get("logs_incomplete", 0) == 0  # waiting logs never starve the spans of new tickets


def test_flush_is_false_when_a_log_was_left_incomplete(receiver, configure_bridge):
    configure_bridge(endpoint=receiver.url, max_spans_per_trace=2)
    send("inc", 1, steps=5)
    assert otel_bridge.flush(5.0) is False
    assert otel_bridge.stats()["logs_incomplete"] == 1
    send("ok", 1, steps=0)
    assert otel_bridge.flush(5.0) is True


def test_deprecated_count_settings_warn_and_still_cap(refused_url, configure_bridge, monkeypatch):
    monkeypatch.setattr(pipeline, "warned", set())
    with pytest.warns(DeprecationWarning, match="FLUSSO_LOG_QUEUE_SIZE"):
        configure_bridge(endpoint=refused_url, log_queue_size=3)
    send("c", 10)
    otel_bridge.flush(1.0)
    s = otel_bridge.stats()
    assert s["logs_pending"] <= 3 + 3  # the queue cap plus one batch in flight
    assert s["dropped_logs_memory"] >= 4


def test_the_demo_never_says_delivered_when_logs_were_rejected(receiver):
    from flusso_obs.demo import run_demo

    receiver.behaviour.update(status=401, body=b"unknown key")
    summary = run_demo(collector=receiver.url, api_key="wrong", tickets=3, progress=False, speed=0.0)
    assert summary.delivered is False
    assert "NOT all delivered" in str(summary) and "rejected_http_401 3" in str(summary)
    receiver.behaviour.update(status=200, body=b"")
    summary = run_demo(collector=receiver.url, api_key="right", tickets=3, progress=False, speed=0.0)
    assert summary.delivered is True and str(summary).endswith(": delivered")
