"""Bounded memory: queue, open traces, spans per trace, TTL; every drop counted."""

import threading
import time
from types import SimpleNamespace

import otel_bridge
from otel_bridge import node, workflow
from otel_bridge.processor import Worker


def fake_span(trace_id, root=False, name="s"):
    return SimpleNamespace(context=SimpleNamespace(trace_id=trace_id), parent=None if root else object(), name=name)


def wait_until(cond, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.01)
    return False


def test_queue_full_drops_children_keeps_roots_and_marks_incomplete():
    handled, gate = [], threading.Event()

    def handle(spans, dropped):
        gate.wait(5)
        handled.append((spans[0].context.trace_id, len(spans), dropped))

    w = Worker(handle, max_queued_spans=10)
    for tid in (1, 2):
        w.open_trace(tid)
    w.submit(fake_span(1, root=True))
    assert wait_until(lambda: w.counters()["queued_spans"] == 0)  # the worker is now blocked inside handle()
    for _ in range(30):
        w.submit(fake_span(2))
    w.submit(fake_span(2, root=True))
    assert w.stats["dropped_spans_queue_full"] == 20
    gate.set()
    assert wait_until(lambda: len(handled) == 2)
    assert handled[1] == (2, 11, 20)
    w.stop(1)


def test_too_many_open_traces_evicts_the_oldest():
    w = Worker(lambda spans, dropped: None, max_open_traces=2)
    for tid in (1, 2, 3):
        w.open_trace(tid)
        w.submit(fake_span(tid))
    assert w.flush(2)
    assert w.stats["dropped_traces_too_many_open"] == 1
    assert w.buffered_traces() == {2, 3} and 1 not in w.active
    w.stop(1)


def test_roots_that_never_end_expire_after_the_ttl():
    w = Worker(lambda spans, dropped: None, trace_ttl_seconds=0.2, idle_wait_seconds=0.05)
    w.open_trace(7)
    w.submit(fake_span(7))
    w.open_trace(8)  # a root that started and never produced a span
    assert wait_until(lambda: w.stats["dropped_traces_ttl"] >= 2, timeout=5)
    assert not w.buffered_traces() and not w.active
    w.stop(1)


def test_spans_of_unknown_or_finished_traces_are_ignored():
    got = []
    w = Worker(lambda spans, dropped: got.append(len(spans)))
    w.submit(fake_span(99))  # not an open ticket (e.g. the host's other traffic)
    w.open_trace(5)
    w.submit(fake_span(5, root=True))
    w.flush(2)
    w.submit(fake_span(5))  # late: after the root was handled
    w.flush(2)
    assert got == [1] and not w.buffered_traces()
    w.stop(1)


def test_spans_per_trace_limit_yields_an_incomplete_log(configure_bridge, validate_log):
    import json

    from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter

    exp = InMemoryLogRecordExporter()
    configure_bridge(exporter=exp, max_spans_per_trace=5)

    @node("n")
    def n():
        pass

    @workflow("t")
    def handle(ticket):
        for _ in range(20):
            n()

    handle({"ticket_id": "T-big"})
    otel_bridge.flush(5)
    (rec,) = exp.get_finished_logs()
    log = json.loads(rec.log_record.body)
    validate_log(log)
    assert log["outcome"]["complete"] is False
    assert log["metrics"]["dropped_spans"] == 15 and log["metrics"]["span_count"] == 6
    assert otel_bridge.stats()["dropped_spans_per_trace_limit"] == 15


def test_total_buffered_spans_are_bounded():
    got = []
    w = Worker(lambda spans, dropped: got.append((len(spans), dropped)), max_buffered_spans=10)
    for tid in (1, 2):
        w.open_trace(tid)
    for _ in range(8):
        w.submit(fake_span(1))
        w.submit(fake_span(2))
    w.submit(fake_span(1, root=True))
    w.submit(fake_span(2, root=True))
    assert w.flush(2)
    assert sorted(got) == [(6, 3), (6, 3)]  # FIFO: 5 of each buffered, 3 of each dropped, roots always kept
    assert w.stats["dropped_spans_buffer_full"] == 6 and w.counters()["buffered_spans"] == 0
    w.stop(1)


def test_too_many_events_on_one_span_yield_an_incomplete_log(memory_bridge):
    from otel_bridge import record

    @workflow("t")
    def handle(ticket):
        for _ in range(1100):
            record.react_iteration(thought="x" * 300, action="a")  # the SDK keeps 1024 per span

    handle({"ticket_id": "T-loop"})
    (log,) = memory_bridge(1)
    assert log["metrics"]["react_iterations"] == 1024
    assert log["metrics"]["dropped_events"] == 76 and log["outcome"]["complete"] is False
    assert log["trace"]["react"]["iterations"][0]["thought"] == "x" * 300  # not cut by span limits
