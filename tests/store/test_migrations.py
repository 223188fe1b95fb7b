import re
import uuid
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from collector_api.store.core.migrate import apply_migrations, latest_version, list_migrations
from tests.helpers import run_async

MIGRATIONS = Path(__file__).resolve().parents[2] / "collector_api" / "store" / "migrations"


def test_migrations_are_idempotent_and_recorded(db_dsn):
    assert apply_migrations(db_dsn) == []  # template already migrated
    with psycopg.connect(db_dsn) as conn:
        assert conn.execute("SELECT max(version) FROM schema_migrations").fetchone()[0] == latest_version()
        versions = [v for (v,) in conn.execute("SELECT version FROM schema_migrations ORDER BY 1")]
        kinds = dict(conn.execute(
            "SELECT relname, relkind FROM pg_class WHERE relname IN ('workflow_logs', 'workflow_node_durations')"))
    assert versions == [m.version for m in list_migrations()]
    assert kinds == {"workflow_logs": "p"}  # node durations live in the row since 0004


def test_0004_moves_node_durations_into_the_row_as_a_non_superuser_owner(pg_server_dsn, monkeypatch):
    """An installation at version 3, migrated by the database's owner (not a superuser, so FORCE
    ROW LEVEL SECURITY applies to it): 0004 copies every log's node rows into node_durations."""
    from urllib.parse import urlsplit, urlunsplit

    from collector_api.store.core import migrate

    name, owner = f"flusso_up_{uuid.uuid4().hex[:10]}", f"flusso_owner_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_server_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN NOSUPERUSER NOCREATEROLE").format(sql.Identifier(owner)))
        conn.execute(sql.SQL("GRANT flusso_app TO {}").format(sql.Identifier(owner)))
        conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(name), sql.Identifier(owner)))
    parts = urlsplit(pg_server_dsn)
    admin = urlunsplit(parts._replace(path="/" + name))
    as_owner = urlunsplit(parts._replace(path="/" + name, netloc=f"{owner}@" + parts.netloc.rsplit("@", 1)[-1]))
    try:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(sql.SQL("ALTER SCHEMA public OWNER TO {}").format(sql.Identifier(owner)))
        every = migrate.list_migrations()
        monkeypatch.setattr(migrate, "list_migrations", lambda: [m for m in every if m.version <= 3])
        apply_migrations(as_owner)
        with psycopg.connect(admin, autocommit=True) as conn:  # superuser: writes past RLS
            log_id = conn.execute(
                "INSERT INTO workflow_logs (client_id, ticket_id, status, executed_at, trace_id, log_data)"
                " VALUES ('acme', 'T-1', 'SUCCESS', now(), %s, '{}') RETURNING id", ("a" * 32,)).fetchone()[0]
            conn.execute("INSERT INTO workflow_node_durations (log_id, client_id, executed_at, node, duration_ms)"
                         " SELECT %s, 'acme', executed_at, n, ms FROM workflow_logs,"
                         " (VALUES ('planner', 120.5), ('draft_response', 80.0)) v(n, ms)", (log_id,))
        monkeypatch.setattr(migrate, "list_migrations", lambda: every)
        assert apply_migrations(as_owner) == [m.name for m in every if m.version > 3]
        with psycopg.connect(admin, autocommit=True) as conn:
            nodes, forced = conn.execute(
                "SELECT node_durations, (SELECT relforcerowsecurity FROM pg_class WHERE relname = 'workflow_logs')"
                " FROM workflow_logs").fetchone()
            assert nodes == {"planner": 120.5, "draft_response": 80.0}
            assert forced is True
            assert conn.execute("SELECT to_regclass('workflow_node_durations')").fetchone()[0] is None
    finally:
        with psycopg.connect(pg_server_dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(owner)))


def test_migration_numbers_are_unique_and_well_formed():
    """Two migration files may never share a number (docs/architecture.md)."""
    names = sorted(p.name for p in MIGRATIONS.iterdir() if p.suffix == ".sql")
    assert all(re.fullmatch(r"\d{4}_[a-z0-9_]+\.sql", n) for n in names), names
    versions = [int(n[:4]) for n in names]
    assert len(versions) == len(set(versions)), f"a migration number is used twice: {names}"
    assert [m.version for m in list_migrations()] == versions


def test_a_reused_number_is_refused(tmp_path):
    (tmp_path / "0001_a.sql").write_text("SELECT 1;")
    (tmp_path / "0001_b.sql").write_text("SELECT 1;")
    with pytest.raises(ValueError, match="share version 1"):
        list_migrations(tmp_path)


