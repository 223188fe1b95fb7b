"""One rule for a trace's tree (otel_bridge.spantree): which parent link counts and which span is
the root. The bridge's builder, the /v1/traces mapping and the stored log's critical path each
had their own, and they disagreed; each case below is one where they did."""
from collector_api.contract.derived import critical_nodes, critical_path
from collector_api.contract.spantree import known_parent, log_root
from collector_api.traces.mapping import find_root, is_bridge_root
from otel_bridge import attributes as A
from otel_bridge.sections import find_root as bridge_root
from otel_bridge.spanrecord import SpanRecord
from viewer.pages import build_waterfall


def entry(sid, parent, start, duration, kind="node", name=None):
    return {"span_id": sid, "parent_span_id": parent, "start_offset_ms": start, "duration_ms": duration,
            "name": name or sid, "kind": kind}


def record(sid, parent, start, attributes=None):
    return SpanRecord(f"s{sid}", 1, sid, parent, start, start + 10, attributes=attributes or {})


def test_the_span_without_a_parent_is_the_root_not_an_orphan_that_ended_later():
    """The critical path took, among spans without a known parent, the one that ended last: an
    orphan (its parent dropped by the per-trace cap) outliving the root became the root, and the
    log's real nodes fell off the path. The log's contract: the root has no parent."""
    spans = [entry("root", None, 0, 100), entry("plan", "root", 0, 40, name="planner"),
             entry("draft", "root", 40, 60, name="drafter"), entry("orphan", "dropped", 10, 200, kind="tool")]
    assert log_root(spans) == 0
    path = critical_path(spans)
    assert [e["span_id"] for e in path] == ["root", "plan", "draft"]
    assert critical_nodes(path) == ["planner", "drafter"]
    records = [record(1, None, 0), record(2, 99, 5)]
    assert bridge_root(records) is records[0] and find_root(records) == (records[0], True)


def test_without_a_true_root_a_workflow_span_wins_over_an_earlier_orphan():
    """/v1/traces took the earliest span whose parent did not arrive; the bridge's builder and the
    critical path preferred the workflow span. A bridge @workflow under a remote parent is now
    recognised as the bridge's (its log comes over /v1/logs) instead of assembled a second time."""
    workflow = {A.KIND: A.KIND_WORKFLOW, A.WORKFLOW_NAME: "support"}
    records = [record(1, 98, 0), record(2, 99, 5, workflow), record(3, 2, 6)]
    root, true_root = find_root(records)
    assert root is records[1] and not true_root and is_bridge_root(root)
    assert bridge_root(records) is records[1]
    assert log_root([entry("a", "x", 0, 10), entry("w", "y", 5, 10, kind="workflow")]) == 1


def test_the_workflow_kind_first_among_parentless_spans_then_the_earliest():
    assert log_root([entry("a", None, 0, 10), entry("w", None, 5, 10, kind="workflow")]) == 1
    assert log_root([entry("late", None, 5, 500), entry("early", None, 0, 10)]) == 1
    records = [record(1, None, 0), record(2, None, 5, {A.KIND: A.KIND_WORKFLOW})]
    assert bridge_root(records) is records[1] and find_root(records) == (records[1], True)


def test_parent_links_cycles_and_self_loops():
    assert known_parent("a", "a", {"a"}) is None and known_parent("a", "b", {"a"}) is None
    assert known_parent("a", "b", {"a", "b"}) == "b" and known_parent("a", None, {"a"}) is None
    cycle = [entry("x", "y", 0, 1), entry("y", "x", 0, 1)]
    assert log_root(cycle) is None and critical_path(cycle) == []
    records = [record(1, 2, 0), record(2, 1, 5)]
    assert bridge_root(records) is records[0]  # a log needs a root: the first span
    # The waterfall hangs spans by the same links: a self-loop is a top, a known parent nests.
    rows = build_waterfall([entry("r", None, 0, 10), entry("c", "r", 1, 2), entry("s", "s", 3, 1)])
    assert [(r["span_id"], r["depth"]) for r in rows] == [("r", 0), ("c", 1), ("s", 0)]
