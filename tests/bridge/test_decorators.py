import asyncio
import contextvars
import logging
import threading

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

import otel_bridge
from otel_bridge import node, record, workflow
from otel_bridge import record as record_mod
from tests.helpers import run_async


@node("plain", kind="tool")
def plain(x):
    """doc of plain"""
    return x * 2


@node("aplain", kind="llm")
async def aplain(x):
    await asyncio.sleep(0)
    record.llm_call("m", 10, 5, 0.01)
    return x + 1


@node("gen", kind="retriever")
def gen(n):
    yield from range(n)
    return "done"


@node("agen", kind="agent")
async def agen(n):
    for i in range(n):
        await asyncio.sleep(0)
        yield i


@node("boom", kind="tool")
def boom():
    raise KeyError("missing")


class Service:
    @node("method_node")
    def step(self, x):
        return x

    @workflow("svc_ticket")
    def handle(self, ticket):
        record.ticket(ticket["ticket_id"])
        return self.step(1)


def test_wraps_metadata_kept():
    assert plain.__name__ == "plain" and plain.__doc__ == "doc of plain"
    assert asyncio.iscoroutinefunction(aplain)
    import inspect
    assert inspect.isgeneratorfunction(gen) and inspect.isasyncgenfunction(agen)


def test_all_function_shapes_nest_under_the_ticket(memory_bridge, validate_log):
    @workflow("flusso_ticket")
    async def handle(ticket):
        record.ticket(ticket["id"], subject="s")
        assert plain(2) == 4
        assert await aplain(1) == 2
        g = gen(3)
        assert list(g) == [0, 1, 2]
        assert [i async for i in agen(2)] == [0, 1]
        try:
            boom()
        except KeyError:
            pass
        record.outcome("SUCCESS", "resolved")
        return "ok"

    assert run_async(handle({"id": "T-1"})) == "ok"
    (log,) = memory_bridge(1)
    validate_log(log)
    names = {s["name"]: s for s in log["trace"]["spans"]}
    assert set(names) == {"flusso_ticket", "plain", "aplain", "gen", "agen", "boom"}
    root_id = names["flusso_ticket"]["span_id"]
    assert all(s["parent_span_id"] == root_id for n, s in names.items() if n != "flusso_ticket")
    assert names["boom"]["status"] == "ERROR" and "KeyError" in names["boom"]["error"]
    assert names["plain"]["attributes"]["gen_ai.operation.name"] == "execute_tool"
    assert names["plain"]["attributes"]["gen_ai.tool.name"] == "plain"
    assert names["aplain"]["attributes"]["gen_ai.usage.input_tokens"] == 10
    assert log["metrics"]["node_errors"] == 1 and log["metrics"]["tool_errors"] == 1
    assert log["metrics"]["llm_calls"] == 1
    assert log["outcome"]["status"] == "SUCCESS"
    assert log["ticket_info"]["ticket_id"] == "T-1"


def test_generator_closed_early_ends_its_span(memory_bridge):
    @workflow("t")
    def handle(ticket):
        g = gen(100)
        assert next(g) == 0
        g.close()

    handle({"ticket_id": "T-2"})
    (log,) = memory_bridge(1)
    spans = {s["name"]: s for s in log["trace"]["spans"]}
    assert spans["gen"]["status"] == "OK"


def test_methods_and_ticket_id_from_record(memory_bridge):
    assert Service().handle({"ticket_id": "T-M"}) == 1
    (log,) = memory_bridge(1)
    assert log["ticket_info"]["ticket_id"] == "T-M"
    assert {s["name"] for s in log["trace"]["spans"]} == {"svc_ticket", "method_node"}


def test_exception_is_reraised_unchanged_and_log_says_failed(memory_bridge, validate_log):
    err = ValueError("bad input")

    @workflow("t")
    async def handle(ticket):
        raise err

    with pytest.raises(ValueError) as info:
        run_async(handle({"ticket_id": "T-F"}))
    assert info.value is err
    (log,) = memory_bridge(1)
    validate_log(log)
    assert log["outcome"]["status"] == "FAILED"
    assert log["outcome"]["error"] == "ValueError: bad input"
    assert log["outcome"]["resolution_status"] == "unresolved"


def test_each_call_is_a_new_trace_linked_to_the_caller(memory_bridge):
    tracer = TracerProvider().get_tracer("host")  # the caller's span: a host SDK span

    @workflow("t")
    def handle(ticket):
        return trace.get_current_span().get_span_context().trace_id

    with tracer.start_as_current_span("web-request") as req:
        a = handle({"ticket_id": "A"})
        b = handle({"ticket_id": "B"})
    assert a != b
    assert req.get_span_context().trace_id not in (a, b)
    logs = memory_bridge(2)
    assert {log["trace_id"] for log in logs} == {format(a, "032x"), format(b, "032x")}


def test_many_tickets_in_flight_never_mix(memory_bridge):
    @node("step")
    async def step(i):
        await asyncio.sleep(0.001 * (i % 3))
        record.react_iteration(thought=f"ticket {i}", action="a")

    @workflow("t")
    async def handle(ticket):
        record.ticket(ticket["ticket_id"])
        await asyncio.gather(step(ticket["n"]), step(ticket["n"]))
        return ticket["n"]

    async def main():
        return await asyncio.gather(*(handle({"ticket_id": f"T-{i}", "n": i}) for i in range(30)))

    assert run_async(main()) == list(range(30))
    logs = memory_bridge(30)
    assert len(logs) == 30
    for log in logs:
        n = int(log["ticket_info"]["ticket_id"].split("-")[1])
        assert [it["thought"] for it in log["trace"]["react"]["iterations"]] == [f"ticket {n}"] * 2
        assert log["metrics"]["span_count"] == 3


