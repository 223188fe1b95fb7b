"""record.* never raises on odd arguments; configure() again keeps tickets in flight whole:
one worker, one pipeline swapped (docs/client.md)."""

from __future__ import annotations

import json
import logging
import threading
import time

import pytest
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter

import otel_bridge
from otel_bridge import node, record, runtime, workflow
from otel_bridge import pipeline as pipeline_mod
from otel_bridge import record as record_mod


class ArrayLike:
    """Behaves like a numpy array: iterable, but asking its truth value raises."""

    def __init__(self, rows):
        self.rows = rows

    def __bool__(self):
        raise ValueError("The truth value of an array with more than one element is ambiguous.")

    def __len__(self):
        return len(self.rows)

    def __iter__(self):
        return iter(self.rows)


class FrameLike(ArrayLike):
    """Behaves like a pandas DataFrame: iterating gives column names; rows via to_dict."""

    columns = ("id", "score")

    def __iter__(self):
        return iter(self.columns)

    def to_dict(self, orient="dict"):
        assert orient == "records"
        return list(self.rows)


class BrokenStr:
    def __str__(self):
        raise RuntimeError("no str")


ROWS = [{"id": "d1", "score": 0.9}, {"id": "d2", "score": 0.4}]


@pytest.mark.parametrize("call", [
    lambda: record.retrieval("vision", results=ArrayLike(ROWS)),
    lambda: record.retrieval("text", results=FrameLike(ROWS)),
    lambda: record.retrieval("text", results=5),
    lambda: record.evidence(items=ArrayLike(["a", "b"]), conflicts=ArrayLike([])),
    lambda: record.evidence(items={"single": "mapping"}, conflicts=7),
    lambda: record.draft("x", length_chars=2),
    lambda: record.ticket("T-odd", pii=ArrayLike(["note"]), note="n"),
    lambda: record.metric(BrokenStr(), 1),
    lambda: record.outcome(BrokenStr()),
    lambda: record.pii("v", kind=BrokenStr()),
], ids=["array", "frame", "scalar", "evidence_array", "evidence_mapping", "draft_length",
        "ticket_pii_array", "metric_broken_name", "outcome_broken_status", "pii_broken_kind"])
def test_record_calls_never_raise_and_the_log_still_ships(memory_bridge, validate_log, call):
    @workflow("t")
    def handle(ticket):
        call()
        return "ok"

    assert handle({"ticket_id": "T-odd"}) == "ok"
    (log,) = memory_bridge(1)
    validate_log(log)
    assert log["ticket_info"]["ticket_id"] == "T-odd"


def test_odd_arguments_are_recorded_tolerantly(memory_bridge):
    @workflow("t")
    def handle(ticket):
        record.retrieval("vision", results=ArrayLike(ROWS))
        record.retrieval("text", results=FrameLike(ROWS))
        record.evidence(items=ArrayLike(["a", "b"]), conflicts={"a": "b"})
        record.draft("xyz", length_chars=2)

    handle({"ticket_id": "T-t"})
    (log,) = memory_bridge(1)
    m = log["metrics"]
    assert m["vision_results"] == 2 and m["text_results"] == 2
    assert m["evidence_items"] == 2 and m["evidence_conflicts"] == 1
    assert m["draft_length_chars"] == 3


def test_a_failing_helper_warns_once_naming_it(memory_bridge, caplog, monkeypatch):
    monkeypatch.setattr(record_mod, "_warned_failed", set())

    @workflow("t")
    def handle(ticket):
        record.metric(BrokenStr(), 1)
        record.metric(BrokenStr(), 2)

    with caplog.at_level(logging.WARNING, logger="otel_bridge.record"):
        handle({"ticket_id": "T-w"})
    warnings = [r.getMessage() for r in caplog.records if "record.metric()" in r.getMessage()]
    assert len(warnings) == 1 and "RuntimeError" in warnings[0]
    assert record.metric.__name__ == "metric"


