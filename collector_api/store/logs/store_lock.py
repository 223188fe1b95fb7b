"""The one way into a transaction that writes a tenant's workflow logs (the ingest path's insert,
the trace assembly's insert and in-place replace): scoped to the tenant, holding the erasure's
per-tenant lock (locks.ERASURE_TENANT) shared from its first statement until it ends.

An erasure takes that lock exclusively once its tombstones are committed (store.erasure.run.
barrier), so it waits for every store that began before them and may have missed them. The
lock is taken here, on the node the app is connected to, where the erasure takes it: the
`workflow_logs` trigger of migration 0018 takes it too, but on the node that stores the row. On
one node that is the same lock twice in one transaction (re-entrant: nothing changes); on Citus
it is the worker holding the tenant's shard, while the erasure runs on the coordinator, and
advisory locks are per node: only this lock makes the erasure wait there (docs/scaling.md).
tests/store/test_log_write_paths.py checks that every function writing a log runs in it.
"""
from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import psycopg
from psycopg_pool import AsyncConnectionPool

from collector_api.store.core import locks
from collector_api.store.core.db import Scope, scoped_transaction


@asynccontextmanager
async def store_transaction(pool: AsyncConnectionPool, client_id: str) -> AsyncIterator[psycopg.AsyncConnection]:
    """A transaction scoped to `client_id` that holds its erasure lock shared: an erasure of the
    tenant waiting for the lock exclusively waits for this transaction to end; one holding it
    makes this transaction wait here, before it writes anything."""
    async with scoped_transaction(pool, Scope.tenant(client_id)) as conn:
        await conn.execute("SELECT pg_advisory_xact_lock_shared(%s, hashtext(%s))", (locks.ERASURE_TENANT, client_id))
        yield conn
