"""Compose passes every setting to the app, and the app as compose configures it works: `compose
config` (the real Compose v2 binary, no engine) renders the collector's environment, and the
container's command runs with that environment against a real PostgreSQL: /v1/traces assembles a
trace, and behind the trusted proxy the login limit counts each real client."""
from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import httpx
import psycopg
import pytest

from config.server import ServerSettings
from tests.deploy.helpers import REQUIRED_SECRETS, compose_binary
from tests.traces.helpers import sdk_provider, support_trace, wait_for_logs

ROOT = Path(__file__).resolve().parents[2]
# Set by docker-compose.yml itself (the container's layout and the values it requires or derives).
FIXED = {"DATABASE_URL", "FLUSSO_DATA_DIR", "FLUSSO_HOST", "FLUSSO_PORT", "FLUSSO_GRPC_PORT",
         "FLUSSO_BOOTSTRAP_API_KEY", "FLUSSO_PII_HASH_KEY"}
SECRETS = {name: f"{name.lower().replace('_', '-')}-" + "s" * 40 for name in REQUIRED_SECRETS}


def render(tmp_path: Path, env_text: str) -> dict:
    """`docker compose config` with `env_text` as the .env next to the compose file: the model."""
    project = tmp_path / "project"
    project.mkdir(exist_ok=True)
    shutil.copy(ROOT / "docker-compose.yml", project / "docker-compose.yml")
    (project / ".env").write_text(env_text)
    clean = {k: v for k, v in os.environ.items()
             if k not in REQUIRED_SECRETS and not k.startswith(("FLUSSO_", "POSTGRES_", "PII_"))}
    out = subprocess.run([str(compose_binary()), "config", "--format", "json"], capture_output=True, text=True,
                         timeout=60, cwd=project, env=clean)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def secrets_text() -> str:
    return "".join(f"{name}={value}\n" for name, value in SECRETS.items())


def test_every_setting_set_in_env_reaches_the_app(tmp_path):
    values = {name.upper(): f"value-of-{name}" for name in ServerSettings.model_fields}
    env = secrets_text() + "".join(f"{k}={v}\n" for k, v in values.items() if k not in SECRETS)
    collector = render(tmp_path, env)["services"]["collector"]["environment"]
    for name in values:
        assert name in collector, f"{name} does not reach the collector"
        if name not in FIXED:
            assert collector[name] == values[name], (name, collector[name])
    assert collector["FLUSSO_PII_HASH_KEY"] == SECRETS["FLUSSO_PII_HASH_KEY"]
    assert "POSTGRES_PASSWORD" not in collector and SECRETS["POSTGRES_PASSWORD"] not in json.dumps(collector)


def documented_environment(tmp_path: Path) -> dict[str, str]:
    """The collector's environment from the documented .env: .env.example plus the required secrets."""
    env = (ROOT / ".env.example").read_text() + "\n" + secrets_text()
    return render(tmp_path, env)["services"]["collector"]["environment"]


