"""Shared fixtures: a real PostgreSQL for the whole session, a fresh database per test. This is
the one place that creates databases (db_dsn, module_db_dsn, empty_db, superuser_db).

TEST_DATABASE_URL points at a server of your own (a superuser's DSN); otherwise an embedded one
is started once per session in a temporary directory. The schema is migrated once into a
template database and cloned per test (CREATE DATABASE ... TEMPLATE), which keeps isolation
cheap. As in production, the superuser only creates the roles and databases: migrations, the
app and the tests' own queries run as the NOSUPERUSER owner role (store.roles).

`make test` runs the suite with pytest-xdist (`-n auto --dist load`). Each worker is a session
of its own: its own embedded PostgreSQL (a temporary directory per worker, so nothing is shared:
not even the cluster-wide roles some tests alter) and its own template, named by its pid. With
TEST_DATABASE_URL the workers share your server, each with its own template. `--dist load`
hands tests out in the collected order, which pytest_collection_modifyitems below ends with the
browser tests: each worker runs its browser tests after all its other tests.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import threading
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from psycopg import sql

from tests.helpers import OWNER_PASSWORD, LiveServer

TEMPLATE_DB = f"flusso_template_{os.getpid()}"  # one per process: each xdist worker migrates its own
# `serve`/`run` subprocesses of the suite serve HTTP only unless a test gives them a gRPC port
# (tests/grpc does, a free one each): the default 4317 would clash between servers run at once.
os.environ.setdefault("FLUSSO_GRPC_PORT", "0")


def _admin_dsn(dsn: str, database: str) -> str:
    """The superuser's DSN for `database` (creating roles and databases, old layouts)."""
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path="/" + database))


def _with_database(dsn: str, database: str) -> str:
    """The owner role's DSN for `database`: what the app and the tests connect with."""
    from collector_api.store.core.roles import OWNER_ROLE
    from flusso_obs.embedded import dsn_as

    return dsn_as(_admin_dsn(dsn, database), OWNER_ROLE, OWNER_PASSWORD)


def _create_database(server_dsn: str, prefix: str, *, template: str | None = None, owned: bool = True) -> str:
    """A new database (a clone of `template`, or empty), owned by the owner role unless not `owned`.

    STRATEGY WAL_LOG copies the template through the WAL: no checkpoint. FILE_COPY checkpoints
    twice, flushing whatever every other test left dirty: ~0.07 s against ~0.04 s on a quiet
    machine, but 2.2 s against 0.36 s while other processes write (measured here, PostgreSQL 18)."""
    from collector_api.store.core.roles import OWNER_ROLE

    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
    if template:
        statement += sql.SQL(" TEMPLATE {} STRATEGY WAL_LOG").format(sql.Identifier(template))
    if owned:
        statement += sql.SQL(" OWNER {}").format(sql.Identifier(OWNER_ROLE))
    with psycopg.connect(server_dsn, autocommit=True) as conn:
        conn.execute(statement)
    return name


def _drop_database(server_dsn: str, name: str) -> None:
    with psycopg.connect(server_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture(scope="session")
def pg_server_dsn():
    """DSN of the maintenance database of a real PostgreSQL server (one per xdist worker when embedded)."""
    if os.environ.get("TEST_DATABASE_URL"):
        yield os.environ["TEST_DATABASE_URL"]
        return
    from flusso_obs.embedded import start_embedded

    tmp = Path(tempfile.mkdtemp(prefix="flusso-test-pg-"))
    handle = start_embedded(tmp)
    try:
        yield handle.get_uri("postgres")
    finally:
        handle.cleanup()  # the server stops: this session was its only user
        shutil.rmtree(tmp, ignore_errors=True)  # its databases with it (~70 MB a session)


@pytest.fixture(scope="session")
def template_dsn(pg_server_dsn):
    from collector_api.store.core.migrate import apply_migrations
    from collector_api.store.core.roles import provision_owner

    _drop_database(pg_server_dsn, TEMPLATE_DB)
    with psycopg.connect(pg_server_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(TEMPLATE_DB)))
    provision_owner(_admin_dsn(pg_server_dsn, TEMPLATE_DB), password=OWNER_PASSWORD)
    dsn = _with_database(pg_server_dsn, TEMPLATE_DB)
    apply_migrations(dsn)
    from collector_api.store.logs.partitions import ensure_partitions

    with psycopg.connect(dsn, autocommit=True) as conn:
        ensure_partitions(conn)
    yield dsn
    _drop_database(pg_server_dsn, TEMPLATE_DB)


