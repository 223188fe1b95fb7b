"""Least privilege: the app runs as a NOSUPERUSER owner; an old superuser-owned layout is upgraded."""
from datetime import UTC, date, datetime

import psycopg
import pytest
from psycopg import sql

from collector_api.store.core.migrate import apply_migrations, list_migrations
from collector_api.store.core.roles import OWNER_ROLE, is_superuser, provision_owner
from collector_api.store.logs.partitions import ensure_partitions
from tests.helpers import run_async


def test_the_apps_connection_is_not_a_superuser(db_dsn):
    from fastapi.testclient import TestClient

    from config.server import ServerSettings
    from flusso_obs.server import create_app

    async def who(pool):
        async with pool.connection() as conn:
            cur = await conn.execute("SELECT current_user AS u, rolsuper, rolcreaterole, rolbypassrls"
                                     " FROM pg_roles WHERE rolname = current_user")
            return await cur.fetchone()

    app = create_app(ServerSettings(_env_file=None, flusso_session_secret="s" * 40), db_dsn)
    with TestClient(app) as client:
        row = client.portal.call(who, app.state.viewer.pool)
    assert row == {"u": OWNER_ROLE, "rolsuper": False, "rolcreaterole": False, "rolbypassrls": False}


@pytest.fixture()
def old_layout(superuser_db):
    """A database as an older version left it: schema v4 and a partition, all owned by the superuser."""
    admin, owner_dsn = superuser_db
    apply_migrations(admin, [m for m in list_migrations() if m.version <= 4])
    with psycopg.connect(admin, autocommit=True) as conn:
        ensure_partitions(conn)
        conn.execute("INSERT INTO workflow_logs (client_id, ticket_id, status, executed_at, trace_id, log_data)"
                     " VALUES ('acme', 'OLD', 'SUCCESS', '2031-06-15', 'a', '{}')")  # far future: DEFAULT
    return admin, owner_dsn


def _not_owned(admin: str) -> list[str]:
    with psycopg.connect(admin) as conn:
        rows = conn.execute(
            "SELECT c.relname FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace"
            " AND c.relkind IN ('r', 'p', 'S', 'v', 'm', 'i', 'I') AND pg_get_userbyid(c.relowner) <> %s",
            (OWNER_ROLE,)).fetchall()
        db = conn.execute("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = current_database()")
        return [r[0] for r in rows] + ([] if db.fetchone()[0] == OWNER_ROLE else ["database"])


def test_an_old_superuser_owned_database_is_upgraded_in_place(old_layout):
    admin, owner_dsn = old_layout
    assert "workflow_logs" in _not_owned(admin)
    moved = provision_owner(admin)
    assert {"workflow_logs", "workflow_logs_default", "schema_migrations", "api_keys"} <= set(moved)
    assert _not_owned(admin) == []
    assert provision_owner(admin) == []  # idempotent: nothing left to move
    assert apply_migrations(owner_dsn) == [m.name for m in list_migrations() if m.version > 4]
    with psycopg.connect(owner_dsn, autocommit=True) as conn:
        assert not is_superuser(conn)
        created = ensure_partitions(conn, first=date(2031, 6, 1), months_ahead=12 * 7)
        assert "workflow_logs_2031_06" in created
        assert conn.execute("SELECT count(*) FROM workflow_logs_2031_06").fetchone()[0] == 1
        assert conn.execute("SELECT count(*) FROM workflow_logs_default").fetchone()[0] == 0
    assert _not_owned(admin) == []  # partitions created by the owner are the owner's


def test_provisioning_takes_back_rights_an_older_setup_gave_the_owner(pg_server_dsn, template_admin_dsn):
    with psycopg.connect(pg_server_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("ALTER ROLE {} CREATEROLE CREATEDB").format(sql.Identifier(OWNER_ROLE)))
    provision_owner(template_admin_dsn)
    with psycopg.connect(pg_server_dsn) as conn:
        row = conn.execute("SELECT rolsuper, rolcreaterole, rolcreatedb, rolbypassrls, rolcanlogin FROM pg_roles"
                           " WHERE rolname = %s", (OWNER_ROLE,)).fetchone()
        member = conn.execute("SELECT pg_has_role(%s, 'flusso_app', 'SET')", (OWNER_ROLE,)).fetchone()[0]
    assert row == (False, False, False, False, True)
    assert member is True


def test_partition_upkeep_moves_a_far_future_row_out_of_default_as_the_owner(db_dsn):
    far = datetime(datetime.now(UTC).year + 3, 2, 10, tzinfo=UTC)
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        assert not is_superuser(conn)
        conn.execute("INSERT INTO workflow_logs (client_id, ticket_id, status, executed_at, trace_id, log_data)"
                     " VALUES ('acme', 'FAR', 'SUCCESS', %s, 'f', '{}')", (far,))
        assert conn.execute("SELECT count(*) FROM workflow_logs_default").fetchone()[0] == 1
        created = ensure_partitions(conn, first=far.date().replace(day=1), months_ahead=12 * 4)
        part = f"workflow_logs_{far:%Y_%m}"
        assert part in created
        assert conn.execute("SELECT count(*) FROM workflow_logs_default").fetchone()[0] == 0
        assert conn.execute(sql.SQL("SELECT ticket_id FROM {}").format(sql.Identifier(part))).fetchall() == [("FAR",)]


