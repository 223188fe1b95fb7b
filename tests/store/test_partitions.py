from datetime import UTC, date, datetime

import psycopg

from collector_api.store.logs.partitions import (
    drop_partitions_before,
    ensure_partitions,
    list_partitions,
    month_start,
)


def server_has_lz4(conn) -> bool:
    try:
        with conn.transaction():
            conn.execute("SET LOCAL default_toast_compression = lz4")
        return True
    except psycopg.errors.InvalidParameterValue:
        return False


def test_month_start_arithmetic():
    assert month_start(date(2026, 1, 15), -1) == date(2025, 12, 1)
    assert month_start(date(2026, 12, 3), 1) == date(2027, 1, 1)


def test_partitions_cover_the_coming_months_and_are_idempotent(db_dsn):
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        parts = {p.start for p in list_partitions(conn) if p.table == "workflow_logs"}
        today = datetime.now(UTC).date()
        for offset in range(-1, 4):
            assert month_start(today, offset) in parts
        assert ensure_partitions(conn) == []


def test_rows_in_default_move_into_a_new_partition_and_retention_drops_months(db_dsn):
    old = datetime(2024, 3, 10, tzinfo=UTC)
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        conn.execute("INSERT INTO workflow_logs (client_id, ticket_id, status, executed_at, trace_id, log_data)"
                     " VALUES ('acme', 'T', 'SUCCESS', %s, 'a' , '{}')", (old,))
        assert conn.execute("SELECT count(*) FROM workflow_logs_default").fetchone()[0] == 1
        created = ensure_partitions(conn, first=date(2024, 3, 1))
        assert "workflow_logs_2024_03" in created
        assert conn.execute("SELECT count(*) FROM workflow_logs_default").fetchone()[0] == 0
        assert conn.execute("SELECT count(*) FROM workflow_logs_2024_03").fetchone()[0] == 1
        compression = conn.execute(
            "SELECT attcompression FROM pg_attribute WHERE attrelid = 'workflow_logs_2024_03'::regclass"
            " AND attname = 'log_data'").fetchone()[0]
        assert compression == ("l" if server_has_lz4(conn) else "")  # lz4 where the server was built with it
        dropped = drop_partitions_before(conn, date(2024, 5, 1))
        assert "workflow_logs_2024_03" in dropped
        assert conn.execute("SELECT count(*) FROM workflow_logs").fetchone()[0] == 0
        recent = month_start(datetime.now(UTC).date())
        assert all(p.start >= date(2024, 5, 1) for p in list_partitions(conn))
        assert any(p.start == recent for p in list_partitions(conn))


def _insert_as_tenant(conn, tenant: str, ticket: str, executed_at) -> None:
    """A row written the way ingest writes it: as the RLS role with the tenant set."""
    with conn.transaction():
        conn.execute("SELECT set_config('role', 'flusso_app', true), set_config('flusso.tenant', %s, true),"
                     " set_config('flusso.scope', 'client', true)", (tenant,))
        conn.execute("INSERT INTO workflow_logs (client_id, ticket_id, status, executed_at, trace_id, log_data)"
                     " VALUES (%s, %s, 'SUCCESS', %s, %s, '{}')", (tenant, ticket, executed_at, ticket))


def test_upkeep_as_the_nosuperuser_owner_under_force_rls_moves_future_rows_and_retention_works(db_dsn):
    """Rows of several tenants dated months ahead sit in DEFAULT; when their
    month comes into range the hourly upkeep (as the NOSUPERUSER owner, FORCE RLS on the table)
    must create it and move them, not roll back; retention drops old months and DEFAULT's old rows."""
    from collector_api.store.logs.partitions import maintain_partitions

    today = datetime.now(UTC).date()
    far = month_start(today, 3)  # the farthest month upkeep creates
    name = f"workflow_logs_{far:%Y_%m}"
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        assert conn.execute("SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = current_user"
                            ).fetchone() == (False,)
        assert conn.execute("SELECT relforcerowsecurity FROM pg_class WHERE relname = 'workflow_logs'"
                            ).fetchone() == (True,)
        conn.execute(f"DROP TABLE {name}")  # as if the month had not been created yet
        for tenant in ("acme", "globex"):
            _insert_as_tenant(conn, tenant, f"future-{tenant}", datetime(far.year, far.month, 15, tzinfo=UTC))
        _insert_as_tenant(conn, "acme", "ancient", datetime(2001, 2, 3, tzinfo=UTC))
        assert conn.execute("SELECT count(*) FROM workflow_logs_default").fetchone()[0] == 3
    assert maintain_partitions(db_dsn) == [name]  # the job's own entry point, its own connection
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        moved = conn.execute(f"SELECT client_id, ticket_id FROM {name} ORDER BY 1").fetchall()
        assert moved == [("acme", "future-acme"), ("globex", "future-globex")]
        assert conn.execute("SELECT ticket_id FROM workflow_logs_default").fetchall() == [("ancient",)]
        assert ensure_partitions(conn) == []  # the next run has nothing to do and does not fail
        dropped = drop_partitions_before(conn, month_start(today, -1))
        assert dropped == []  # no month that old, but DEFAULT's ancient row goes
        assert conn.execute("SELECT count(*) FROM workflow_logs_default").fetchone()[0] == 0
        assert conn.execute("SELECT count(*) FROM workflow_logs").fetchone()[0] == 2