class _Clones:
    """The databases of db_dsn, clones of the template: the next one is made in a background
    thread while the current test runs, and each is dropped in another after its test (a drop
    takes up to ~1 s on a busy disk; it must not hold up the next clone), ~250 times a run."""

    def __init__(self, server_dsn: str):
        self.server_dsn = server_dsn
        # CREATE DATABASE ... TEMPLATE fails while anyone is connected to the template: clones
        # and the tests that use the template itself take turns.
        self.template_lock = threading.RLock()
        self.cloner = ThreadPoolExecutor(1, thread_name_prefix="test-database-clones")
        self.dropper = ThreadPoolExecutor(1, thread_name_prefix="test-database-drops")
        self.ahead: Future | None = None
        self.drops: list[Future] = []

    def clone(self, prefix: str = "flusso_t") -> str:
        with self.template_lock:
            return _create_database(self.server_dsn, prefix, template=TEMPLATE_DB)

    def take(self) -> str:
        ahead, self.ahead = self.ahead, None
        name = ahead.result() if ahead is not None else self.clone()
        self.ahead = self.cloner.submit(self.clone)
        return name

    def give_back(self, name: str) -> None:
        self.drops.append(self.dropper.submit(_drop_database, self.server_dsn, name))

    @contextmanager
    def template_in_use(self):
        if self.ahead is not None:
            self.ahead.result()  # done before the lock is taken: take() never waits on a blocked clone
        with self.template_lock:
            yield

    def close(self, *, drop_all: bool) -> None:
        """Without `drop_all` (the embedded server, deleted with its directory right after),
        drops still queued are skipped: on a busy disk each can take a second or more."""
        if self.ahead is not None:
            self.give_back(self.ahead.result())
        self.cloner.shutdown(wait=True)
        self.dropper.shutdown(wait=True, cancel_futures=not drop_all)
        for drop in self.drops:
            if not drop.cancelled():
                drop.result()  # a failed drop is reported, not lost in the thread


@pytest.fixture(scope="session")
def _clones(pg_server_dsn, template_dsn):
    clones = _Clones(pg_server_dsn)
    yield clones
    clones.close(drop_all=bool(os.environ.get("TEST_DATABASE_URL")))  # a server of your own keeps nothing of ours


@pytest.fixture()
def template_admin_dsn(pg_server_dsn, _clones):
    """The superuser's DSN of the migrated template database (provisioning a database that exists);
    no clone is made while the test holds it."""
    with _clones.template_in_use():
        yield _admin_dsn(pg_server_dsn, TEMPLATE_DB)


@pytest.fixture()
def db_dsn(pg_server_dsn, _clones):
    """A migrated, empty database of its own for one test, as the owner role (not a superuser)."""
    name = _clones.take()
    yield _with_database(pg_server_dsn, name)
    _clones.give_back(name)


@pytest.fixture(scope="module")
def module_db_dsn(pg_server_dsn, _clones):
    """A migrated, empty database shared by one module's tests (each loads what it needs once)."""
    name = _clones.clone("flusso_m")
    yield _with_database(pg_server_dsn, name)
    _drop_database(pg_server_dsn, name)


@pytest.fixture()
def empty_db(pg_server_dsn, template_dsn):
    """An empty database owned by the owner role (no schema yet): (owner DSN, superuser DSN)."""
    from collector_api.store.core.roles import provision_owner

    name = _create_database(pg_server_dsn, "flusso_e")
    provision_owner(_admin_dsn(pg_server_dsn, name), password=OWNER_PASSWORD)
    yield _with_database(pg_server_dsn, name), _admin_dsn(pg_server_dsn, name)
    _drop_database(pg_server_dsn, name)


@pytest.fixture()
def superuser_db(pg_server_dsn, template_dsn):
    """An empty database owned by the superuser, as older versions left theirs: (superuser DSN, owner DSN)."""
    name = _create_database(pg_server_dsn, "flusso_s", owned=False)
    yield _admin_dsn(pg_server_dsn, name), _with_database(pg_server_dsn, name)
    _drop_database(pg_server_dsn, name)


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


_browser_ran: list[str] = []  # in this process (this xdist worker)


def pytest_runtest_setup(item):
    """Say so plainly if xdist's scheduler (a --dist mode other than load) ever hands this
    worker another test after a browser test."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return
    if item.get_closest_marker("browser") is not None:
        _browser_ran.append(item.nodeid)
    elif _browser_ran:
        pytest.fail(f"{item.nodeid} runs after the browser test {_browser_ran[-1]} in the same process: "
                    "browser tests must come last (use --dist load with xdist)", pytrace=False)
