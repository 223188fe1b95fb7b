from datetime import UTC, date, datetime

import psycopg

from collector_api.store.partitions import drop_partitions_before, ensure_partitions, list_partitions, month_start


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
