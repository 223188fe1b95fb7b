"""`flusso-obs` as a user runs it: a real subprocess against a real PostgreSQL."""
import os
import subprocess
import sys

import psycopg
import pytest

from collector_api.store.accounts.principals import hash_api_key

from .helpers import cli

COMMANDS = [[], ["serve"], ["run"], ["migrate"], ["keys"], ["keys", "create"], ["keys", "list"], ["keys", "revoke"],
            ["users"], ["users", "create"], ["demo"], ["db"], ["db", "url"], ["retention"], ["usage"]]


def test_every_command_has_help():
    from flusso_obs.cli import build_parser

    parser = build_parser()
    for command in COMMANDS:
        with pytest.raises(SystemExit) as exit_:
            parser.parse_args([*command, "--help"])
        assert exit_.value.code == 0, command


def test_keys_lifecycle(db_dsn):
    created = cli("keys", "create", "--client", "acme", dsn=db_dsn)
    assert created.returncode == 0, created.stderr
    secret = created.stdout.strip().splitlines()[-1]
    assert secret.startswith("fo_") and len(secret) >= 43  # 256 random bits, url-safe
    with psycopg.connect(db_dsn) as conn:
        key_id, stored = conn.execute("SELECT key_id, key_hash FROM api_keys").fetchone()
    assert bytes(stored) == hash_api_key(secret)  # only the hash is at rest
    listed = cli("keys", "list", dsn=db_dsn)
    assert key_id in listed.stdout and "active" in listed.stdout and secret not in listed.stdout
    assert cli("keys", "revoke", key_id, dsn=db_dsn).returncode == 0
    assert "revoked" in cli("keys", "list", "--client", "acme", dsn=db_dsn).stdout
    again = cli("keys", "revoke", key_id, dsn=db_dsn)
    assert again.returncode == 2 and "no active key" in again.stderr


def test_read_scope_and_bad_client_id(db_dsn):
    assert cli("keys", "create", "--client", "acme", "--scope", "read", dsn=db_dsn).returncode == 0
    bad = cli("keys", "create", "--client", "no spaces!", dsn=db_dsn)
    assert bad.returncode == 2 and "invalid client id" in bad.stderr


def test_users_create_from_stdin(db_dsn):
    ok = cli("users", "create", "--email", "Ops@Example.com", "--role", "client", "--client", "acme",
             "--password-stdin", dsn=db_dsn, stdin="correct horse battery\n")
    assert ok.returncode == 0, ok.stderr
    with psycopg.connect(db_dsn) as conn:
        email, digest, role, client = conn.execute("SELECT email, password_hash, role, client_id FROM users").fetchone()
    assert (email, role, client) == ("ops@example.com", "client", "acme")
    assert digest.startswith("$argon2id$")
    dup = cli("users", "create", "--email", "ops@example.com", "--role", "provider", "--password-stdin",
              dsn=db_dsn, stdin="another password\n")
    assert dup.returncode == 2 and "already exists" in dup.stderr
    short = cli("users", "create", "--email", "x@example.com", "--role", "provider", "--password-stdin",
                dsn=db_dsn, stdin="short\n")
    assert short.returncode == 2 and "at least 8" in short.stderr


def test_db_url_and_migrate(db_dsn):
    assert cli("db", "url", dsn=db_dsn).stdout.strip() == db_dsn
    assert cli("migrate", dsn=db_dsn).stdout.strip() == "schema is up to date"


def test_embedded_database_when_no_database_url(tmp_path):
    env = {"FLUSSO_DATA_DIR": str(tmp_path), "DATABASE_URL": ""}
    url = cli("db", "url", env=env)
    assert url.returncode == 0, url.stderr
    assert str(tmp_path) in url.stdout
    created = cli("keys", "create", "--client", "acme", env=env)
    assert created.returncode == 0, created.stderr
    assert "acme" in cli("keys", "list", env=env).stdout
    # The last CLI process using the embedded server stopped it on exit.
    pidfile = tmp_path / "pg" / "postmaster.pid"
    if pidfile.exists():
        os.kill(int(pidfile.read_text().splitlines()[0]), 2)


