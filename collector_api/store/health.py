"""Readiness: can we reach PostgreSQL, and is the schema current."""
from __future__ import annotations

import psycopg
from psycopg_pool import AsyncConnectionPool

from .db import StoreUnavailable, owner_connection
from .migrate import latest_version


async def check_database(pool: AsyncConnectionPool) -> str | None:
    """None when ready, else what is wrong."""
    try:
        async with owner_connection(pool) as conn:
            cur = await conn.execute("SELECT max(version) AS v FROM schema_migrations")
            row = await cur.fetchone()
    except StoreUnavailable as exc:
        return f"database unreachable: {exc}"
    except psycopg.errors.UndefinedTable:
        return "database not migrated: run `flusso-obs migrate`"
    except psycopg.Error as exc:
        return f"database error: {exc.__class__.__name__}"
    if row["v"] != latest_version():
        return f"schema at version {row['v']}, code expects {latest_version()}: run `flusso-obs migrate`"
    return None
