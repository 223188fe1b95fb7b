"""One builder for both sides: SDK spans, and the same spans sent through the real OTLP span
encoder and converted back by the collector (collector_api.traces.otlp_spans), build the same log."""

import json

import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode

from collector_api.traces.otlp_spans import span_records
from otel_bridge import attributes as A
from otel_bridge.assemble import build_workflow_log
from otel_bridge.pii import Redactor
from otel_bridge.spanrecord import SpanRecord, from_sdk_span


def ev(span, name, payload):
    span.add_event(name, {A.PAYLOAD: json.dumps(payload)})


@pytest.fixture()
def sdk_spans():
    exp = InMemorySpanExporter()
    tp = TracerProvider()
    tp.add_span_processor(SimpleSpanProcessor(exp))
    t = tp.get_tracer("test")
    with t.start_as_current_span("flusso_ticket", attributes={A.KIND: "workflow", A.TICKET_ID: "T-7"}) as root:
        ev(root, A.EVENT_TICKET, {"ticket_id": "T-7", "requester_email": "ann@b.example", "requester_name": "Ann Lee",
                                  "subject": "refund for Ann Lee"})
        with t.start_as_current_span("planner", attributes={A.KIND: "planner", "tags": ("a", "b"),
                                                              "weights": (0.5, float("nan")), "n": 3}) as s:
            ev(s, A.EVENT_DECISION, {"name": "route", "choice": "react", "confidence": 0.9})
        with t.start_as_current_span("search", attributes={A.KIND: "tool"}) as s:
            ev(s, A.EVENT_REACT_ITERATION, {"thought": "ask ann@b.example", "action": "search"})
            s.record_exception(TimeoutError("slow"))
            s.set_status(Status(StatusCode.ERROR))
        with t.start_as_current_span("GET /u/ann@b.example", kind=SpanKind.CLIENT, attributes={"http.status": 200}):
            pass
        with t.start_as_current_span("rag", attributes={A.KIND: "retriever", "ok": True}) as s:
            ev(s, A.EVENT_RETRIEVAL, {"source": "text", "query": "q", "results": [{"id": "k", "score": 0.5}]})
        ev(root, A.EVENT_LLM_CALL, {"model": "m", "input_tokens": 10, "output_tokens": 3, "cost_usd": 0.5})
        ev(root, A.EVENT_DRAFT, {"text": "Hi Ann Lee"})
        ev(root, A.EVENT_METRIC, {"name": "custom", "value": 2.5})
        ev(root, A.EVENT_OUTCOME, {"status": "SUCCESS", "resolution_status": "resolved"})
    return exp.get_finished_spans()


def through_otlp(spans) -> list[SpanRecord]:
    wire = encode_spans(spans).SerializeToString()
    request = ExportTraceServiceRequest()
    request.ParseFromString(wire)
    return span_records(request.resource_spans)


@pytest.mark.parametrize("redactor", [None, Redactor("k-0123456789")], ids=["raw", "redacted"])
def test_sdk_and_otlp_spans_build_the_identical_log(sdk_spans, redactor, validate_log):
    direct = build_workflow_log(sdk_spans, identification={"environment": "test"}, redactor=redactor, dropped_spans=1)
    received = build_workflow_log(through_otlp(sdk_spans), identification={"environment": "test"},
                                  redactor=redactor, dropped_spans=1)
    validate_log(received)
    assert received == direct
    assert received["metrics"]["span_count"] == 5 and received["outcome"]["complete"] is False
    kinds = {e["name"]: e["kind"] for e in received["trace"]["spans"]}
    assert kinds["search"] == "tool" and "otel.client" in kinds.values()
    search = next(e for e in received["trace"]["spans"] if e["name"] == "search")
    assert search["status"] == "ERROR" and search["error"] == "TimeoutError: slow"


def test_records_from_both_sides_are_equal(sdk_spans):
    def key(r):
        return r.span_id

    direct = sorted((from_sdk_span(s) for s in sdk_spans), key=key)
    received = sorted(through_otlp(sdk_spans), key=key)
    for a, b in zip(direct, received, strict=True):
        assert (a.name, a.trace_id, a.span_id, a.parent_span_id, a.start_time, a.end_time, a.status, a.kind) == (
            b.name, b.trace_id, b.span_id, b.parent_span_id, b.start_time, b.end_time, b.status, b.kind)
        assert repr(dict(a.attributes)) == repr(dict(b.attributes))  # repr: NaN equals NaN, tuples stay tuples
        assert [(e.name, e.timestamp, dict(e.attributes)) for e in a.events] == [
            (e.name, e.timestamp, dict(e.attributes)) for e in b.events]
