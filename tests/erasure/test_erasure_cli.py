"""`flusso-obs erase`, `erasures verify|list`, `keys create --scope erase`, `tenants set --retention-days`,
as a user runs them (real subprocesses, a real database)."""
from __future__ import annotations

import json

from tests.cli.helpers import cli

from .helpers import RECEIPT_KEY, bulk_logs, count_logs

ENV = {"FLUSSO_RECEIPT_KEY": RECEIPT_KEY}


def test_erase_then_verify_the_receipt_and_see_it_listed(db_dsn, tmp_path):
    key = cli("keys", "create", "--client", "acme", "--scope", "erase", dsn=db_dsn)
    assert key.returncode == 0 and "erase key" in key.stderr, key.stderr
    bulk_logs(db_dsn, "acme", 20)
    out = tmp_path / "receipt.json"
    r = cli("erase", "--client", "acme", "--request-id", "cli-1", "--ticket", "T-1", "--ticket", "T-2",
            "--out", str(out), dsn=db_dsn, env=ENV)
    assert r.returncode == 0, r.stderr
    assert json.loads(out.read_text())["counts"]["workflow_logs"] == 2 and count_logs(db_dsn, "acme") == 18
    ok = cli("erasures", "verify", str(out), env=ENV)
    assert ok.returncode == 0 and "valid" in ok.stdout, ok.stderr
    tampered = json.loads(out.read_text())
    tampered["counts"]["workflow_logs"] = 200
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(tampered))
    refused = cli("erasures", "verify", str(bad), env=ENV)
    assert refused.returncode == 2 and "INVALID" in refused.stderr
    wrong_key = cli("erasures", "verify", str(out), env={"FLUSSO_RECEIPT_KEY": "another-receipt-key-" + "z" * 30})
    assert wrong_key.returncode == 2
    listed = cli("erasures", "list", dsn=db_dsn)
    assert listed.returncode == 0 and "cli-1" in listed.stdout and "workflow_logs=2" in listed.stdout


def test_erase_without_a_receipt_key_is_refused_and_erases_nothing(db_dsn):
    bulk_logs(db_dsn, "acme", 5)
    r = cli("erase", "--client", "acme", "--request-id", "cli-2", "--ticket", "T-1", dsn=db_dsn,
            env={"FLUSSO_RECEIPT_KEY": ""})
    assert r.returncode == 2 and "FLUSSO_RECEIPT_KEY" in r.stderr
    assert count_logs(db_dsn, "acme") == 5


def test_raw_identifiers_come_from_a_file_never_a_flag(db_dsn, tmp_path):
    body = tmp_path / "who.json"
    body.write_text(json.dumps({"request_id": "cli-3", "identifiers": {"email": ["ann@example.com"]}}))
    r = cli("erase", "--client", "acme", "--from", str(body), dsn=db_dsn,
            env={**ENV, "FLUSSO_PII_HASH_KEY": "server-pii-" + "q" * 40})
    assert r.returncode == 0, r.stderr
    receipt = json.loads(r.stdout)
    assert "ann@example.com" not in r.stdout and receipt["asked"]["tokens"][0].startswith("[email:")
    assert cli("erase", "--client", "acme", "--email", "ann@example.com", dsn=db_dsn, env=ENV).returncode == 2


def test_tenants_set_retention_days(db_dsn):
    cli("keys", "create", "--client", "acme", dsn=db_dsn)
    r = cli("tenants", "set", "--client", "acme", "--retention-days", "30", dsn=db_dsn)
    assert r.returncode == 0 and "30 days" in r.stdout, r.stderr
    assert cli("tenants", "set", "--client", "nobody", "--retention-days", "30", dsn=db_dsn).returncode == 2
    assert cli("tenants", "set", "--client", "acme", "--retention-days", "-3", dsn=db_dsn).returncode == 2
    off = cli("tenants", "set", "--client", "acme", "--retention-days", "0", dsn=db_dsn)
    assert off.returncode == 0 and "no retention of its own" in off.stdout
