"""What can be proved without a Docker engine: compose validity, env coverage, Dockerfile lint,
the gateway config's essential keys, and the container's command serving for real."""
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from config.bridge import BridgeSettings
from config.server import ServerSettings
from tests.deploy.helpers import REQUIRED_SECRETS, compose_binary

ROOT = Path(__file__).resolve().parents[2]


def settings_env_names() -> set[str]:
    names = {name.upper() for name in ServerSettings.model_fields}
    for name, field in BridgeSettings.model_fields.items():
        names.add(name.upper())
        alias = field.validation_alias
        for choice in getattr(alias, "choices", []) or []:
            if isinstance(choice, str):
                names.add(choice.upper())
    return names


def _compose_config(env: dict) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in REQUIRED_SECRETS and not k.startswith("FLUSSO_")}
    return subprocess.run([str(compose_binary()), "-f", str(ROOT / "docker-compose.yml"), "config", "-q"],
                          capture_output=True, text=True, timeout=60, cwd=ROOT, env={**clean, **env})


def test_compose_file_is_valid_for_compose_v2():
    out = _compose_config({name: f"value-of-{name.lower()}" for name in REQUIRED_SECRETS})
    assert out.returncode == 0, out.stderr


def test_compose_has_no_public_default_secret():
    """Every required secret left unset stops `compose config` with a message naming it; no
    secret-looking variable has a non-empty default in the file."""
    for missing in REQUIRED_SECRETS:
        out = _compose_config({name: "x" * 40 for name in REQUIRED_SECRETS if name != missing})
        assert out.returncode != 0 and missing in out.stderr, (missing, out.stderr)
    text = (ROOT / "docker-compose.yml").read_text()
    defaults = re.findall(r"\$\{(\w*(?:SECRET|PASSWORD|KEY|TOKEN)\w*):?-([^}]*)\}", text)
    assert all(value == "" for _, value in defaults), defaults


def test_compose_env_vars_exist_in_settings_and_env_example():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    example = (ROOT / ".env.example").read_text()
    known = settings_env_names()
    for name, service in compose["services"].items():
        if name == "postgres":  # the official image's own variables
            continue
        for var in service.get("environment", {}):
            assert var in known, f"{name}: {var} is not a setting in config/"
            assert re.search(rf"^#?\s*{var}=", example, re.M), f"{var} is missing from .env.example"


def test_every_setting_is_documented_in_env_example():
    example = (ROOT / ".env.example").read_text()
    names = [name.upper() for name in ServerSettings.model_fields]
    names += [field.validation_alias.choices[0] for field in BridgeSettings.model_fields.values()]
    for name in names:
        assert re.search(rf"^#?\s*{name}=", example, re.M), f"{name} missing from .env.example"


