"""A scoped transaction's role, tenant and scope are set with SET LOCAL statements whose values are
quoted literals (store.core.db.set_local; on Citus SET LOCAL reaches the workers, set_config does
not): any tenant id, quotes, backslashes and semicolons included, is exactly one value, row-level
security shows that tenant's rows only, and nothing outlives the transaction."""
from __future__ import annotations

import psycopg
import pytest

from collector_api.store.core.db import Scope, create_pool, scoped_transaction, set_local
from tests.helpers import run_async

ODD = ("o'brien", "a\\b'; SET LOCAL flusso.scope = 'provider'; --", "=cmd", "$$x$$", "ümlaut \t tab")


def _logs(dsn: str, tenants) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        for i, tenant in enumerate(tenants):
            conn.execute("INSERT INTO workflow_logs (client_id, ticket_id, status, executed_at, trace_id, log_data)"
                         " VALUES (%s, %s, 'SUCCESS', now(), %s, '{}')", (tenant, f"t{i}", f"trace-{i}"))


@pytest.mark.parametrize("tenant", ODD)
def test_any_tenant_id_is_one_literal_and_sees_only_its_rows(db_dsn, tenant):
    _logs(db_dsn, [tenant, "acme", "globex"])

    async def look():
        async with create_pool(db_dsn, max_size=1) as pool:
            async with scoped_transaction(pool, Scope.tenant(tenant)) as conn:
                seen = await (await conn.execute(
                    "SELECT current_user AS role, current_setting('flusso.tenant') AS tenant,"
                    " current_setting('flusso.scope') AS scope, (SELECT array_agg(DISTINCT client_id)"
                    " FROM workflow_logs) AS rows")).fetchone()  # no tenant filter: RLS alone
            async with pool.connection() as conn:  # the same connection, after the transaction
                after = await (await conn.execute(
                    "SELECT current_user AS role, current_setting('flusso.tenant', true) AS tenant")).fetchone()
        return seen, after

    seen, after = run_async(look())
    assert seen == {"role": "flusso_app", "tenant": tenant, "scope": "client", "rows": [tenant]}
    assert after["role"] != "flusso_app" and not after["tenant"]


def test_the_provider_scope_and_a_narrowed_tenant(db_dsn):
    _logs(db_dsn, ["acme", "globex"])

    async def look():
        async with create_pool(db_dsn, max_size=1) as pool, scoped_transaction(pool, Scope.provider()) as conn:
            before = await (await conn.execute(
                "SELECT current_user AS role, current_setting('flusso.scope') AS scope,"
                " (SELECT count(DISTINCT client_id) FROM workflow_logs) AS n")).fetchone()
            await set_local(conn, {"flusso.tenant": "globex"})  # as a provider's review does
            return before, (await (await conn.execute("SELECT current_setting('flusso.tenant') AS t")).fetchone())["t"]

    assert run_async(look()) == ({"role": "flusso_provider", "scope": "provider", "n": 2}, "globex")
