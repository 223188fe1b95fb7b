"""Connection pool and tenant-scoped transactions. No FastAPI here: SQL + psycopg only."""
from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

import psycopg
from psycopg import sql
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

logger = logging.getLogger(__name__)

APP_ROLE = "flusso_app"  # tenant-scoped transactions: policies `tenant_rows` (client_id = the tenant)
# Provider-scoped transactions (all tenants): a member of APP_ROLE whose own policies say USING (true)
# where the provider may read (migration 0023). The same rows as a `flusso.scope` test would give, but
# the planner sees them: a per-row setting test is estimated at 0.5 % of a table, and a provider's
# plans were chosen for a few rows when they read millions (a 3 s review queue at 22,000 logs).
PROVIDER_ROLE = "flusso_provider"


class StoreError(Exception):
    """Base of the store's errors."""


class StoreUnavailable(StoreError):
    """PostgreSQL cannot be reached or refused the work; the caller should retry later."""


@dataclass(frozen=True)
class Scope:
    """Whose rows a statement may see. `client_id=None` with `all_tenants=True` is the provider."""

    client_id: str | None
    all_tenants: bool = False

    @classmethod
    def tenant(cls, client_id: str) -> Scope:
        return cls(client_id=client_id, all_tenants=False)

    @classmethod
    def provider(cls, client_id: str | None = None) -> Scope:
        """All tenants, or one tenant chosen by a provider (still readable through the provider policy)."""
        return cls(client_id=client_id, all_tenants=True)


def create_pool(dsn: str, *, max_size: int = 10, min_size: int = 1, timeout: float = 5.0,
                configure: Callable[[psycopg.AsyncConnection], Awaitable[None]] | None = None) -> AsyncConnectionPool:
    """A pool that is not opened yet: `await pool.open()` (or use it as an async context manager).
    `configure` runs on each new connection (psycopg_pool's hook)."""
    return AsyncConnectionPool(
        dsn,
        min_size=min(min_size, max_size),
        max_size=max_size,
        timeout=timeout,
        open=False,
        kwargs={"autocommit": True, "row_factory": dict_row},
        reconnect_timeout=0,
        name="flusso",
        configure=configure,
    )


async def set_local(conn: psycopg.AsyncConnection, settings: dict[str, str]) -> None:
    """Set `settings` for the rest of the open transaction, in one round trip: `SET LOCAL name =
    'value'`, each value a quoted literal (psycopg.sql.Literal: any text, quotes and backslashes
    included, stays one value).

    SET LOCAL statements, not set_config(..., true): on Citus (docs/scaling.md) they are sent on to
    the workers the transaction uses (`citus.propagate_set_commands = 'local'`), so row-level
    security on the shards sees the same role, tenant and scope; set_config calls are not."""
    await conn.execute(sql.SQL("; ").join(
        sql.SQL("SET LOCAL {} = {}").format(sql.Identifier(*name.split(".")), sql.Literal(value))
        for name, value in settings.items()))


async def _enter_scope(conn: psycopg.AsyncConnection, scope: Scope) -> None:
    """Switch the open transaction to `scope`'s RLS-bound role and tenant (until it ends)."""
    await set_local(conn, {"role": PROVIDER_ROLE if scope.all_tenants else APP_ROLE,
                           "flusso.tenant": scope.client_id or "",
                           "flusso.scope": "provider" if scope.all_tenants else "client"})


@asynccontextmanager
async def scoped_transaction(pool: AsyncConnectionPool, scope: Scope) -> AsyncIterator[psycopg.AsyncConnection]:
    """One transaction running as an RLS-bound role (the tenant's or the provider's) with the
    tenant set for its duration.

    Even a statement that forgot its tenant filter sees only `scope`'s rows: PostgreSQL's
    row-level security enforces it (the connecting superuser would bypass RLS, the role does not).
    """
    try:
        async with pool.connection() as conn:
            async with conn.transaction():
                await _enter_scope(conn, scope)
                yield conn
    except (psycopg.OperationalError, psycopg.errors.AdminShutdown) as exc:
        raise StoreUnavailable(str(exc)) from exc
    except TimeoutError as exc:  # psycopg_pool.PoolTimeout subclasses it
        raise StoreUnavailable(f"no database connection available: {exc}") from exc


@asynccontextmanager
async def locked_snapshot(pool: AsyncConnectionPool, scope: Scope | None, lock: int, *,
                          wait: bool) -> AsyncIterator[psycopg.AsyncConnection | None]:
    """A scoped transaction in REPEATABLE READ (one snapshot for all its statements) whose snapshot
    is taken after the advisory lock `lock` was granted; yields None at once when `wait` is false
    and another session holds the lock. `scope` None: as the owning role (no RLS role, no tenant),
    for a job writing tables only the owner writes (the alert rollups).

    The lock is a session-level lock taken on the connection before BEGIN: in REPEATABLE READ the
    snapshot is taken by the first statement, so a transaction-level lock taken in it would wait
    with a snapshot from before the previous holder committed. It is released after the
    transaction ends; a connection that cannot release it is closed (which releases it)."""
    try:
        async with pool.connection() as conn:
            if not await _lock(conn, lock, wait):
                yield None
                return
            try:
                async with conn.transaction():
                    await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                    if scope is not None:
                        await _enter_scope(conn, scope)
                    yield conn
            finally:
                await _unlock(conn, lock)
    except (psycopg.OperationalError, psycopg.errors.AdminShutdown) as exc:
        raise StoreUnavailable(str(exc)) from exc
    except TimeoutError as exc:
        raise StoreUnavailable(f"no database connection available: {exc}") from exc


async def _lock(conn: psycopg.AsyncConnection, lock: int, wait: bool) -> bool:
    try:
        if wait:
            await conn.execute("SELECT pg_advisory_lock(%s)", (lock,))
            return True
        return (await (await conn.execute("SELECT pg_try_advisory_lock(%s) AS ok", (lock,))).fetchone())["ok"]
    except BaseException:
        await conn.close()  # cancelled or failed, maybe granted meanwhile: never back to the pool holding it
        raise


async def _unlock(conn: psycopg.AsyncConnection, lock: int) -> None:
    try:
        await conn.execute("SELECT pg_advisory_unlock(%s)", (lock,))
    except BaseException:
        await conn.close()  # the server releases a session's locks when it ends
        raise


@asynccontextmanager
async def owner_connection(pool: AsyncConnectionPool) -> AsyncIterator[psycopg.AsyncConnection]:
    """A connection as the owning role, for tables outside RLS (keys, users, tenants)."""
    try:
        async with pool.connection() as conn:
            yield conn
    except (psycopg.OperationalError, psycopg.errors.AdminShutdown) as exc:
        raise StoreUnavailable(str(exc)) from exc
    except TimeoutError as exc:
        raise StoreUnavailable(f"no database connection available: {exc}") from exc
