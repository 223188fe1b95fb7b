"""Versioned SQL migrations: files `NNNN_name.sql`, each applied once in its own transaction.

A file's statements are sent one at a time (split by PostgreSQL's own scanner, pglast), as
`psql -1 -f` does: Citus forwards a distributed table's DDL to the workers as the query string it
was given, and a worker refuses a string of several commands (docs/scaling.md).

Numbers are handed out per issue (docs/architecture.md, "Migrations"), so they may land in any
order: every file whose version is not recorded in `schema_migrations` is applied, in version
order, whether or not a higher version is already there.
"""
from __future__ import annotations

import logging
from collections.abc import Iterable
from importlib import resources
from importlib.abc import Traversable
from typing import NamedTuple

import pglast
import psycopg

from collector_api.store.core import locks

logger = logging.getLogger(__name__)


class Migration(NamedTuple):
    version: int
    name: str
    sql: str

    def statements(self) -> list[str]:
        """The file's statements, in order, each without its final semicolon."""
        try:
            return [s for s in pglast.split(self.sql, with_parser=False) if s.strip()]
        except pglast.parser.ParseError as exc:
            raise MigrationError(f"migration {self.name} cannot be split into statements: {exc}") from exc


class MigrationError(RuntimeError):
    """A migration that could not be applied: the file, the statement and PostgreSQL's reason."""


def list_migrations(folder: Traversable | None = None) -> list[Migration]:
    """The migrations in `folder` (default: the package's), by version; a reused number is an error."""
    folder = folder or resources.files("collector_api.store") / "migrations"
    found: list[Migration] = []
    for entry in folder.iterdir():
        if entry.name.endswith(".sql"):
            version = int(entry.name.split("_", 1)[0])
            found.append(Migration(version, entry.name, entry.read_text(encoding="utf-8")))
    found.sort()
    for first, second in zip(found, found[1:], strict=False):
        if first.version == second.version:
            raise ValueError(f"migrations {first.name} and {second.name} share version {first.version}")
    return found


def latest_version() -> int:
    return max(m.version for m in list_migrations())


def apply_migrations(dsn: str, migrations: Iterable[Migration] | None = None) -> list[str]:
    """Apply pending migrations (default: the package's); returns the names applied.

    Safe to run concurrently (advisory lock). A version missing from `schema_migrations` is
    applied even when higher versions are recorded: parallel work lands in any order.
    """
    pending = list_migrations() if migrations is None else sorted(migrations)
    applied = []
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (locks.MIGRATIONS,))
            if conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'citus'").fetchone():
                # One connection per worker for every multi-shard command of this transaction: Citus
                # refuses a distributed function's DDL (0029's CREATE OR REPLACE FUNCTION) after a
                # parallel DDL on a distributed table (0028's ALTER TABLE) in the same transaction.
                conn.execute("SET LOCAL citus.multi_shard_modify_mode TO 'sequential'")
            done = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
            for migration in pending:
                if migration.version in done:
                    continue
                with conn.transaction():
                    _apply(conn, migration)
                    conn.execute(
                        "INSERT INTO schema_migrations (version, name) VALUES (%s, %s)",
                        (migration.version, migration.name),
                    )
                applied.append(migration.name)
                logger.info("applied migration %s", migration.name)
    return applied


def _apply(conn: psycopg.Connection, migration: Migration) -> None:
    statements = migration.statements()
    for number, statement in enumerate(statements, 1):
        try:
            conn.execute(statement)
        except psycopg.Error as exc:
            first = next((line.strip() for line in statement.splitlines()
                          if line.strip() and not line.strip().startswith("--")), "")
            raise MigrationError(f"migration {migration.name}, statement {number} of {len(statements)}"
                                 f" ({first[:80]}): {exc}") from exc


def current_version(conn: psycopg.Connection) -> int | None:
    row = conn.execute("SELECT max(version) FROM schema_migrations").fetchone()
    return row[0] if row else None