def test_the_documented_env_gives_the_app_valid_settings(tmp_path, monkeypatch):
    collector = documented_environment(tmp_path)
    for name in ServerSettings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
    for name, value in collector.items():
        monkeypatch.setenv(name, value or "")
    settings = ServerSettings(_env_file=None)  # as the container's `serve` reads them
    assert settings.flusso_pii_hash_key.get_secret_value() == SECRETS["FLUSSO_PII_HASH_KEY"]  # /v1/traces is on
    assert settings.flusso_forwarded_allow_ips == "172.29.0.1"  # the compose network's gateway
    assert settings.flusso_db_pool_size == 10 and settings.flusso_host == "0.0.0.0"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def container_command(env: dict[str, str]):
    """The Dockerfile's CMD, as written, with `env`, until it answers /readyz; its base URL."""
    cmd = json.loads(re.search(r"^CMD (\[.*\])$", (ROOT / "Dockerfile").read_text(), re.M).group(1))
    port = free_port()
    clean = {k: v for k, v in os.environ.items() if not k.startswith("FLUSSO_")}
    full = {**clean, **env, "FLUSSO_HOST": "127.0.0.1", "FLUSSO_PORT": str(port), "FLUSSO_GRPC_PORT": "0"}
    proc = subprocess.Popen([str(Path(sys.executable).parent / cmd[0]), *cmd[1:]], env=full,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 40
        while True:
            assert proc.poll() is None, proc.communicate(timeout=5)[0][-2000:]
            assert time.monotonic() < deadline, "the container command never became ready"
            try:
                if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        proc.communicate(timeout=30)


def compose_env_for_test(tmp_path: Path, db_dsn: str, **overrides: str) -> dict[str, str]:
    env = {k: v for k, v in documented_environment(tmp_path).items() if v}
    return {**env, "DATABASE_URL": db_dsn, "FLUSSO_DATA_DIR": str(tmp_path / "data"), **overrides}


def test_v1_traces_works_with_the_compose_environment(db_dsn, tmp_path):
    env = compose_env_for_test(tmp_path, db_dsn, FLUSSO_TRACE_QUIET_SECONDS="0.3", FLUSSO_TRACE_ASSEMBLY_SECONDS="0.2")
    with container_command(env) as url:
        trace_id = support_trace(sdk_provider(url, SECRETS["FLUSSO_BOOTSTRAP_API_KEY"]), "T-COMPOSE")
        logs = wait_for_logs(db_dsn, 1, where=f"trace_id = '{trace_id}'")
    assert len(logs) == 1 and logs[0]["client_id"] == "acme" and logs[0]["ticket_id"] == "T-COMPOSE"


def login_status(url: str, *, forwarded_for: str | None = None, proto: str | None = None,
                 local_address: str = "127.0.0.1", email: str = "nobody@example.com",
                 password: str = "wrong-password") -> httpx.Response:
    """One sign-in attempt through a 'proxy' at `local_address` that forwards for `forwarded_for`."""
    headers = {**({"X-Forwarded-For": forwarded_for} if forwarded_for else {}),
               **({"X-Forwarded-Proto": proto} if proto else {})}
    transport = httpx.HTTPTransport(local_address=local_address)
    with httpx.Client(base_url=url, transport=transport, headers=headers, timeout=30) as client:
        page = client.get("/login")
        token = page.text.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
        # Sent by hand: a cookie marked Secure (the request was HTTPS at the proxy) is one the
        # proxy passes on, but httpx would not send it over the test's plain http.
        cookie = "; ".join(f"{k}={v}" for k, v in page.cookies.items())
        return client.post("/login", data={"email": email, "password": password, "csrf_token": token, "next": "/"},
                           headers={"Cookie": cookie})


@pytest.mark.parametrize("trusted", ["127.0.0.1"])
def test_the_login_limit_counts_each_real_client_behind_the_trusted_proxy(db_dsn, tmp_path, trusted):
    """The test's proxy connects from 127.0.0.1 (trusted, as the compose gateway is); another peer
    from 127.0.0.2 (not trusted: its X-Forwarded-For is ignored)."""
    env = compose_env_for_test(tmp_path, db_dsn, FLUSSO_FORWARDED_ALLOW_IPS=trusted,
                               FLUSSO_LOGIN_ATTEMPTS_PER_MINUTE="3", FLUSSO_LOGIN_CHECKS_PER_SECOND="100",
                               FLUSSO_LOGIN_DELAY_MAX_SECONDS="0",
                               FLUSSO_BOOTSTRAP_ADMIN_PASSWORD="a-real-admin-password-4832")
    with container_command(env) as url:
        first = [login_status(url, forwarded_for="203.0.113.5").status_code for _ in range(4)]
        other = login_status(url, forwarded_for="203.0.113.6").status_code
        spoofer = [login_status(url, forwarded_for=f"198.51.100.{i}", local_address="127.0.0.2").status_code
                   for i in range(4)]
        secure = login_status(url, forwarded_for="203.0.113.7", proto="https", email="admin@example.com",
                              password="a-real-admin-password-4832")
        direct = login_status(url, proto="https", local_address="127.0.0.3", email="admin@example.com",
                              password="a-real-admin-password-4832")
    assert first == [401, 401, 401, 429]  # one real client: limited after 3
    assert other == 401  # another client behind the same proxy: its own limit
    assert spoofer == [401, 401, 401, 429]  # an untrusted peer cannot escape by inventing addresses
    assert secure.status_code == 303 and "secure" in secure.headers["set-cookie"].lower()  # HTTPS at the proxy
    assert direct.status_code == 303 and "secure" not in direct.headers["set-cookie"].lower()
    with psycopg.connect(db_dsn) as conn:
        assert conn.execute("SELECT count(*) FROM users").fetchone()[0] == 1
