"""Versioned SQL migrations: files `NNNN_name.sql`, each applied once in its own transaction."""
from __future__ import annotations

import logging
from importlib import resources
from typing import NamedTuple

import psycopg

logger = logging.getLogger(__name__)

_LOCK_ID = 0x466C7573  # "Flus": one migrator at a time across processes


class Migration(NamedTuple):
    version: int
    name: str
    sql: str


def list_migrations() -> list[Migration]:
    folder = resources.files("collector_api.store") / "migrations"
    found = []
    for entry in folder.iterdir():
        if entry.name.endswith(".sql"):
            version = int(entry.name.split("_", 1)[0])
            found.append(Migration(version, entry.name, entry.read_text(encoding="utf-8")))
    return sorted(found)


def latest_version() -> int:
    return max(m.version for m in list_migrations())


def apply_migrations(dsn: str) -> list[str]:
    """Apply pending migrations; returns the names applied. Safe to run concurrently."""
    applied = []
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_ID,))
            done = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
            for migration in list_migrations():
                if migration.version in done:
                    continue
                with conn.transaction():
                    conn.execute(migration.sql)
                    conn.execute(
                        "INSERT INTO schema_migrations (version, name) VALUES (%s, %s)",
                        (migration.version, migration.name),
                    )
                applied.append(migration.name)
                logger.info("applied migration %s", migration.name)
    return applied


def current_version(conn: psycopg.Connection) -> int | None:
    row = conn.execute("SELECT max(version) FROM schema_migrations").fetchone()
    return row[0] if row else None
