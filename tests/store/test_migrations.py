import psycopg

from collector_api.store.migrate import apply_migrations, latest_version


def test_migrations_are_idempotent_and_recorded(db_dsn):
    assert apply_migrations(db_dsn) == []  # template already migrated
    with psycopg.connect(db_dsn) as conn:
        assert conn.execute("SELECT max(version) FROM schema_migrations").fetchone()[0] == latest_version()
        kinds = dict(conn.execute(
            "SELECT relname, relkind FROM pg_class WHERE relname IN ('workflow_logs', 'workflow_node_durations')"))
    assert kinds == {"workflow_logs": "p", "workflow_node_durations": "p"}