def _logs(exp, n=1, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and len(exp.get_finished_logs()) < n:
        otel_bridge.flush(0.5)
    return [json.loads(x.log_record.body) for x in exp.get_finished_logs()]


def test_configure_again_keeps_spans_of_tickets_in_flight(configure_bridge, validate_log):
    first, second = InMemoryLogRecordExporter(), InMemoryLogRecordExporter()
    configure_bridge(exporter=first)

    @node("slow_step")
    def step():
        time.sleep(0.05)

    @workflow("t")
    def handle(ticket):
        step()
        step()
        otel_bridge.flush(2)  # the node spans now sit in the first worker's buffer
        configure_bridge(exporter=second)  # e.g. a new endpoint, while this ticket runs
        record.metric("after", 1)
        return "done"

    @workflow("t")
    def finished_before(ticket):
        return 1

    finished_before({"ticket_id": "T-before"})
    assert handle({"ticket_id": "T-flight"}) == "done"
    (log,) = _logs(second)
    validate_log(log)
    assert log["ticket_info"]["ticket_id"] == "T-flight"
    assert log["outcome"]["complete"] is True
    assert log["metrics"]["dropped_spans"] == 0 and log["metrics"]["span_count"] == 3
    assert log["metrics"]["node_durations_ms"]["slow_step"] >= 90
    assert log["metrics"]["after"] == 1
    # the ticket that had ended went out through the first configuration
    shipped_first = [json.loads(x.log_record.body)["ticket_info"]["ticket_id"] for x in first.get_finished_logs()]
    assert shipped_first == ["T-before"]


def test_configure_again_keeps_the_one_worker(configure_bridge):
    configure_bridge(exporter=InMemoryLogRecordExporter())
    worker = runtime.STATE.worker
    configure_bridge(exporter=InMemoryLogRecordExporter(), max_open_traces=7)
    assert runtime.STATE.worker is worker and worker.max_open_traces == 7
    assert [t.name for t in threading.enumerate()].count("otel-bridge-worker") == 1


def test_a_log_being_built_when_configure_swaps_goes_out_on_the_old_pipeline(configure_bridge, validate_log,
                                                                              monkeypatch):
    first, second = InMemoryLogRecordExporter(), InMemoryLogRecordExporter()
    building, release = threading.Event(), threading.Event()
    real = pipeline_mod.build_workflow_log

    def slow_build(*args, **kwargs):
        building.set()
        release.wait(5)
        return real(*args, **kwargs)

    monkeypatch.setattr(pipeline_mod, "build_workflow_log", slow_build)
    configure_bridge(exporter=first)

    @workflow("t")
    def handle(ticket):
        return 1

    handle({"ticket_id": "T-old"})
    assert building.wait(5)  # the worker is inside the old pipeline's builder
    threading.Timer(0.2, release.set).start()
    configure_bridge(exporter=second)  # waits for that log, then retires the old exporter
    assert [json.loads(x.log_record.body)["ticket_info"]["ticket_id"] for x in first.get_finished_logs()] == ["T-old"]
    handle({"ticket_id": "T-new"})
    (log,) = _logs(second)
    validate_log(log)
    assert log["ticket_info"]["ticket_id"] == "T-new"


def test_configure_while_tickets_run_on_other_threads_loses_no_log(configure_bridge):
    """Every ticket yields exactly one complete log, whichever configuration ships it."""
    exporters = [InMemoryLogRecordExporter() for _ in range(4)]
    configure_bridge(exporter=exporters[0])

    @node("step")
    def step():
        time.sleep(0.001)

    @workflow("t")
    def handle(ticket):
        step()
        step()

    def run(prefix):
        for i in range(25):
            handle({"ticket_id": f"{prefix}-{i}"})

    threads = [threading.Thread(target=run, args=(f"W{n}",)) for n in range(3)]
    for t in threads:
        t.start()
    for exp in exporters[1:]:
        time.sleep(0.02)
        configure_bridge(exporter=exp)
    for t in threads:
        t.join(30)
    assert otel_bridge.flush(5)
    logs = [json.loads(x.log_record.body) for exp in exporters for x in exp.get_finished_logs()]
    ids = sorted(log["ticket_info"]["ticket_id"] for log in logs)
    assert ids == sorted(f"W{n}-{i}" for n in range(3) for i in range(25))
    assert all(log["outcome"]["complete"] and log["metrics"]["span_count"] == 3 for log in logs)