def test_migrate_imports_neither_fastapi_nor_the_viewer(db_dsn):
    """`flusso-obs migrate` runs where only the database matters (an init container, a deploy step)."""
    probe = ("import sys\n"
             "from flusso_obs.cli import main\n"
             "code = main(['migrate'])\n"
             "web = sorted(m for m in sys.modules\n"
             "             if m.split('.')[0] in ('fastapi', 'starlette', 'viewer', 'uvicorn'))\n"
             "print('WEB', web)\n"
             "sys.exit(code)\n")
    env = {**os.environ, "DATABASE_URL": db_dsn}
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 0, done.stderr
    assert "WEB []" in done.stdout, done.stdout


def test_runner_does_not_import_the_cli():
    """The CLI starts the serving commands (runner); what both need lives in flusso_obs.database."""
    import ast
    import pathlib

    import flusso_obs.runner

    tree = ast.parse(pathlib.Path(flusso_obs.runner.__file__).read_text())
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    assert not imported & {"cli", "flusso_obs.cli"}, imported


def test_usage_command_table_csv_and_bad_month(db_dsn):
    """`flusso-obs usage` prints the same figures as the API's CSV; a bad month names it."""
    from datetime import UTC, datetime, timedelta

    from tests.viewer.helpers import make_log, store_logs

    store_logs(db_dsn, [make_log("acme", "U-1", days_ago=0.01, cost=0.25), make_log("acme", "U-2", days_ago=0.01),
                        make_log("globex", "U-3", days_ago=0.01)])
    month = (datetime.now(UTC) - timedelta(days=0.01)).strftime("%Y-%m")
    done = cli("usage", "--month", month, "--client", "acme", "--csv", dsn=db_dsn)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("client_id,period_start,period_end,model,tickets")
    assert lines[0].endswith(",cost_usd,resolved_in_sessions,recontacted,recontact_rate,recontact_days")
    totals = [line.split(",") for line in lines[1:] if line.split(",")[3] == "*"]
    assert [(t[0], t[4]) for t in totals] == [("acme", "2")]
    assert totals[0][-1] == "7"  # FLUSSO_RECONTACT_DAYS, the window the figures were counted with
    table = cli("usage", "--month", month, dsn=db_dsn)
    assert table.returncode == 0 and "acme" in table.stdout and "globex" in table.stdout
    bad = cli("usage", "--month", "2026-13", dsn=db_dsn)
    assert bad.returncode == 2 and "2026-13" in bad.stderr
def test_settings_hide_secrets_and_the_demo_key_stays_off_the_command_line():
    """Secrets are SecretStr (never in a repr or a log of the settings), and
    `run` hands the demo sender its key in the environment, not in argv (visible in `ps`)."""
    from config.server import ServerSettings
    from flusso_obs.runner import demo_command

    secrets = {"flusso_session_secret": "S" * 40, "flusso_metrics_token": "metrics-tok-123",
               "flusso_bootstrap_api_key": "fo_bootstrap_key_987", "flusso_bootstrap_admin_password": "hunter2-pw"}
    settings = ServerSettings(_env_file=None, **secrets)
    for value in secrets.values():
        assert value not in repr(settings) and value not in str(settings.model_dump())
    argv, env = demo_command("http://127.0.0.1:1", "fo_demo_secret_key", 5)
    assert "fo_demo_secret_key" not in " ".join(argv) and "--api-key" not in argv
    assert env["LOG_COLLECTOR_API_KEY"] == "fo_demo_secret_key"


def test_retention_refuses_negative_days(db_dsn):
    """A negative count once put the cutoff in the future and dropped the current month's
    partition; days back follow collector_api.contract.dates (0 or more)."""
    assert cli("migrate", dsn=db_dsn).returncode == 0
    with psycopg.connect(db_dsn) as conn:
        before = conn.execute("SELECT count(*) FROM pg_inherits").fetchone()[0]
    refused = cli("retention", "--days", "-40", dsn=db_dsn)
    assert refused.returncode == 2 and "--days: expected 0 or more days" in refused.stderr
    with psycopg.connect(db_dsn) as conn:
        assert conn.execute("SELECT count(*) FROM pg_inherits").fetchone()[0] == before
