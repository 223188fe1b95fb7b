"""The critical path and the usage by model, computed once per log (collector_api.contract.derived)."""
from __future__ import annotations

import time

import orjson

from collector_api.contract.derived import (
    MAX_MODELS,
    OTHER_MODELS,
    UNKNOWN_MODEL,
    critical_nodes,
    critical_path,
    derived_json,
    usage_by_model,
)


def span(sid, parent, start, duration, name=None, kind="node"):
    return {"span_id": sid, "parent_span_id": parent, "start_offset_ms": start, "duration_ms": duration,
            "name": name or sid, "kind": kind}


def ids(spans):
    return [e["span_id"] for e in critical_path(spans)]


def test_sequential_children_are_all_on_the_path():
    spans = [span("root", None, 0, 100, kind="workflow"), span("a", "root", 0, 30), span("b", "root", 30, 40),
             span("c", "root", 70, 30)]
    assert ids(spans) == ["root", "a", "b", "c"]


def test_parallel_children_only_the_one_that_ended_last():
    # fetch (0-10), then vision 10-60 and rag 10-40 in parallel, then draft 60-90: rag is not critical.
    spans = [span("root", None, 0, 90, kind="workflow"), span("fetch", "root", 0, 10),
             span("vision", "root", 10, 50), span("rag", "root", 10, 30), span("draft", "root", 60, 30)]
    assert ids(spans) == ["root", "fetch", "vision", "draft"]


def test_nested_walk_and_child_running_past_its_parent():
    # agent 10-80 with llm calls 10-30 and 35-95 (the second outlives the agent): clamped at 80.
    spans = [span("root", None, 0, 100, kind="workflow"), span("plan", "root", 0, 10),
             span("agent", "root", 10, 70), span("llm1", "agent", 10, 20, kind="llm"),
             span("llm2", "agent", 35, 60, kind="llm"), span("side", "root", 5, 20), span("tail", "root", 85, 10)]
    assert ids(spans) == ["root", "plan", "agent", "llm1", "llm2", "tail"]


def test_host_spans_are_on_the_path_but_not_counted_as_nodes():
    spans = [span("root", None, 0, 50, kind="workflow"), span("rag", "root", 0, 50, name="text_rag"),
             span("http", "rag", 10, 40, name="GET /kb", kind="otel.CLIENT")]
    path = critical_path(spans)
    assert [e["span_id"] for e in path] == ["root", "rag", "http"]
    assert critical_nodes(path) == ["text_rag"]


def test_hostile_shapes_never_raise():
    garbage = [None, 1, "x", {"span_id": 5}, {"span_id": "a", "parent_span_id": "a", "start_offset_ms": "soon",
               "duration_ms": float("nan")}, {"span_id": "b", "parent_span_id": "c", "duration_ms": 1e308},
               {"span_id": "c", "parent_span_id": "b", "duration_ms": -5}, {"span_id": "d", "start_offset_ms": 10**400}]
    for spans in (None, {}, "spans", [], garbage):
        critical_path(spans)
        derived_json({"trace": {"spans": spans, "llm_calls": spans}})
    # A pure cycle has no root: no path rather than a loop.
    assert critical_path([span("x", "y", 0, 1), span("y", "x", 0, 1)]) == []


def test_a_deep_chain_is_linear_and_does_not_recurse():
    chain = [span("s0", None, 0, 5000, kind="workflow")] + [span(f"s{i}", f"s{i - 1}", i, 5000 - 2 * i)
                                                            for i in range(1, 5000)]
    t0 = time.perf_counter()
    assert len(critical_path(chain)) == 2501  # s0..s2500: later spans start after their parent ends
    wide = [span("r", None, 0, 10_000, kind="workflow")] + [span(f"k{i}", "r", i, 1) for i in range(4999)]
    assert len(critical_path(wide)) > 1
    assert time.perf_counter() - t0 < 2.0


def test_usage_by_model_sums_calls_like_the_metrics():
    calls = [{"model": "gpt-4o", "input_tokens": 100, "output_tokens": 10, "cost_usd": 0.5},
             {"model": "gpt-4o", "input_tokens": 50, "output_tokens": 5, "cost_usd": 0.25},
             {"model": "", "input_tokens": -3, "output_tokens": "many", "cost_usd": True}, "junk",
             {"input_tokens": 7, "cost_usd": 10**400}]
    usage = usage_by_model(calls)
    assert usage["gpt-4o"] == {"calls": 2, "input_tokens": 150, "output_tokens": 15, "cost_usd": 0.75}
    assert usage[UNKNOWN_MODEL] == {"calls": 2, "input_tokens": 7, "output_tokens": 0, "cost_usd": 0.0}
    many = usage_by_model([{"model": f"m{i}", "input_tokens": 1} for i in range(MAX_MODELS + 10)])
    assert len(many) == MAX_MODELS + 1 and many[OTHER_MODELS]["calls"] == 10


def test_derived_json_shape():
    doc = {"trace": {"spans": [span("r", None, 0, 10, kind="workflow"), span("p", "r", 0, 10, name="planner")],
                     "llm_calls": [{"model": "m", "input_tokens": 1, "output_tokens": 2, "cost_usd": 0.1}]}}
    path, usage = derived_json(doc)
    assert orjson.loads(path) == {"spans": ["r", "p"], "nodes": ["planner"]}
    assert orjson.loads(usage) == {"m": {"calls": 1, "input_tokens": 1, "output_tokens": 2, "cost_usd": 0.1}}