def test_threads_with_copied_context_nest(memory_bridge):
    @node("in_thread")
    def work():
        record.metric("thread_metric", 7)

    @workflow("t")
    def handle(ticket):
        ctx = contextvars.copy_context()
        t = threading.Thread(target=ctx.run, args=(work,))
        t.start()
        t.join()

    handle({"ticket_id": "T-T"})
    (log,) = memory_bridge(1)
    assert {s["name"] for s in log["trace"]["spans"]} == {"t", "in_thread"}
    assert log["metrics"]["thread_metric"] == 7


def test_record_outside_a_workflow_warns_once_and_does_nothing(memory_bridge, caplog, monkeypatch):
    monkeypatch.setattr(record_mod, "_warned_outside", False)
    with caplog.at_level(logging.WARNING, logger="otel_bridge.record"):
        record.ticket("x")
        record.metric("a", 1)
        record.draft("d")
    warnings = [r for r in caplog.records if "outside a @workflow" in r.getMessage()]
    assert len(warnings) == 1


def test_node_outside_a_workflow_runs_plain(memory_bridge):
    assert plain(3) == 6
    assert list(gen(2)) == [0, 1]


def test_record_never_raises_on_odd_values(memory_bridge, validate_log):
    class Weird:
        def __repr__(self):
            raise RuntimeError("no repr")

    @workflow("t")
    def handle(ticket):
        record.ticket("T-W", weird=Weird(), blob=b"\x00\x01" * 10, nan=float("nan"))
        record.metric("nan_metric", float("inf"))
        record.metric("react_iterations", 99)  # derived: cannot be overridden
        record.outcome("WHATEVER")
        record.retrieval("text", results="not-a-list")
        return 1

    assert handle({}) == 1
    (log,) = memory_bridge(1)
    validate_log(log)
    assert log["metrics"]["react_iterations"] == 0
    assert "nan_metric" not in log["metrics"]
    assert log["trace"]["ticket"]["blob"].startswith("[bytes:sha256=")


def test_caught_node_error_without_outcome_is_partial(memory_bridge, validate_log):
    @workflow("t")
    def handle(ticket):
        try:
            boom()
        except KeyError:
            pass

    handle({"ticket_id": "T-P"})
    (log,) = memory_bridge(1)
    validate_log(log)
    assert log["outcome"]["status"] == "PARTIAL" and log["outcome"]["error"] is None


def test_telemetry_failures_never_reach_the_workflow(memory_bridge, monkeypatch):
    from otel_bridge import runtime

    def broken(*a, **k):
        raise RuntimeError("tracer bug")

    monkeypatch.setattr(runtime.STATE.tracer, "start_span", broken)

    @workflow("t")
    async def handle(ticket):
        record.ticket("T-x")
        return plain(2) + await aplain(1) + sum(gen(3))

    assert run_async(handle({"ticket_id": "T-x"})) == 4 + 2 + 3


def test_worker_failure_building_a_log_is_contained(memory_bridge, monkeypatch):
    from otel_bridge import pipeline

    real = pipeline.build_workflow_log
    calls = []

    def flaky(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise ValueError("assembler bug")
        return real(*args, **kwargs)

    monkeypatch.setattr(pipeline, "build_workflow_log", flaky)

    @workflow("t")
    def handle(ticket):
        return ticket["ticket_id"]

    assert handle({"ticket_id": "T-1"}) == "T-1"
    assert handle({"ticket_id": "T-2"}) == "T-2"
    logs = memory_bridge(1)
    assert [log["ticket_info"]["ticket_id"] for log in logs] == ["T-2"]
    assert otel_bridge.stats()["trace_errors"] == 1


def test_huge_values_are_cut_but_lengths_stay_true(memory_bridge):
    @workflow("t")
    def handle(ticket):
        record.draft("y" * 100_000)
        record.react_iteration(thought="z" * 50_000, action="a", observation=["w" * 100] * 1000)

    handle({"ticket_id": "T-big"})
    (log,) = memory_bridge(1)
    assert log["metrics"]["draft_length_chars"] == 100_000
    assert len(log["trace"]["output"]["draft"]) < 5000 and "truncated" in log["trace"]["output"]["draft"]
    it = log["trace"]["react"]["iterations"][0]
    assert len(it["thought"]) < 5000 and len(it["observation"]) == 200


def test_asyncio_to_thread_nests(memory_bridge):
    @node("blocking_io", kind="tool")
    def blocking():
        record.react_iteration(thought="in a worker thread", action="io")
        return 5

    @workflow("t")
    async def handle(ticket):
        return await asyncio.to_thread(blocking)

    assert run_async(handle({"ticket_id": "T-th"})) == 5
    (log,) = memory_bridge(1)
    assert {s["name"] for s in log["trace"]["spans"]} == {"t", "blocking_io"}
    assert log["metrics"]["react_iterations"] == 1