def test_migrations_landing_out_of_order_are_applied(empty_db, tmp_path):
    """0008 merged before 0006 exists: when 0006 lands later it is applied all the same."""
    dsn, _ = empty_db
    (tmp_path / "0005_base.sql").write_text("CREATE TABLE t (a int);")
    (tmp_path / "0008_later.sql").write_text("ALTER TABLE t ADD COLUMN c int;")
    assert apply_migrations(dsn, list_migrations(tmp_path)) == ["0005_base.sql", "0008_later.sql"]
    (tmp_path / "0006_arrives_late.sql").write_text("ALTER TABLE t ADD COLUMN b int;")
    assert apply_migrations(dsn, list_migrations(tmp_path)) == ["0006_arrives_late.sql"]
    assert apply_migrations(dsn, list_migrations(tmp_path)) == []
    with psycopg.connect(dsn) as conn:
        assert [v for (v,) in conn.execute("SELECT version FROM schema_migrations ORDER BY 1")] == [5, 6, 8]
        columns = [c for (c,) in conn.execute(
            "SELECT attname FROM pg_attribute WHERE attrelid = 't'::regclass AND attnum > 0 ORDER BY attnum")]
    assert columns == ["a", "c", "b"]  # 0006 ran after 0008, as it landed


def test_readiness_names_a_missing_migration_below_the_latest(db_dsn):

    from collector_api.store.core.db import create_pool
    from collector_api.store.core.health import check_database

    async def check():
        async with create_pool(db_dsn) as pool:
            return await check_database(pool)

    assert run_async(check()) is None
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        conn.execute("DELETE FROM schema_migrations WHERE version = 2")
    assert run_async(check()) == "schema lacks migration(s) 2: run `flusso-obs migrate`"


def test_a_file_s_statements_are_sent_one_at_a_time(empty_db, tmp_path):
    """Each statement reaches the server as its own query string (Citus forwards a distributed
    table's DDL as the string it was given, and a worker refuses several commands in one), split
    by PostgreSQL's scanner: a semicolon in a string, a comment or a function body splits nothing."""
    dsn, _ = empty_db
    (tmp_path / "0001_split.sql").write_text(
        "CREATE TABLE seen (q text);  -- a comment; with a semicolon\n"
        "INSERT INTO seen SELECT current_query();\n"
        "CREATE FUNCTION two() RETURNS int LANGUAGE plpgsql AS $body$\n"
        "BEGIN PERFORM 1; RETURN 2; END\n$body$;\n"
        "INSERT INTO seen VALUES ('a;b'), (E'c\\';d');\n")
    assert apply_migrations(dsn, list_migrations(tmp_path)) == ["0001_split.sql"]
    with psycopg.connect(dsn) as conn:
        seen = [q for (q,) in conn.execute("SELECT q FROM seen")]
        assert conn.execute("SELECT two()").fetchone()[0] == 2
    assert "CREATE" not in seen[0] and seen[0].endswith("\nINSERT INTO seen SELECT current_query()")
    assert seen[1:] == ["a;b", "c';d"]


def test_a_failing_statement_is_named_and_nothing_of_the_run_stays(empty_db, tmp_path):
    """The error names the file, the statement and PostgreSQL's reason; the run is one transaction,
    so nothing of it stays, and once the file is mended the next run applies both."""
    from collector_api.store.core.migrate import MigrationError

    dsn, _ = empty_db
    (tmp_path / "0001_ok.sql").write_text("CREATE TABLE kept (a int);")
    (tmp_path / "0002_bad.sql").write_text("CREATE TABLE lost (a int);\n-- then\nALTER TABLE missing ADD COLUMN b int;")
    with pytest.raises(MigrationError, match=r"0002_bad\.sql, statement 2 of 2 \(ALTER TABLE missing ADD"
                                             r" COLUMN b int\): .*\"missing\" does not exist"):
        apply_migrations(dsn, list_migrations(tmp_path))
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT count(*) FROM schema_migrations").fetchone()[0] == 0
        assert conn.execute("SELECT to_regclass('lost'), to_regclass('kept')").fetchone() == (None, None)
    (tmp_path / "0002_bad.sql").write_text("CREATE TABLE lost (a int);")
    assert apply_migrations(dsn, list_migrations(tmp_path)) == ["0001_ok.sql", "0002_bad.sql"]
