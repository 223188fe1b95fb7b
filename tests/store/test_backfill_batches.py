"""The backfill runner (store.logs.batched) works tenant by tenant: each batch's todo SELECT and
UPDATE carry one tenant's client_id (on Citus: routed to its shard; Citus refuses FOR UPDATE
across shards), so a batch never reads, locks or writes another tenant's rows. A spec of another
shape is refused when it is made."""
from datetime import UTC, datetime, timedelta

import orjson
import psycopg
import pytest

from collector_api.store.core.db import create_pool
from collector_api.store.logs.backfill import DERIVED
from collector_api.store.logs.batched import Backfill, run_backfill
from collector_api.store.logs.session_backfill import SESSIONS
from tests.helpers import run_async

DAY0 = (datetime.now(UTC) - timedelta(days=3)).replace(hour=0, minute=0, second=0, microsecond=0)
TENANTS = ("acme", "globex", "initech")


def _old_logs(dsn: str, per_tenant: int) -> dict[int, str]:
    """Logs as if stored before 0013 and 0017, the tenants interleaved in time: {id: client_id}."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        for i in range(per_tenant * len(TENANTS)):
            client = TENANTS[i % len(TENANTS)]
            conn.execute("INSERT INTO workflow_logs (client_id, ticket_id, status, executed_at, trace_id, log_data,"
                         " critical_path, usage_by_model, session_done) VALUES (%s, %s, 'SUCCESS', %s, %s, %s,"
                         " NULL, NULL, NULL)",
                         (client, f"old-{i}", DAY0 + timedelta(minutes=i), f"old-{i}",
                          orjson.dumps({"trace": {"spans": [], "llm_calls": [], "ticket": {}}}).decode()))
        return dict(conn.execute("SELECT id, client_id FROM workflow_logs").fetchall())


def _run(dsn: str, spec: Backfill, derive, **kw) -> int:
    async def go():
        async with create_pool(dsn, max_size=2) as pool:
            return await run_backfill(pool, spec, derive, **kw)
    return run_async(go())


def test_each_derived_batch_holds_one_tenants_rows(db_dsn):
    owner = _old_logs(db_dsn, 4)
    batches: list[set[str]] = []

    def derive(rows):
        batches.append({owner[r["id"]] for r in rows})
        return ["{}"] * len(rows), ["{}"] * len(rows)

    # One batch of 2: the two oldest logs are acme's and globex's; the batch takes one tenant's two.
    assert _run(db_dsn, DERIVED, derive, batch=2, max_batches=1) == 2
    with psycopg.connect(db_dsn) as conn:
        done = conn.execute("SELECT DISTINCT client_id FROM workflow_logs WHERE critical_path IS NOT NULL").fetchall()
    assert len(done) == 1
    assert _run(db_dsn, DERIVED, derive, batch=3, max_batches=40) == 10
    assert _run(db_dsn, DERIVED, derive, batch=3, max_batches=40) == 0
    # acme's 2 left in one batch, then globex's and initech's 4 each in 3 + 1: one tenant a batch
    assert batches == [{"acme"}, {"acme"}, {"globex"}, {"globex"}, {"initech"}, {"initech"}]
    with psycopg.connect(db_dsn) as conn:
        assert conn.execute("SELECT count(*) FROM workflow_logs WHERE critical_path IS NULL").fetchone()[0] == 0


def test_each_session_batch_holds_one_tenants_rows(db_dsn):
    _old_logs(db_dsn, 3)
    batches: list[set[str]] = []

    def derive(rows):
        batches.append({r["client_id"] for r in rows})
        return ([None] * len(rows),)

    assert _run(db_dsn, SESSIONS, derive, batch=2, max_batches=40) == 9
    assert batches and all(len(b) == 1 for b in batches)


def test_a_run_stops_after_its_batches_over_all_tenants(db_dsn):
    _old_logs(db_dsn, 3)
    # acme's 3 in 2 + 1, then globex's first 2: three batches, the rest for the next run
    assert _run(db_dsn, SESSIONS, lambda rows: ([None] * len(rows),), batch=2, max_batches=3) == 5
    assert _run(db_dsn, SESSIONS, lambda rows: ([None] * len(rows),), batch=2, max_batches=3) == 4


@pytest.mark.parametrize(("todo", "update", "says"), [
    ("SELECT id FROM workflow_logs WHERE a IS NULL ORDER BY executed_at LIMIT %s FOR UPDATE SKIP LOCKED",
     DERIVED.update, "expected SELECT"),
    ("SELECT id FROM workflow_logs WHERE a IS NULL OR b IS NULL AND client_id = %s ORDER BY executed_at LIMIT %s"
     " FOR UPDATE SKIP LOCKED", DERIVED.update, "parentheses"),
    (DERIVED.todo, "UPDATE workflow_logs w SET a = v.a FROM unnest(%s::bigint[], %s::timestamptz[]) AS v(id, a)"
                   " WHERE w.id = v.id", "LAST parameter"),
    (DERIVED.todo, "UPDATE workflow_logs w SET a = v.a FROM unnest(%s::bigint[], %s::timestamptz[]) AS v(id, a)"
                   " WHERE w.client_id = %s AND w.id = v.id AND w.a = %s", "LAST parameter"),
])
def test_a_spec_of_another_shape_is_refused(todo, update, says):
    with pytest.raises(ValueError, match=says):
        Backfill(todo, update, "x")
