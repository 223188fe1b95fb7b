"""No careless default turns a guarantee off: a copied .env.example makes the bridge refuse
(naming PII_HASH_KEY), its active lines are the defaults, every secret setting is a SecretStr
(masked in repr, str, dumps and logs), and `serve` refuses placeholders and short keys in each."""
from __future__ import annotations

import logging
import re
import shutil
from pathlib import Path

import pytest
from pydantic import SecretStr

import otel_bridge
from config.bridge import BridgeSettings
from config.server import ServerSettings
from flusso_obs import runner
from flusso_obs.bootstrap import MIN_SECRET_CHARS, NOT_KEYS, secret_fields, unsafe_secrets
from flusso_obs.errors import CliError
from otel_bridge.pipeline import ConfigurationError

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / ".env.example"
BRIDGE_SECRETS = ("pii_hash_key", "log_collector_api_key", "otel_exporter_otlp_headers")
SECRET_WORDS = re.compile(r"(key|secret|token|password|headers)$|database_url")


def bridge_env_names() -> set[str]:
    return {c for f in BridgeSettings.model_fields.values() for c in f.validation_alias.choices if c.isupper()}


@pytest.fixture()
def clean_env(monkeypatch):
    """No setting of ours from the test runner's environment."""
    for name in bridge_env_names() | {n.upper() for n in ServerSettings.model_fields}:
        monkeypatch.delenv(name, raising=False)


def test_a_copied_env_example_makes_the_bridge_refuse_naming_pii_hash_key(tmp_path, monkeypatch, clean_env):
    shutil.copy(EXAMPLE, tmp_path / ".env")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigurationError, match="PII_HASH_KEY"):
        otel_bridge.configure()
    otel_bridge.shutdown(1)


def test_the_examples_active_lines_are_the_defaults(clean_env):
    """Copying the example changes nothing: ENVIRONMENT (whose being set is itself a decision)
    and every other line that would weaken a guarantee stay commented."""
    bridge = BridgeSettings(_env_file=str(EXAMPLE))
    assert "environment" not in bridge.model_fields_set
    assert bridge.model_dump() == BridgeSettings(_env_file=None).model_dump()
    server = ServerSettings(_env_file=str(EXAMPLE))
    assert server.model_dump() == ServerSettings(_env_file=None).model_dump()


def test_every_secret_looking_setting_is_a_secret_str():
    for name, field in ServerSettings.model_fields.items():
        if SECRET_WORDS.search(name) and "Path" not in str(field.annotation):
            assert name in secret_fields(), f"{name} holds a secret but is {field.annotation}"
    for name in BRIDGE_SECRETS:
        assert "SecretStr" in str(BridgeSettings.model_fields[name].annotation), name
    assert {"database_url", "flusso_pii_hash_key", "flusso_alert_secret_key", "flusso_review_hash_key",
            "flusso_session_secret", "flusso_metrics_token"} <= set(secret_fields())


def test_repr_str_dumps_and_logs_show_no_secret(clean_env, caplog):
    values = {name: f"{name}-value-{'v' * 40}" for name in secret_fields()}
    values["database_url"] = "postgresql://flusso:db-password-" + "p" * 32 + "@db.internal:5432/flusso"
    server = ServerSettings(_env_file=None, **values)
    bridge = BridgeSettings(_env_file=None, **{n: f"{n}-bridge-{'b' * 40}" for n in BRIDGE_SECRETS})
    with caplog.at_level(logging.INFO):
        logging.getLogger("test").info("settings: %s %r %s", server, bridge, server.model_dump())
    shown = " ".join([repr(server), str(server), str(server.model_dump()), server.model_dump_json(),
                      repr(bridge), str(bridge.model_dump()), bridge.model_dump_json(), caplog.text])
    for secret in [*values.values(), "db-password-", *(f"{n}-bridge-" for n in BRIDGE_SECRETS)]:
        assert secret not in shown, secret


def _example_secret_values() -> dict[str, str]:
    """The value .env.example shows for each secret setting (commented or not), when it shows one."""
    found = {}
    for line in EXAMPLE.read_text().splitlines():
        match = re.match(r"^#?\s*([A-Z_]+)=(.+)$", line)
        if match and match.group(1).lower() in secret_fields():
            found[match.group(1).lower()] = match.group(2).strip()
    return found


def test_the_examples_own_secret_values_are_refused():
    shown = _example_secret_values()
    assert "database_url" in shown  # the example DSN carries a password
    for name, value in shown.items():
        assert unsafe_secrets(ServerSettings(_env_file=None, **{name: value})), (name, value)


REFUSALS = [(name, "changeme-" + "x" * 40, "placeholder") for name in secret_fields() if name != "database_url"]
REFUSALS += [(name, "Ab1" * 10, f"shorter than {MIN_SECRET_CHARS}") for name in secret_fields()
             if name not in NOT_KEYS]
REFUSALS += [("database_url", "postgresql://flusso:changeme@db:5432/flusso", "DATABASE_URL's password"),
             ("database_url", "postgresql://flusso:secret@db:5432/flusso", "DATABASE_URL's password"),
             ("flusso_pii_hash_key", "compose-demo-pii-key-change-me-0123456789abcdef", "placeholder"),
             ("flusso_alert_secret_key", "change_me", "placeholder")]


@pytest.mark.parametrize("name, value, why", REFUSALS, ids=[f"{n}-{w.split()[0]}" for n, _, w in REFUSALS])
def test_serve_and_run_refuse_each_placeholder_and_short_key(tmp_path, monkeypatch, name, value, why):
    def started(*args, **kwargs):
        raise AssertionError("got past the secret check")

    for step in ("check_port_free", "check_ports_free", "database"):  # what comes next must not run
        monkeypatch.setattr(runner, step, started)
    settings = ServerSettings(_env_file=None, flusso_data_dir=tmp_path, **{name: value})
    for command in (runner.serve, runner.run_quickstart):
        with pytest.raises(CliError, match="refusing to serve") as refused:
            command(settings, port=1)
        message = str(refused.value)
        assert why in message and (name.upper() in message or name == "database_url"), message
        assert value not in message or len(value) < 12  # the secret itself is not echoed
    assert not any(tmp_path.iterdir())  # refused before anything started or was written


def test_good_secrets_pass():
    values = {name: SecretStr("A-good-random-secret-" + "z" * 20) for name in secret_fields()}
    values["database_url"] = "postgresql://flusso:Zq8-a-real-password-7Yw@db:5432/flusso"
    values["flusso_bootstrap_admin_password"] = "correct horse battery"  # a password: no 32-char rule
    assert unsafe_secrets(ServerSettings(_env_file=None, **values)) == []
