import psycopg

from collector_api.store.migrate import apply_migrations, latest_version


def test_migrations_are_idempotent_and_recorded(db_dsn):
    assert apply_migrations(db_dsn) == []  # template already migrated
    with psycopg.connect(db_dsn) as conn:
        assert conn.execute("SELECT max(version) FROM schema_migrations").fetchone()[0] == latest_version()
        kinds = dict(conn.execute(
            "SELECT relname, relkind FROM pg_class WHERE relname IN ('workflow_logs', 'workflow_node_durations')"))
    assert kinds == {"workflow_logs": "p"}  # node durations live in the row since 0004


def test_0004_moves_node_durations_into_the_row_as_a_non_superuser_owner(pg_server_dsn, monkeypatch):
    """An installation at version 3, migrated by the database's owner (not a superuser, so FORCE
    ROW LEVEL SECURITY applies to it): 0004 copies every log's node rows into node_durations."""
    import uuid
    from urllib.parse import urlsplit, urlunsplit

    from psycopg import sql

    from collector_api.store import migrate

    name, owner = f"flusso_up_{uuid.uuid4().hex[:10]}", f"flusso_owner_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_server_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN CREATEROLE").format(sql.Identifier(owner)))
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
