"""A span arriving for a trace already staged moves the trace's last_seen to the time of the
transaction that staged it (what the quiet timer of assembly counts from)."""
from __future__ import annotations

import os

import psycopg

from collector_api.store.core.db import create_pool
from collector_api.store.traces.staging import SpanRow, StagingLimits, stage_spans
from tests.helpers import make_key, run_async

TRACE = "ab" * 16
LIMITS = StagingLimits(100, 10**7, 100, 600)


def stage(dsn: str, span_no: int) -> int:
    async def go():
        async with create_pool(dsn, max_size=1) as pool:
            row = SpanRow(0, "acme", TRACE, f"{span_no:016x}", None, 1, 2, os.urandom(50))
            return (await stage_spans(pool, "acme", [row], LIMITS)).staged
    return run_async(go())


def state(dsn: str) -> tuple:
    with psycopg.connect(dsn) as conn:
        return conn.execute("SELECT span_count, last_seen, now() - last_seen FROM trace_state"
                            " WHERE client_id = 'acme' AND trace_id = %s", (TRACE,)).fetchone()


def test_a_later_span_moves_last_seen_to_its_transaction_time(db_dsn):
    make_key(db_dsn, "acme")
    assert stage(db_dsn, 1) == 1
    with psycopg.connect(db_dsn) as conn:  # as if the first span had arrived long ago
        conn.execute("UPDATE trace_state SET last_seen = '2000-01-01T00:00:00Z' WHERE trace_id = %s", (TRACE,))
    assert state(db_dsn)[1].year == 2000
    assert stage(db_dsn, 2) == 1
    count, seen, age = state(db_dsn)
    assert count == 2
    assert seen.year > 2000 and age.total_seconds() < 60  # moved to now, not left behind
