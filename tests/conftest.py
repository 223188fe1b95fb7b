"""Shared fixtures: a real PostgreSQL for the whole session, a fresh database per test.

TEST_DATABASE_URL points at a server of your own (a superuser's DSN); otherwise an embedded one
is started once per session in a temporary directory. The schema is migrated once into a
template database and cloned per test (CREATE DATABASE ... TEMPLATE), which keeps isolation
cheap. As in production, the superuser only creates the roles and databases: migrations, the
app and the tests' own queries run as the NOSUPERUSER owner role (store.roles).
"""
from __future__ import annotations

import os
import tempfile
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from psycopg import sql

TEMPLATE_DB = f"flusso_template_{os.getpid()}"
# `serve`/`run` subprocesses of the suite serve HTTP only unless a test gives them a gRPC port
# (tests/grpc does, a free one each): the default 4317 would clash between servers run at once.
os.environ.setdefault("FLUSSO_GRPC_PORT", "0")
OWNER_PASSWORD = "flusso-test-owner"  # ignored by the embedded server (trust on its socket)


def _admin_dsn(dsn: str, database: str) -> str:
    """The superuser's DSN for `database` (creating roles and databases, old layouts)."""
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path="/" + database))


def _with_database(dsn: str, database: str) -> str:
    """The owner role's DSN for `database`: what the app and the tests connect with."""
    from collector_api.store.core.roles import OWNER_ROLE
    from flusso_obs.embedded import dsn_as

    return dsn_as(_admin_dsn(dsn, database), OWNER_ROLE, OWNER_PASSWORD)


@pytest.fixture(scope="session")
def pg_server_dsn():
    """DSN of the maintenance database of a real PostgreSQL server."""
    if os.environ.get("TEST_DATABASE_URL"):
        yield os.environ["TEST_DATABASE_URL"]
        return
    from flusso_obs.embedded import start_embedded

    tmp = Path(tempfile.mkdtemp(prefix="flusso-test-pg-"))
    handle = start_embedded(tmp)
    try:
        yield handle.get_uri("postgres")
    finally:
        handle.cleanup()


@pytest.fixture(scope="session")
def template_dsn(pg_server_dsn):
    from collector_api.store.core.migrate import apply_migrations
    from collector_api.store.core.roles import provision_owner

    with psycopg.connect(pg_server_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(TEMPLATE_DB)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(TEMPLATE_DB)))
    provision_owner(_admin_dsn(pg_server_dsn, TEMPLATE_DB), password=OWNER_PASSWORD)
    dsn = _with_database(pg_server_dsn, TEMPLATE_DB)
    apply_migrations(dsn)
    from collector_api.store.logs.partitions import ensure_partitions

    with psycopg.connect(dsn, autocommit=True) as conn:
        ensure_partitions(conn)
    yield dsn
    with psycopg.connect(pg_server_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(TEMPLATE_DB)))


@pytest.fixture()
def db_dsn(pg_server_dsn, template_dsn):
    """A migrated, empty database of its own for one test, as the owner role (not a superuser)."""
    from collector_api.store.core.roles import OWNER_ROLE

    name = f"flusso_t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_server_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {} STRATEGY FILE_COPY OWNER {}").format(
            sql.Identifier(name), sql.Identifier(TEMPLATE_DB), sql.Identifier(OWNER_ROLE)))
    yield _with_database(pg_server_dsn, name)
    with psycopg.connect(pg_server_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


class LiveServer:
    """A real uvicorn server on 127.0.0.1 running the whole app in a background thread."""

    def __init__(self, dsn: str, settings=None, port: int | None = None):
        import socket
        import threading

        import uvicorn

        from config.server import ServerSettings
        from flusso_obs.server import create_app

        self.settings = settings or ServerSettings(_env_file=None, flusso_session_secret="test-secret-" + "x" * 32)
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = port or sock.getsockname()[1]
        self.url, self.dsn = f"http://127.0.0.1:{self.port}", dsn
        config = uvicorn.Config(create_app(self.settings, dsn), host="127.0.0.1", port=self.port,
                                log_level="warning", lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> LiveServer:
        import time

        self.thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("live server did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)


@pytest.fixture()
def live_server(db_dsn):
    server = LiveServer(db_dsn).start()
    yield server
    server.stop()


def pytest_collection_modifyitems(session, config, items):
    """Browser tests run last, in their collected order. Playwright's sync API keeps an event
    loop on the main thread for the rest of the session, after which `asyncio.run()` (used by
    store and CLI tests) refuses to start; running them last keeps any order of paths working."""
    items.sort(key=lambda item: item.get_closest_marker("browser") is not None)