def test_a_tenant_scope_still_sees_only_its_rows_when_connected_as_the_owner(db_dsn):
    from collector_api.store.core.db import Scope, create_pool, scoped_transaction

    with psycopg.connect(db_dsn, autocommit=True) as conn:
        for tenant in ("acme", "globex"):
            conn.execute("INSERT INTO workflow_logs (client_id, ticket_id, status, executed_at, trace_id, log_data)"
                         " VALUES (%s, 'T', 'SUCCESS', now(), %s, '{}')", (tenant, tenant))

    async def seen():
        async with create_pool(db_dsn) as pool, scoped_transaction(pool, Scope.tenant("acme")) as conn:
            return await (await conn.execute("SELECT client_id FROM workflow_logs")).fetchall()

    assert run_async(seen()) == [{"client_id": "acme"}]  # the owner's policy does not reach flusso_app


@pytest.mark.skipif(bool(__import__("os").environ.get("TEST_DATABASE_URL")), reason="needs trust auth (embedded)")
def test_the_embedded_server_upgrades_an_old_data_dir_and_gives_the_app_the_owner(old_layout):
    """What `make run` does with a `.flusso` of an older version (the handle stands for pgserver's)."""
    from flusso_obs.embedded import embedded_dsn

    admin, _ = old_layout

    class Handle:
        def get_uri(self, database):
            return admin

    dsn = embedded_dsn(Handle())
    assert _not_owned(admin) == []
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT current_user").fetchone()[0] == OWNER_ROLE
        assert not is_superuser(conn)


def _policies(conn) -> tuple[set, set]:
    """(table, command) of the provider-scope setting policies, and of the provider role's USING (true)."""
    rows = conn.execute("SELECT tablename, cmd, roles::text[], qual, with_check FROM pg_policies"
                        " WHERE schemaname = 'public'").fetchall()
    by_setting = {(t, c) for t, c, _, q, _ in rows
                  if q == "(current_setting('flusso.scope'::text, true) = 'provider'::text)"}
    by_role = {(t, c) for t, c, roles, q, _ in rows if roles == ["flusso_provider"] and q == "true"}
    return by_setting, by_role


def test_every_provider_policy_has_the_provider_roles_twin(db_dsn):
    """A table the provider scope reads by a setting test is also readable by the provider's role
    for the same commands (migration 0023); a new table's policy without its twin would leave
    the provider's plans sized for 0.5 % of that table."""
    with psycopg.connect(db_dsn) as conn:
        by_setting, by_role = _policies(conn)
    assert len(by_setting) > 20
    assert by_role == by_setting


def _estimate(conn, scope_sql: tuple) -> float:
    with conn.transaction():
        conn.execute("SELECT set_config('role', %s, true), set_config('flusso.tenant', %s, true),"
                     " set_config('flusso.scope', %s, true)", scope_sql)
        plan = conn.execute("EXPLAIN (FORMAT JSON) SELECT * FROM ticket_reviews").fetchone()[0]
    return plan[0]["Plan"]["Plan Rows"]


def test_a_providers_plan_sees_every_row_and_a_tenants_its_own(db_dsn):
    from collector_api.store.core.db import APP_ROLE, PROVIDER_ROLE

    with psycopg.connect(db_dsn, autocommit=True) as conn:
        conn.execute("INSERT INTO ticket_reviews (client_id, log_id, executed_at, verdict, author, author_kind,"
                     " author_role) SELECT CASE WHEN i % 4 = 0 THEN 'acme' ELSE 'globex' END, i, now(), 'correct',"
                     " 'a@b', 'user', 'provider' FROM generate_series(1, 2000) i")
        conn.execute("ANALYZE ticket_reviews")
        provider = _estimate(conn, (PROVIDER_ROLE, "", "provider"))
        acme = _estimate(conn, (APP_ROLE, "acme", "client"))
    assert provider == 2000  # was 10: the setting test sized at 0.5 %
    assert 400 <= acme <= 600


def test_the_provider_scope_deletes_no_log_outside_an_erasure(db_dsn):
    """Deleting stays an erasure's (a tenant-scoped transaction declaring itself one): the
    provider's role, which reads every tenant, deletes nothing."""
    from collector_api.store.core.db import Scope, create_pool, scoped_transaction

    with psycopg.connect(db_dsn, autocommit=True) as conn:
        conn.execute("INSERT INTO ticket_reviews (client_id, log_id, executed_at, verdict, author, author_kind,"
                     " author_role) VALUES ('acme', 1, now(), 'correct', 'a@b', 'user', 'provider')")

    async def attempt():
        async with create_pool(db_dsn, max_size=1) as pool:
            async with scoped_transaction(pool, Scope.provider()) as conn:
                seen = (await (await conn.execute("SELECT count(*) AS n FROM ticket_reviews")).fetchone())["n"]
                try:
                    gone = (await conn.execute("DELETE FROM ticket_reviews")).rowcount
                except psycopg.errors.InsufficientPrivilege:
                    gone = 0
            return seen, gone

    assert run_async(attempt()) == (1, 0)
    with psycopg.connect(db_dsn) as conn:
        assert conn.execute("SELECT count(*) FROM ticket_reviews").fetchone()[0] == 1
