"""Staging upkeep when spans arrived before their hour's partition existed: they sit in
trace_spans' DEFAULT partition, and creating that hour's partition moves them into it (none lost),
without holding up the other hours' creation nor the drops of expired partitions."""
from __future__ import annotations

import os
import time
from datetime import UTC, datetime, timedelta

import psycopg
from psycopg import sql

from collector_api.store.core.db import create_pool
from collector_api.store.traces.staging import SpanRow, StagingLimits, stage_spans, staging_upkeep
from tests.helpers import make_key, run_async

LIMITS = StagingLimits(1000, 10**8, 1000, 600)
OLD = "trace_spans_2001010100"


def _hour(moment: datetime, offset: int = 0) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0) + timedelta(hours=offset)


def _partitions(conn) -> set[str]:
    return {r[0] for r in conn.execute(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
        " JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'trace_spans'")}


def _stage(dsn: str, client: str, trace: str, n: int) -> int:
    async def go():
        async with create_pool(dsn, max_size=1) as pool:
            rows = [SpanRow(i, client, trace, f"{i + 1:016x}", None, 1, 2, os.urandom(40)) for i in range(n)]
            return (await stage_spans(pool, client, rows, LIMITS)).staged
    return run_async(go())


def _no_partition_this_hour(dsn: str) -> datetime:
    """Drop this hour's and the next hours' partitions (a fresh install, or the job down), and
    plant an expired one. Waits out the last seconds of an hour so staging and upkeep see the
    same hour."""
    now = datetime.now(UTC)
    if now.minute == 59 and now.second >= 50:
        time.sleep(61 - now.second)
    hour = _hour(datetime.now(UTC))
    with psycopg.connect(dsn, autocommit=True) as conn:
        for name in _partitions(conn):
            if name != "trace_spans_default":
                conn.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE TABLE {} PARTITION OF trace_spans FOR VALUES FROM ('2001-01-01T00:00Z')"
                             " TO ('2001-01-01T01:00Z')").format(sql.Identifier(OLD)))
    return hour


def test_upkeep_moves_default_rows_into_the_new_partition_and_still_creates_and_drops_the_others(db_dsn):
    make_key(db_dsn, "acme")
    make_key(db_dsn, "bobco")
    hour = _no_partition_this_hour(db_dsn)
    assert _stage(db_dsn, "acme", "ab" * 16, 7) == 7
    assert _stage(db_dsn, "bobco", "cd" * 16, 5) == 5
    nxt = _hour(hour, 1)
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        # next hour's rows in DEFAULT too (a clock step): the second hour has the same conflict
        conn.execute("INSERT INTO trace_spans_default (client_id, trace_id, span_id, start_ns, payload, received_at)"
                     " VALUES ('acme', %s, %s, 1, %s, %s)",
                     ("ef" * 16, "0" * 15 + "1", b"x" * 20, nxt + timedelta(minutes=5)))
        assert conn.execute("SELECT count(*) FROM trace_spans_default").fetchone()[0] == 13
        before = conn.execute("SELECT client_id, trace_id, span_id, payload FROM trace_spans"
                              " ORDER BY 1, 2, 3").fetchall()

    result = staging_upkeep(db_dsn, 3600, hours_ahead=2)

    assert result == {"created": 3, "dropped": 1, "moved": 13}
    this_name, next_name = f"trace_spans_{hour:%Y%m%d%H}", f"trace_spans_{nxt:%Y%m%d%H}"
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        names = _partitions(conn)
        assert {this_name, next_name, f"trace_spans_{_hour(hour, 2):%Y%m%d%H}"} <= names
        assert OLD not in names
        assert conn.execute("SELECT count(*) FROM trace_spans_default").fetchone()[0] == 0
        assert conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(this_name))).fetchone()[0] == 12
        in_next = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(next_name))).fetchone()
        assert in_next[0] == 1
        after = conn.execute("SELECT client_id, trace_id, span_id, payload FROM trace_spans"
                             " ORDER BY 1, 2, 3").fetchall()
        assert after == before  # every staged span, byte for byte
    # a later span of the trace is staged as usual, and a second run has nothing to do
    assert _stage(db_dsn, "acme", "ab" * 16, 1) == 1
    assert staging_upkeep(db_dsn, 3600, hours_ahead=2) == {"created": 0, "dropped": 0, "moved": 0}


def test_moved_spans_stay_under_tenant_scope(db_dsn):
    """The moved rows are read through the parent's RLS like any other: a tenant sees its own."""
    make_key(db_dsn, "acme")
    make_key(db_dsn, "bobco")
    _no_partition_this_hour(db_dsn)
    _stage(db_dsn, "acme", "ab" * 16, 3)
    _stage(db_dsn, "bobco", "cd" * 16, 4)
    staging_upkeep(db_dsn, 3600)

    async def seen(client: str) -> list:
        from collector_api.store.core.db import Scope, scoped_transaction
        async with create_pool(db_dsn, max_size=1) as pool, scoped_transaction(pool, Scope.tenant(client)) as conn:
            cur = await conn.execute("SELECT DISTINCT client_id FROM trace_spans")
            return [r["client_id"] for r in await cur.fetchall()]
    assert run_async(seen("acme")) == ["acme"]
    assert run_async(seen("bobco")) == ["bobco"]
