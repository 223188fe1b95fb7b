"""The erasure log, read: the provider's page and a request's receipt. SQL + psycopg only."""
from __future__ import annotations

from psycopg import sql
from psycopg_pool import AsyncConnectionPool

from collector_api.store.core.db import Scope, scoped_transaction
from collector_api.store.core.scope import narrowed, tenant_condition

_COLUMNS = ("client_id, request_id, kind, asked, asked_sha256, requested_by, status, counts, days, matched,"
            " started_at, finished_at")


async def list_erasures(pool: AsyncConnectionPool, scope: Scope, *, client: str | None = None,
                        limit: int = 200) -> list[dict]:
    """The newest erasures and retention runs `scope` may see (a provider: every tenant's, or `client`'s)."""
    condition, params = tenant_condition(scope, client)
    query = sql.SQL(
        f"SELECT {_COLUMNS}, jsonb_array_length(coalesce(asked->'ticket_ids', '[]')) AS n_tickets,"
        " jsonb_array_length(coalesce(asked->'trace_ids', '[]')) AS n_traces,"
        " jsonb_array_length(coalesce(asked->'tokens', '[]')) AS n_tokens"
        " FROM erasure_log WHERE {condition} ORDER BY started_at DESC LIMIT %s").format(condition=condition)
    async with scoped_transaction(pool, narrowed(scope, client)) as conn:
        cur = await conn.execute(query, [*params, limit])
        return await cur.fetchall()


async def get_erasure(pool: AsyncConnectionPool, client: str, request_id: str) -> dict | None:
    """One tenant's erasure_log row by request id, or None."""
    async with scoped_transaction(pool, Scope.tenant(client)) as conn:
        cur = await conn.execute(f"SELECT {_COLUMNS} FROM erasure_log WHERE client_id = %s AND request_id = %s",
                                 (client, request_id))
        return await cur.fetchone()
