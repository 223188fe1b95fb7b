"""build_workflow_log is pure: spans in, log out. Spans here come from a plain SDK
TracerProvider with an in-memory exporter, built with the bridge's attribute names."""

import json

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Status, StatusCode

from otel_bridge import attributes as A
from otel_bridge import build_workflow_log
from otel_bridge.assemble import DERIVED_METRICS
from otel_bridge.pii import Redactor


def ev(span, name, payload):
    span.add_event(name, {A.PAYLOAD: json.dumps(payload)})


@pytest.fixture()
def spans():
    exp = InMemorySpanExporter()
    tp = TracerProvider()
    tp.add_span_processor(SimpleSpanProcessor(exp))
    t = tp.get_tracer("test")
    with t.start_as_current_span("flusso_ticket", attributes={A.KIND: "workflow", A.TICKET_ID: "T-9"}) as root:
        ev(root, A.EVENT_TICKET, {"ticket_id": "T-9", "requester_email": "a@b.example", "requester_name": "Ann Lee"})
        with t.start_as_current_span("planner", attributes={A.KIND: "planner"}) as s:
            ev(s, A.EVENT_DECISION, {"name": "route", "choice": "react", "confidence": 0.9})
        with t.start_as_current_span("search", attributes={A.KIND: "tool"}) as s:
            s.set_status(Status(StatusCode.ERROR, "TimeoutError: slow"))
            ev(s, A.EVENT_REACT_ITERATION, {"thought": "ask Ann", "action": "search", "action_input": {"q": 1}})
        with t.start_as_current_span("rag", attributes={A.KIND: "retriever"}) as s:
            ev(s, A.EVENT_RETRIEVAL, {"source": "text", "query": "q", "results": [{"id": "k", "score": 0.5}]})
            ev(s, A.EVENT_RETRIEVAL, {"source": "vision", "query": "v", "results": [{"id": "i", "score": 0.9}]})
            ev(s, A.EVENT_RETRIEVAL, {"source": "text", "query": "q2", "results": [{"id": "k2", "score": 0.7}]})
        ev(root, A.EVENT_LLM_CALL, {"model": "m", "input_tokens": 10, "output_tokens": 3, "cost_usd": 0.5})
        ev(root, A.EVENT_DRAFT, {"text": "Hi Ann Lee"})
        ev(root, A.EVENT_DECISION, {"name": "escalate", "choice": "no"})
        ev(root, A.EVENT_OUTCOME, {"status": "SUCCESS", "resolution_status": "resolved", "hallucination_risk": 3})
    return exp.get_finished_spans()


def test_sections_and_metrics(spans, validate_log):
    log = build_workflow_log(spans, identification={"client_id": None, "environment": "test"})
    validate_log(log)
    assert "client_id" not in log["identification"]
    m = log["metrics"]
    assert set(DERIVED_METRICS) <= set(m)
    assert len(m) >= 15
    assert (m["react_iterations"], m["tool_calls"], m["tool_errors"], m["node_errors"]) == (1, 1, 1, 1)
    assert (m["text_results"], m["vision_results"], m["retrieval_calls"]) == (2, 1, 3)
    assert m["retrieval_top_score"] == 0.9 and m["retrieval_mean_score"] == pytest.approx(0.7)
    assert (m["llm_calls"], m["total_tokens"], m["cost_usd"]) == (1, 13, 0.5)
    assert m["hallucination_risk"] == 1.0  # clamped to [0, 1]
    assert m["decisions"] == 2 and m["draft_length_chars"] == len("Hi Ann Lee")
    assert log["trace"]["planning"]["decisions"][0]["name"] == "route"
    assert log["trace"]["output"]["decisions"][0]["name"] == "escalate"
    assert log["trace"]["retrieval"]["text"]["queries"] == ["q", "q2"]
    assert log["trace"]["react"]["iterations"][0]["action_input"] == '{"q": 1}'
    assert log["outcome"] == {"status": "SUCCESS", "resolution_status": "resolved", "complete": True, "error": None}
    assert log["ticket_info"]["ticket_id"] == "T-9"
    assert log["trace"]["spans"][0]["parent_span_id"] is None


def test_pure_same_input_same_output(spans):
    a = build_workflow_log(spans, redactor=Redactor("k"))
    b = build_workflow_log(spans, redactor=Redactor("k"))
    assert a == b
    assert "Ann" not in json.dumps(a) and "a@b.example" not in json.dumps(a)


def test_dropped_spans_or_missing_root_mean_incomplete(spans, validate_log):
    log = build_workflow_log(spans, dropped_spans=2)
    assert log["outcome"]["complete"] is False and log["metrics"]["dropped_spans"] == 2
    children = [s for s in spans if s.parent is not None]
    log = build_workflow_log(children)
    validate_log(log)
    assert log["outcome"]["complete"] is False


def test_no_spans_is_an_error():
    with pytest.raises(ValueError):
        build_workflow_log([])


def test_log_json_never_contains_nan(monkeypatch):
    from otel_bridge import shipping

    log = {"a": float("nan"), "b": [float("inf"), 1.5], "c": "ü"}
    for orjson in (shipping._orjson, None):
        monkeypatch.setattr(shipping, "_orjson", orjson)
        assert json.loads(shipping.dumps_log(log)) == {"a": None, "b": [None, 1.5], "c": "ü"}
