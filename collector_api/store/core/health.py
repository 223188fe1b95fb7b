"""Readiness: can we reach PostgreSQL, and is every migration of the code applied."""
from __future__ import annotations

import psycopg
from psycopg_pool import AsyncConnectionPool

from collector_api.store.core.db import StoreUnavailable, owner_connection
from collector_api.store.core.migrate import list_migrations


async def check_database(pool: AsyncConnectionPool) -> str | None:
    """None when ready, else what is wrong."""
    try:
        async with owner_connection(pool) as conn:
            cur = await conn.execute("SELECT coalesce(array_agg(version), '{}') AS v FROM schema_migrations")
            row = await cur.fetchone()
    except StoreUnavailable as exc:
        return f"database unreachable: {exc}"  # for the log; /readyz shows callers less
    except psycopg.errors.UndefinedTable:
        return "database not migrated: run `flusso-obs migrate`"
    except psycopg.Error as exc:
        return f"database error: {exc.__class__.__name__}"
    # Migrations land in any order (numbers per issue): a gap is as pending as a missing tail.
    missing = sorted({m.version for m in list_migrations()} - set(row["v"]))
    if missing:
        return f"schema lacks migration(s) {', '.join(map(str, missing))}: run `flusso-obs migrate`"
    return None
