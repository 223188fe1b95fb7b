"""A store of a tenant's logs and an erasure of that tenant exclude each other on the app's own
node (store.logs.store_lock): the store holds the tenant's erasure lock shared from the start of
its transaction, the erasure's barrier takes it exclusively. Checked with migration 0018's
trigger disabled: it takes the same lock, but on the node storing the row, which on Citus is a
worker while the erasure runs on the coordinator (docs/scaling.md, "On Citus")."""
from __future__ import annotations

import asyncio
import threading
import time

import psycopg

from collector_api.contract.prepare import prepare_row
from collector_api.store.core import locks
from collector_api.store.core.db import create_pool
from collector_api.store.erasure.run import barrier
from collector_api.store.logs.store_lock import store_transaction
from collector_api.store.logs.writes import insert_workflow_logs
from tests.collector.helpers import make_log
from tests.helpers import run_async, wait_until

_WAITING = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"


def _without_trigger(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("ALTER TABLE workflow_logs DISABLE TRIGGER workflow_logs_refuse_erased")


async def _store(dsn: str, tenant: str, ticket: str):
    async with create_pool(dsn, max_size=1) as pool:
        return await insert_workflow_logs(pool, tenant, [prepare_row(0, make_log(tenant, ticket), tenant, None)])


def test_a_store_waits_while_an_erasure_holds_the_tenants_lock(db_dsn):
    _without_trigger(db_dsn)
    done = {}
    with psycopg.connect(db_dsn) as erasure, psycopg.connect(db_dsn, autocommit=True) as watch:
        erasure.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (locks.ERASURE_TENANT, "acme"))
        worker = threading.Thread(target=lambda: done.setdefault("acme", run_async(_store(db_dsn, "acme", "HELD"))))
        worker.start()
        assert wait_until(lambda: watch.execute(_WAITING).fetchone()[0] > 0), "the store did not wait for the lock"
        time.sleep(0.3)
        assert "acme" not in done
        assert not run_async(_store(db_dsn, "globex", "FREE"))[0].duplicate  # another tenant is not held up
        erasure.commit()
    worker.join(30)
    assert not done["acme"][0].duplicate


def test_the_erasure_barrier_waits_for_a_store_in_flight(db_dsn):
    _without_trigger(db_dsn)

    async def race() -> list[str]:
        order: list[str] = []
        async with create_pool(db_dsn, max_size=3) as pool:
            async with store_transaction(pool, "acme"):  # a store that began before the tombstones
                erasing = asyncio.create_task(barrier(pool, "acme"))
                await asyncio.sleep(0.5)
                order.append("barrier passed" if erasing.done() else "barrier waiting")
            await erasing
            order.append("barrier passed")
        return order

    assert run_async(race()) == ["barrier waiting", "barrier passed"]
