"""The assembly pass works in pipelined chunks, each stored and marked in ONE transaction: a pass
that fails half way (a crash while a chunk is written) leaves every chunk either done or still
due, and the next pass finishes the rest: every trace gets exactly one log, none is mistaken for
a bridge trace, and a pass with nothing due does nothing."""
from __future__ import annotations

import asyncio
import time

import psycopg
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

from collector_api.store.core.db import create_pool
from collector_api.store.traces import assembly
from collector_api.store.traces.staging import StagingLimits, stage_spans
from collector_api.traces import assembly as trace_assembly
from collector_api.traces.decode import decode_spans
from collector_api.traces.prices import load_prices
from collector_api.traces.sealing import cipher, redactor_for
from tests.helpers import make_key, run_async

SECRET = "pipeline-secret-" + "p" * 32
TRACES = 7


def _request() -> ExportTraceServiceRequest:
    now = time.time_ns() - 60 * 10**9
    spans = []
    for t in range(TRACES):
        trace = bytes([t + 1]) * 16
        for i in range(3):
            op = AnyValue(string_value="chat" if i else "invoke_agent")
            attrs = [KeyValue(key="gen_ai.operation.name", value=op)]
            if i == 0:
                attrs.append(KeyValue(key="user.email", value=AnyValue(string_value=f"person{t}@example.com")))
            spans.append(Span(trace_id=trace, span_id=(i + 1).to_bytes(8, "big"), name=f"span {i}",
                              parent_span_id=b"" if i == 0 else (1).to_bytes(8, "big"),
                              start_time_unix_nano=now + i, end_time_unix_nano=now + 10**6 + i, attributes=attrs))
    return ExportTraceServiceRequest(resource_spans=[ResourceSpans(scope_spans=[ScopeSpans(spans=spans)])])


def _states(dsn: str) -> list[tuple]:
    with psycopg.connect(dsn) as conn:
        return conn.execute("SELECT trace_id, state, log_id IS NOT NULL FROM trace_state ORDER BY trace_id").fetchall()


def _logs(dsn: str) -> int:
    with psycopg.connect(dsn) as conn:
        return conn.execute("SELECT count(*) FROM workflow_logs").fetchone()[0]


def test_a_pass_that_fails_half_way_is_finished_by_the_next(db_dsn, monkeypatch) -> None:
    make_key(db_dsn, "acme")
    cfg = trace_assembly.AssemblyConfig(SECRET, load_prices(None), quiet_s=0.01, chunk=2)
    real_insert = assembly.insert_rows
    calls = []

    async def insert_then_crash(conn, client_id, rows):  # the 2nd chunk's logs are written, then the crash
        stored = await real_insert(conn, client_id, rows)
        calls.append(len(rows))
        if len(calls) == 2:
            raise RuntimeError("crash after the insert, before the traces are marked")
        return stored

    async def go() -> None:
        async with create_pool(db_dsn, max_size=4) as pool:
            decoded = decode_spans(_request(), "acme", redactor_for(SECRET, "acme"), cipher(SECRET, "acme"))
            staged = await stage_spans(pool, "acme", decoded.rows, StagingLimits(100, 10**7, 100, 600))
            assert staged.staged == TRACES * 3
            await asyncio.sleep(0.05)  # quiet period
            monkeypatch.setattr(assembly, "insert_rows", insert_then_crash)
            with pytest.raises(RuntimeError):
                await trace_assembly.assemble_due(pool, cfg)
            states = _states(db_dsn)
            assert sorted(s[1] for s in states) == ["assembled"] * 2 + ["open"] * (TRACES - 2)
            assert _logs(db_dsn) == 2  # the crashed chunk's insert was rolled back with its marks
            monkeypatch.setattr(assembly, "insert_rows", real_insert)
            report = await trace_assembly.assemble_due(pool, cfg)
            assert report.counts == {"assembled": TRACES - 2}
            assert (await trace_assembly.assemble_due(pool, cfg)).counts == {}

    run_async(go())
    assert _logs(db_dsn) == TRACES
    assert all(state == "assembled" and has_log for _, state, has_log in _states(db_dsn))
