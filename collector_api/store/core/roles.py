"""Least privilege: the roles the application runs as, created once with a superuser.

- `flusso_owner` (LOGIN, NOSUPERUSER, NOCREATEROLE, NOCREATEDB, NOBYPASSRLS) owns the database,
  its schema and every table; the application connects as it and migrates as it.
- `flusso_app` (NOLOGIN, NOBYPASSRLS) is the row-level-security role: the owner is a member
  and switches to it for every tenant-scoped transaction (store.db.scoped_transaction).
- `flusso_provider` (NOLOGIN, NOBYPASSRLS), a member of `flusso_app` (its grants), is the role of
  provider-scoped transactions: its policies read all tenants where the provider may (0023).

`provision_owner` is idempotent and also upgrades a database laid out by an older version, in
which a superuser owned everything: database, schema, tables, partitions and sequences are
moved to the owner. Only this module needs the superuser's DSN.
"""
from __future__ import annotations

import logging

import psycopg
from psycopg import sql

from collector_api.store.core import locks
from collector_api.store.core.db import APP_ROLE, PROVIDER_ROLE

logger = logging.getLogger(__name__)

OWNER_ROLE = "flusso_owner"
_OWNER_ATTRIBUTES = "LOGIN NOSUPERUSER NOCREATEROLE NOCREATEDB NOBYPASSRLS NOREPLICATION"


def provision_owner(admin_dsn: str, *, owner: str = OWNER_ROLE, password: str | None = None) -> list[str]:
    """Create the roles and give `owner` the database of `admin_dsn` and all in it.

    `admin_dsn` connects as a superuser to the application's database. Returns the objects whose
    ownership moved (empty once done). Safe to run concurrently and at every start.
    """
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (locks.PROVISION,))
        try:
            ensure_roles(conn, owner, password)
            return move_ownership(conn, owner)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (locks.PROVISION,))


def ensure_roles(conn: psycopg.Connection, owner: str, password: str | None) -> None:
    """The two RLS roles and the owner: the provider's role a member of the tenant's (its
    grants), the owner a member of both (for SET ROLE)."""
    app, provider, own = sql.Identifier(APP_ROLE), sql.Identifier(PROVIDER_ROLE), sql.Identifier(owner)
    for name, role in ((APP_ROLE, app), (PROVIDER_ROLE, provider)):
        if not _role_exists(conn, name):
            conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN NOSUPERUSER NOBYPASSRLS").format(role))
    conn.execute(sql.SQL("GRANT {} TO {}").format(app, provider))
    verb = "ALTER" if _role_exists(conn, owner) else "CREATE"
    # ALTER also takes back rights an older setup may have given the role.
    conn.execute(sql.SQL(f"{verb} ROLE {{}} {_OWNER_ATTRIBUTES}").format(own))
    if password is not None:
        conn.execute(sql.SQL("ALTER ROLE {} PASSWORD {}").format(own, sql.Literal(password)))
    conn.execute(sql.SQL("GRANT {}, {} TO {}").format(app, provider, own))


def _role_exists(conn: psycopg.Connection, name: str) -> bool:
    return conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,)).fetchone() is not None


def move_ownership(conn: psycopg.Connection, owner: str) -> list[str]:
    """Database, schema `public`, then every relation in it not owned by `owner` yet."""
    own = sql.Identifier(owner)
    moved = []
    database = conn.execute("SELECT current_database(), pg_get_userbyid(datdba) FROM pg_database"
                            " WHERE datname = current_database()").fetchone()
    if database[1] != owner:
        conn.execute(sql.SQL("ALTER DATABASE {} OWNER TO {}").format(sql.Identifier(database[0]), own))
        moved.append(f"database {database[0]}")
    schema_owner = conn.execute("SELECT pg_get_userbyid(nspowner) FROM pg_namespace WHERE nspname = 'public'")
    if schema_owner.fetchone()[0] != owner:
        conn.execute(sql.SQL("ALTER SCHEMA public OWNER TO {}").format(own))
        moved.append("schema public")
    # Tables first: a table takes the sequences it owns (identity, OWNED BY) along with it.
    for kinds, verb in ((("r", "p", "v", "m", "f"), "TABLE"), (("S",), "SEQUENCE")):
        rows = conn.execute(
            "SELECT c.relname FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace"
            " AND c.relkind = ANY(%s) AND pg_get_userbyid(c.relowner) <> %s ORDER BY c.relname",
            (list(kinds), owner)).fetchall()
        for (name,) in rows:
            conn.execute(sql.SQL(f"ALTER {verb} {{}} OWNER TO {{}}").format(sql.Identifier(name), own))
            moved.append(name)
    if moved:
        logger.info("moved to role %s: %s", owner, ", ".join(moved))
    return moved


def is_superuser(conn: psycopg.Connection) -> bool:
    return bool(conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone()[0])
