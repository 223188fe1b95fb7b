"""Totals never depend on arrival order: the same trace's spans in several permutations and
request splits (children first, interleaved, replayed) give identical logs. Pure (every
permutation of a convention's spans through the mapping and the builder) and end to end (OTLP
requests to a live server)."""
from __future__ import annotations

import copy
import itertools
import json
import random
from dataclasses import replace

import httpx
import psycopg
import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from collector_api.traces import mapping as conventions
from collector_api.traces.prices import load_prices
from otel_bridge.assemble import build_workflow_log, finished_records
from otel_bridge.spanrecord import from_sdk_span

from .helpers import genai_trace, openinference_trace, openllmetry_trace, price, wait_until

EMITTERS = {"openinference": openinference_trace, "genai": genai_trace, "openllmetry": openllmetry_trace}


def captured(emit) -> list:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    emit(provider)
    provider.shutdown()
    return list(exporter.get_finished_spans())


def assembled(records: list) -> dict:
    prepared = conventions.prepare(finished_records(records), load_prices(None), None)
    log = build_workflow_log(prepared.records, identification={"client_id": "acme"})
    return conventions.finish(log, prepared, dropped_spans=0)


@pytest.mark.parametrize("convention", list(EMITTERS))
def test_every_permutation_gives_the_same_log(convention):
    records = [from_sdk_span(s) for s in captured(EMITTERS[convention])]
    expected = assembled(records)
    assert expected["metrics"]["llm_calls"] == 2 and expected["metrics"]["input_tokens"] == 2700
    perms = list(itertools.permutations(records))
    for perm in random.Random(16).sample(perms, min(len(perms), 120)):
        assert assembled(list(perm)) == expected


def test_same_start_time_ties_do_not_depend_on_order():
    records = [from_sdk_span(s) for s in captured(genai_trace)]
    same = [replace(r, start_time=records[0].start_time) for r in records]
    assert assembled(same) == assembled(list(reversed(same)))


# --- end to end --------------------------------------------------------------------------------

def _request(spans: list) -> bytes:
    req = ExportTraceServiceRequest()
    req.resource_spans.add().scope_spans.add().spans.extend(spans)
    return req.SerializeToString()


def _splits(spans: list, rng: random.Random) -> dict[str, list[list]]:
    """Request splits of one trace's OTLP spans (root last in `spans`: the SDK ends it last)."""
    shuffled = spans[:]
    rng.shuffle(shuffled)
    return {
        "one request": [spans],
        "children first, one per request": [[s] for s in spans],
        "root first, then children": [[spans[-1]], spans[:-1]],
        "interleaved, replayed": [shuffled[:2], shuffled[2:] + shuffled[:1], [spans[-1], spans[0]], spans],
    }


def test_request_splits_and_replays_store_identical_logs(traces_server, acme_ingest, db_dsn):
    base = list(encode_spans(captured(openllmetry_trace)).resource_spans[0].scope_spans[0].spans)
    splits = _splits(base, random.Random(16))
    for n, requests in enumerate(splits.values()):
        trace = bytes([n + 1]) * 16  # one trace per split; same span ids, times and content
        for spans in requests:
            copies = [copy.deepcopy(s) for s in spans]
            for s in copies:
                s.trace_id = trace
            r = httpx.post(f"{traces_server.url}/v1/traces", content=_request(copies),
                           headers={"Content-Type": "application/x-protobuf", "X-API-Key": acme_ingest}, timeout=10)
            assert r.status_code == 200, r.text

    def logs() -> list[dict]:
        with psycopg.connect(db_dsn) as conn:
            return [r[0] for r in conn.execute("SELECT log_data FROM workflow_logs ORDER BY trace_id").fetchall()]
    assert wait_until(lambda: len(got := logs()) == len(splits)
                      and all(g["metrics"]["span_count"] == len(base) for g in got), timeout=30)
    normalized = [json.dumps({k: v for k, v in log.items() if k != "trace_id"}, sort_keys=True) for log in logs()]
    assert len(set(normalized)) == 1
    m = logs()[0]["metrics"]
    assert (m["llm_calls"], m["tool_calls"], m["input_tokens"], m["output_tokens"]) == (2, 1, 2700, 240)
    assert m["cost_usd"] == pytest.approx(price(1200, 40, 1024) + price(1500, 200), abs=1e-9)