def test_compose_wiring():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])
    assert services["collector"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert "/readyz" in " ".join(services["collector"]["healthcheck"]["test"])
    assert services["demo"]["depends_on"]["collector"]["condition"] == "service_healthy"
    assert services["demo"]["environment"]["LOG_COLLECTOR_API_KEY"] == \
        services["collector"]["environment"]["FLUSSO_BOOTSTRAP_API_KEY"]


def test_dockerfile_passes_hadolint_and_runs_unprivileged():
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    out = subprocess.run([hadolint, str(ROOT / "Dockerfile")], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    text = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^USER (?!root|0\b)", text, re.M)
    assert text.index("pip install --no-cache-dir -r") < text.index("COPY collector_api"), "deps before source"
    assert not re.search(r"(PASSWORD|SECRET|API_KEY)\s*=", text), "no secrets baked into the image"


def test_gateway_config_keeps_tenants_apart_and_persists_keys():
    gw = yaml.safe_load((ROOT / "config" / "otel-collector-gateway.yaml").read_text())
    assert gw["receivers"]["otlp"]["protocols"]["http"]["include_metadata"] is True
    assert "memory_limiter" in gw["processors"]
    assert gw["processors"]["batch"]["metadata_keys"] == ["x-api-key"]
    setter = gw["extensions"]["headers_setter"]["headers"][0]
    assert setter["key"].lower() == "x-api-key" and setter["from_context"] == "x-api-key"
    exporter = gw["exporters"]["otlphttp/flusso"]
    assert exporter["auth"]["authenticator"] == "headers_setter"
    assert exporter["retry_on_failure"]["enabled"] is True
    assert exporter["sending_queue"]["storage"] in gw["extensions"]
    assert gw["service"]["pipelines"]["logs"]["processors"][0] == "memory_limiter"
    text = (ROOT / "config" / "otel-collector-gateway.yaml").read_text()
    assert "--feature-gates=exporter.PersistRequestContext" in text


def test_gateway_config_authenticates_senders_and_names_its_queue_secret():
    """No open gateway: both OTLP protocols require the bearer token, which comes from the
    environment (no token in the file; unset, the extension refuses to start); the file and the
    docs say the disk queue holds keys in plaintext."""
    gw = yaml.safe_load((ROOT / "config" / "otel-collector-gateway.yaml").read_text())
    for protocol in ("http", "grpc"):
        auth = gw["receivers"]["otlp"]["protocols"][protocol]["auth"]["authenticator"]
        assert auth.startswith("bearertokenauth") and auth in gw["extensions"], protocol
        assert auth in gw["service"]["extensions"]
    assert gw["extensions"][auth]["token"] == "${env:FLUSSO_GATEWAY_TOKEN}"
    text = (ROOT / "config" / "otel-collector-gateway.yaml").read_text()
    assert "SECRET MATERIAL" in text and "plaintext" in text
    scaling = (ROOT / "docs" / "scaling.md").read_text()
    assert "FLUSSO_GATEWAY_TOKEN" in scaling and "secret material" in scaling.lower()


def test_container_command_serves_a_ready_server(db_dsn, tmp_path):
    """The Dockerfile's CMD, as written, with the environment compose gives it."""
    cmd = json.loads(re.search(r"^CMD (\[.*\])$", (ROOT / "Dockerfile").read_text(), re.M).group(1))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    key = "fo_bootstrap_" + "k" * 40
    env = {**os.environ, "DATABASE_URL": db_dsn, "FLUSSO_HOST": "127.0.0.1", "FLUSSO_PORT": str(port),
           "FLUSSO_DATA_DIR": str(tmp_path), "FLUSSO_BOOTSTRAP_CLIENT_ID": "acme", "FLUSSO_BOOTSTRAP_API_KEY": key,
           "FLUSSO_BOOTSTRAP_ADMIN_EMAIL": "admin@example.com", "FLUSSO_BOOTSTRAP_ADMIN_PASSWORD": "a-real-pw-4832",
           "FLUSSO_SESSION_SECRET": "s" * 40}
    binary = Path(sys.executable).parent / cmd[0]
    proc = subprocess.Popen([str(binary), *cmd[1:]], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline, ready = time.monotonic() + 30, False
        while time.monotonic() < deadline and not ready:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as resp:
                    ready = resp.status == 200
            except OSError:
                time.sleep(0.2)
        assert ready, "server never became ready"
        req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/logs", data=b"", method="POST",
                                     headers={"Content-Type": "application/x-protobuf", "X-API-Key": key})
        with urllib.request.urlopen(req, timeout=5) as resp:
            assert resp.status == 200  # the bootstrap key was stored (hashed) and works
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    import psycopg
    with psycopg.connect(db_dsn) as conn:
        assert conn.execute("SELECT email, role FROM users").fetchall() == [("admin@example.com", "provider")]
        stored = conn.execute("SELECT key_hash FROM api_keys").fetchone()[0]
    assert key.encode() not in bytes(stored)


def test_compose_runs_the_app_as_the_owner_and_the_superuser_only_in_db_init():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    superuser = services["postgres"]["environment"]["POSTGRES_USER"]
    app_url = services["collector"]["environment"]["DATABASE_URL"]
    assert app_url.startswith("postgresql://flusso_owner:"), app_url
    assert f"//{superuser}:" not in app_url
    init = services["db-init"]
    assert init["command"][:3] == ["python", "-m", "flusso_obs.provision"]
    assert f"//{superuser}:" in init["command"][init["command"].index("--admin-url") + 1]
    assert services["collector"]["depends_on"]["db-init"]["condition"] == "service_completed_successfully"
    assert all(f"//{superuser}:" not in str(svc) for name, svc in services.items() if name != "db-init")


def test_the_provision_command_creates_the_owner(template_admin_dsn, capsys):
    from flusso_obs.provision import main
    from tests.helpers import OWNER_PASSWORD

    assert main(["--admin-url", template_admin_dsn, "--owner-password", OWNER_PASSWORD]) == 0
    assert "role flusso_owner ready; ownership moved: nothing (already done)" in capsys.readouterr().out


def _run_container_command(env: dict, seconds: float = 30) -> tuple[int | None, str, int]:
    """The Dockerfile's CMD with `env` on a free port: (exit code or None if it became ready, output, port)."""
    cmd = json.loads(re.search(r"^CMD (\[.*\])$", (ROOT / "Dockerfile").read_text(), re.M).group(1))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    clean = {k: v for k, v in os.environ.items() if not k.startswith("FLUSSO_")}
    full = {**clean, "FLUSSO_HOST": "127.0.0.1", "FLUSSO_PORT": str(port), **env}
    proc = subprocess.Popen([str(Path(sys.executable).parent / cmd[0]), *cmd[1:]], env=full,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                time.sleep(0.2)
        code = proc.poll()
    finally:
        if proc.poll() is None:
            proc.terminate()
        out, _ = proc.communicate(timeout=20)
    return code, out, port


def test_first_start_generates_session_secret_and_prints_the_admin_password_once(db_dsn, tmp_path):
    """Compose passes no session secret and no admin password: the entrypoint generates both into
    the data volume (0600), prints the password once; a second start reuses them silently."""
    env = {"DATABASE_URL": db_dsn, "FLUSSO_DATA_DIR": str(tmp_path), "FLUSSO_SESSION_SECRET": "",
           "FLUSSO_BOOTSTRAP_ADMIN_EMAIL": "admin@example.com", "FLUSSO_BOOTSTRAP_ADMIN_PASSWORD": ""}
    code, out, _ = _run_container_command(env)
    assert code is None, out[-2000:]
    password = (tmp_path / "bootstrap-admin-password").read_text().strip()
    secret = (tmp_path / "session-secret").read_text().strip()
    assert len(password) >= 20 and len(secret.encode()) >= 32
    assert (tmp_path / "bootstrap-admin-password").stat().st_mode & 0o077 == 0
    assert out.count(password) == 1
    code, out, _ = _run_container_command(env)
    assert code is None and password not in out, out[-2000:]
    assert (tmp_path / "session-secret").read_text().strip() == secret
    from viewer.auth import verify_password
    with __import__("psycopg").connect(db_dsn) as conn:
        (stored,) = conn.execute("SELECT password_hash FROM users WHERE email = 'admin@example.com'").fetchone()
    assert verify_password(stored, password)


@pytest.mark.parametrize("env, named", [
    ({"FLUSSO_SESSION_SECRET": "compose-dev-session-secret-change-me-0123456789"}, "FLUSSO_SESSION_SECRET"),
    ({"FLUSSO_SESSION_SECRET": "too-short-secret"}, "shorter than 32 characters"),
    ({"FLUSSO_BOOTSTRAP_ADMIN_PASSWORD": "change-me-please"}, "FLUSSO_BOOTSTRAP_ADMIN_PASSWORD"),
    ({"FLUSSO_BOOTSTRAP_API_KEY": "fo_compose_demo_key_change_me_0123456789abcdef"}, "FLUSSO_BOOTSTRAP_API_KEY"),
])
def test_serve_refuses_placeholders_and_short_session_secrets(tmp_path, env, named):
    code, out, _ = _run_container_command({"FLUSSO_DATA_DIR": str(tmp_path), "DATABASE_URL": "postgresql://unused/x",
                                           **env}, seconds=20)
    assert code == 2 and "refusing to serve" in out and named in out, out[-1000:]


def test_compose_publishes_grpc_on_loopback_only():
    """OTLP/gRPC is plaintext unless FLUSSO_GRPC_TLS_* are set: published on 127.0.0.1 by default."""
    collector = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]["collector"]
    assert collector["environment"]["FLUSSO_GRPC_PORT"] == "4317"
    grpc_ports = [p for p in collector["ports"] if p.endswith(":4317")]
    assert grpc_ports == ["127.0.0.1:4317:4317"], collector["ports"]
    assert "EXPOSE 8000 4317" in (ROOT / "Dockerfile").read_text()
