"""The staging caps are exact under concurrency: 16 requests at once, each on its own database
connection, never open more traces than the tenant's cap, never stage more spans or bytes into
one new trace than its caps, never pass the tenant's byte quota; each refusal carries its reason,
and through the real server the reasons are counted on /ingest."""
from __future__ import annotations

import asyncio
import os
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import psycopg
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

from collector_api.store.core.db import create_pool
from collector_api.store.traces.staging import SpanRow, StagingLimits, stage_spans
from tests.helpers import LiveServer, make_key, run_async
from tests.traces.helpers import trace_settings

REQUESTS = 16


def span(index: int, trace: str, n: int, size: int = 100) -> SpanRow:
    return SpanRow(index, "acme", trace, f"{n:016x}", None if n == 0 else f"{0:016x}", 1, 2, os.urandom(size))


def concurrently(dsn: str, batches: list[list[SpanRow]], limits: StagingLimits):
    """Stage each batch as its own request, all at once, each on its own connection.

    The race is made certain, not left to timing: a gate transaction holds trace_spans in SHARE
    mode, so every request stops at its first write, after deciding what to admit, until all
    of them are waiting (on the gate or on each other); then the gate opens. Without the
    tenant's staging lock every request has decided on the same empty state by then."""
    async def go():
        async with create_pool(dsn, max_size=REQUESTS, min_size=REQUESTS) as pool, \
                await psycopg.AsyncConnection.connect(dsn) as gate, \
                await psycopg.AsyncConnection.connect(dsn, autocommit=True) as observer:
            await pool.wait()
            await gate.execute("LOCK TABLE trace_spans IN SHARE MODE")
            tasks = [asyncio.create_task(stage_spans(pool, "acme", rows, limits)) for rows in batches]
            deadline = time.monotonic() + 20
            while await waiting(observer) < len(batches):
                assert time.monotonic() < deadline, "the requests never all reached the gate"
                await asyncio.sleep(0.02)
            await gate.commit()
            return await asyncio.gather(*tasks)
    return run_async(go())


async def waiting(observer: psycopg.AsyncConnection) -> int:
    """Backends of this database waiting on a lock (pg_stat_activity, read outside a transaction:
    inside one it is a snapshot)."""
    cur = await observer.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                                 " AND wait_event_type = 'Lock'")
    return (await cur.fetchone())[0]


def states(dsn: str) -> list[tuple]:
    with psycopg.connect(dsn) as conn:
        return conn.execute("SELECT trace_id, span_count, bytes FROM trace_state WHERE client_id = 'acme'"
                            " ORDER BY trace_id").fetchall()


def staged_rows(dsn: str) -> int:
    with psycopg.connect(dsn) as conn:
        return conn.execute("SELECT count(*) FROM trace_spans").fetchone()[0]


def test_16_concurrent_requests_opening_new_traces_never_exceed_the_open_trace_cap(db_dsn):
    make_key(db_dsn, "acme")
    cap = 5
    batches = [[span(i, f"{r:02x}{i:030x}", 0) for i in range(3)] for r in range(REQUESTS)]  # 3 new traces each
    results = concurrently(db_dsn, batches, StagingLimits(100, 10**7, cap, 600))
    assert len(states(db_dsn)) == cap  # exactly the cap, not one more
    assert sum(r.staged for r in results) == cap == staged_rows(db_dsn)
    refused = [label for r in results for _, label, _ in r.refused]
    assert refused == ["cap_open_traces"] * (REQUESTS * 3 - cap)


def test_concurrent_requests_into_one_new_trace_keep_its_span_and_byte_caps(db_dsn):
    make_key(db_dsn, "acme")
    trace = "ab" * 16
    batches = [[span(i, trace, r * 10 + i) for i in range(3)] for r in range(REQUESTS)]
    results = concurrently(db_dsn, batches, StagingLimits(10, 10**7, 1000, 600))
    assert states(db_dsn)[0][1] == 10 == staged_rows(db_dsn)
    assert sorted({label for r in results for _, label, _ in r.refused}) == ["cap_spans"]
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        conn.execute("TRUNCATE trace_spans, trace_state")
    results = concurrently(db_dsn, batches, StagingLimits(1000, 1000, 1000, 600))  # 10 spans of 100 bytes
    assert states(db_dsn)[0][1:] == (10, 1000)
    assert {label for r in results for _, label, _ in r.refused} == {"cap_bytes"}


def test_the_tenant_byte_quota_holds_under_concurrency(db_dsn):
    make_key(db_dsn, "acme")
    batches = [[span(i, f"{r:02x}{i:030x}", 0, size=1000) for i in range(4)] for r in range(REQUESTS)]
    results = concurrently(db_dsn, batches, StagingLimits(100, 10**7, 1000, 600, max_open_bytes=10_500))
    staged_bytes = sum(row[2] for row in states(db_dsn))
    assert staged_bytes == 10_000 and sum(r.staged for r in results) == 10  # 10 spans of 1000 fit 10,500
    assert {label for r in results for _, label, _ in r.refused} == {"cap_tenant_bytes"}


def otlp_request(request_no: int) -> bytes:
    now = time.time_ns()
    spans = [Span(trace_id=bytes([request_no + 1, i + 1]) * 8, span_id=(1).to_bytes(8, "big"), name="root",
                  start_time_unix_nano=now, end_time_unix_nano=now + 1000) for i in range(3)]
    return ExportTraceServiceRequest(resource_spans=[ResourceSpans(scope_spans=[ScopeSpans(spans=spans)])]
                                     ).SerializeToString()


def test_refusals_over_the_cap_are_counted_by_reason_for_the_ingest_page(db_dsn):
    """Through the real server, 16 requests at once (the exactness itself is proved without
    timing luck by the gated tests above); each refused span is counted under its reason."""
    key = make_key(db_dsn, "acme")
    settings = trace_settings(flusso_trace_max_open_traces=5, flusso_ingest_concurrency=16,
                              flusso_trace_quiet_seconds=3600, flusso_trace_max_age_seconds=3600,
                              flusso_ingest_counters_flush_seconds=0.2)
    server = LiveServer(db_dsn, settings).start()
    try:
        def post(n: int) -> httpx.Response:
            return httpx.post(server.url + "/v1/traces", content=otlp_request(n), timeout=30,
                              headers={"Content-Type": "application/x-protobuf", "X-API-Key": key})

        with ThreadPoolExecutor(REQUESTS) as pool:
            answers = list(pool.map(post, range(REQUESTS)))
        # 200 with a partial success, or 400 when all of a request's spans were refused (OTLP).
        assert {a.status_code for a in answers} <= {200, 400}, [a.text[:200] for a in answers]
        assert len(states(db_dsn)) == 5
        deadline = time.monotonic() + 15
        while True:
            with psycopg.connect(db_dsn) as conn:
                counted = conn.execute("SELECT coalesce(sum(count), 0) FROM ingest_counts WHERE client_id = 'acme'"
                                       " AND reason = 'cap_open_traces'").fetchone()[0]
            if counted == REQUESTS * 3 - 5 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert counted == REQUESTS * 3 - 5  # the /ingest page's figure, by reason
    finally:
        server.stop()
