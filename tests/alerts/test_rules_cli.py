"""Alert rules through `flusso-obs alerts` (a real subprocess, real PostgreSQL): validation errors
name the field; the signing secret is shown once and is not in the database; RLS keeps the salt
from the application role and alerts from tenant scopes."""
import hashlib
import hmac

import psycopg
import pytest

from collector_api.alerts.rules import AlertRuleError, parse_window, signing_secret, validate_rule
from tests.cli.helpers import cli

BASE = ["alerts", "create", "--name", "acme failures", "--metric", "failure_rate", "--op", ">",
        "--threshold", "0.2", "--window", "15m", "--webhook", "http://127.0.0.1:9/hook"]


def make_tenant(dsn, client="acme"):
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("INSERT INTO tenants (client_id) VALUES (%s) ON CONFLICT DO NOTHING", (client,))


def test_alerts_lifecycle_and_secret_at_rest(db_dsn, tmp_path):
    make_tenant(db_dsn)
    env = {"FLUSSO_ALERT_SECRET_KEY": "k" * 40, "FLUSSO_DATA_DIR": str(tmp_path)}
    created = cli(*BASE, "--client", "acme", "--min-tickets", "5", dsn=db_dsn, env=env)
    assert created.returncode == 0, created.stderr
    secret = created.stdout.strip().splitlines()[-1]
    assert secret.startswith("whsec_") and len(secret) == 6 + 64
    with psycopg.connect(db_dsn) as conn:
        dump = str(conn.execute("SELECT * FROM alert_rules").fetchall())
        salt = conn.execute("SELECT secret_salt FROM alert_rules").fetchone()[0]
    assert secret[6:] not in dump  # not stored; derived from a key outside the database
    assert signing_secret("k" * 40, bytes(salt)) == secret
    listed = cli("alerts", "list", dsn=db_dsn, env=env)
    assert listed.returncode == 0 and "acme failures" in listed.stdout and "failure_rate > 0.2" in listed.stdout
    assert secret not in listed.stdout and "15m" in listed.stdout and "(min 5)" in listed.stdout
    rule_id = listed.stdout.splitlines()[1].split()[0]
    assert cli("alerts", "delete", rule_id, dsn=db_dsn, env=env).returncode == 0
    again = cli("alerts", "delete", rule_id, dsn=db_dsn, env=env)
    assert again.returncode == 2 and f"no alert rule {rule_id}" in again.stderr


CASES = [
    (["--metric", "latency"], "--metric"),
    (["--op", "=="], "--op"),
    (["--threshold", "abc"], "--threshold"),
    (["--threshold", "1.5"], "--threshold"),  # a rate is a fraction
    (["--window", "1m"], "--window"),
    (["--window", "8d"], "--window"),
    (["--window", "15 minutes"], "--window"),
    (["--webhook", "ftp://x/y"], "--webhook"),
    (["--webhook", "http://user:pw@127.0.0.1/"], "--webhook"),
    (["--webhook", "http://127.0.0.1:99999/"], "--webhook"),
    (["--min-tickets", "-1"], "--min-tickets"),
    (["--client", "bad client"], "--client"),
    (["--name", " "], "--name"),
    (["--metric", "tickets", "--op", ">"], "--op"),  # tickets is a floor
]


def _argv(args):
    argv = list(BASE)
    for flag, value in zip(args[::2], args[1::2], strict=True):
        if flag in argv:
            argv[argv.index(flag) + 1] = value
        else:
            argv += [flag, value]
    return argv


@pytest.mark.parametrize(("args", "field"), CASES)
def test_validation_names_the_field(args, field):
    from flusso_obs.cli import build_parser

    a = build_parser().parse_args(_argv(args))
    with pytest.raises(AlertRuleError) as err:
        validate_rule(name=a.name, metric=a.metric, op=a.op, threshold=a.threshold, window=a.window,
                      client_id=a.client, webhook_url=a.webhook, min_tickets=a.min_tickets)
    assert "--" + err.value.field.replace("_", "-") == field, err.value


@pytest.mark.parametrize(("args", "field"), [CASES[0], CASES[4], (["--client", "nobody"], "--client")])
def test_invalid_input_names_the_field(db_dsn, tmp_path, args, field):
    result = cli(*_argv(args), dsn=db_dsn, env={"FLUSSO_DATA_DIR": str(tmp_path)})
    assert result.returncode == 2, result.stdout
    assert f"flusso-obs: {field}:" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    with psycopg.connect(db_dsn) as conn:
        assert conn.execute("SELECT count(*) FROM alert_rules").fetchone()[0] == 0


def test_windows_and_validation_units():
    assert parse_window("5m") == 300 and parse_window("6h") == 21600 and parse_window("7d") == 604800
    with pytest.raises(AlertRuleError) as err:
        validate_rule(name="x", metric="cost_usd", op=">", threshold="nan", window="1h", client_id=None,
                      webhook_url="http://h/")
    assert err.value.field == "threshold"
    spec = validate_rule(name=" x ", metric="tickets", op="<", threshold="3", window="1d", client_id="",
                         webhook_url=" https://hooks.example.com/a ", min_tickets="")
    assert spec.client_id is None and spec.name == "x" and spec.webhook_url == "https://hooks.example.com/a"
    expected = hmac.new(b"key", b"flusso.alert-rule\x00salt", hashlib.sha256).hexdigest()
    assert signing_secret("key", b"salt") == "whsec_" + expected


def test_app_role_cannot_read_salts_and_tenants_see_no_alerts(db_dsn, tmp_path):
    make_tenant(db_dsn)
    assert cli(*BASE, dsn=db_dsn, env={"FLUSSO_DATA_DIR": str(tmp_path)}).returncode == 0
    with psycopg.connect(db_dsn) as conn:
        conn.execute("SET ROLE flusso_app")
        conn.execute("SELECT set_config('flusso.scope', 'client', false), set_config('flusso.tenant', 'acme', false)")
        assert conn.execute("SELECT count(*) FROM alert_rules").fetchone()[0] == 0  # a tenant sees none
        conn.execute("SELECT set_config('flusso.scope', 'provider', false)")
        assert conn.execute("SELECT count(*) FROM alert_rules").fetchone()[0] == 1
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT secret_salt FROM alert_rules")
