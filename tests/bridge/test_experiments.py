"""otel_bridge.experiments: items fetched in pages with the read key, the workflow called per item
(sync or async, bounded), each log tagged; failures counted, never raised; import-light."""
from __future__ import annotations

import asyncio
import io
import threading

import pytest

from otel_bridge import experiments, record, workflow
from otel_bridge.experiments import ExperimentError
from tests.helpers import run_async

from .helpers import DatasetServer, run

ITEMS = [{"id": i, "input": {"ticket_id": f"T-{i}", "subject": "help"}, "expected_output": "ok"}
         for i in (3, 5, 8, 9, 12)]


@pytest.fixture()
def dataset():
    server = DatasetServer("hard-cases", ITEMS)
    yield server
    server.close()


def test_every_item_runs_once_tagged_with_the_experiment(memory_bridge, dataset):
    live, most = [0], [0]
    lock = threading.Lock()

    @workflow("flusso_ticket")
    def handle(ticket):
        with lock:
            live[0] += 1
            most[0] = max(most[0], live[0])
        record.ticket(ticket_id=ticket["ticket_id"], subject=ticket["subject"])
        record.draft("Hello")
        if ticket["ticket_id"] == "T-8":
            raise RuntimeError("boom")
        with lock:
            live[0] -= 1
        return "ok"

    stream = io.StringIO()
    result = experiments.run(dataset="hard-cases", workflow=handle, name="prompt-v7", concurrency=2,
                             url=dataset.url, api_key="read-key", stream=stream)
    assert (result.items, result.succeeded, result.failed, result.delivered) == (5, 4, 1, True)
    assert result.url == f"{dataset.url}/experiments/{result.id}" and len(result.id) == 32
    assert set(dataset.keys) == {"read-key"} and len(dataset.keys) == 3  # three pages of two
    assert most[0] <= 2  # bounded concurrency
    assert "5/5 items, 1 failed" in stream.getvalue()
    logs = memory_bridge(5)
    tags = sorted((log["identification"]["experiment"]["item_id"], log["outcome"]["status"]) for log in logs)
    assert tags == [(3, "SUCCESS"), (5, "SUCCESS"), (8, "FAILED"), (9, "SUCCESS"), (12, "SUCCESS")]
    assert {log["identification"]["experiment"]["id"] for log in logs} == {result.id}
    assert {log["identification"]["experiment"]["name"] for log in logs} == {"prompt-v7"}
    assert {log["identification"]["experiment"]["dataset_id"] for log in logs} == {7}


def test_an_async_workflow_and_no_tags_outside_the_run(memory_bridge, dataset):
    @workflow("flusso_ticket")
    async def handle(ticket):
        await asyncio.sleep(0.01)
        record.ticket(ticket_id=ticket["ticket_id"])
        record.outcome("SUCCESS")

    result = experiments.run(dataset="hard-cases", workflow=handle, name="async", url=dataset.url,
                             api_key="read-key", progress=False, limit=3)
    assert (result.items, result.failed) == (3, 0)
    run_async(handle({"ticket_id": "plain"}))  # after the run: a production log, untagged
    logs = memory_bridge(4)
    plain = [log for log in logs if log["ticket_info"]["ticket_id"] == "plain"]
    assert len(plain) == 1 and "experiment" not in plain[0]["identification"]
    assert sum("experiment" in log["identification"] for log in logs) == 3


def test_a_bad_dataset_or_key_or_no_configure_is_a_clear_error(memory_bridge, dataset):
    def handle(ticket):
        return None

    with pytest.raises(ExperimentError, match="HTTP 404: no such dataset"):
        experiments.run(dataset="other", workflow=handle, name="x", url=dataset.url, api_key="read-key")
    with pytest.raises(ExperimentError, match="HTTP 404"):
        experiments.run(dataset="hard-cases", workflow=handle, name="x", url=dataset.url, api_key="wrong")
    with pytest.raises(ExperimentError, match="LOG_COLLECTOR_READ_KEY"):
        experiments.run(dataset="hard-cases", workflow=handle, name="x", url=dataset.url)


def test_without_configure_the_run_refuses_to_start():
    out = run("""
        from otel_bridge import experiments
        try:
            experiments.run(dataset="d", workflow=print, name="x", url="http://127.0.0.1:9", api_key="k")
        except experiments.ExperimentError as exc:
            print("refused:", exc)
    """)
    assert "refused: call otel_bridge.configure() first" in out.stdout, out.stderr


def test_importing_the_runner_loads_no_opentelemetry_sdk():
    out = run("""
        import sys
        import otel_bridge.experiments
        print(sorted(m for m in sys.modules if m.startswith(("opentelemetry", "httpx", "requests"))))
    """)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
