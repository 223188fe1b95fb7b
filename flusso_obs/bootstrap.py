"""Accounts created at start: from FLUSSO_BOOTSTRAP_* (compose) and the demo tenants of `make run`."""
from __future__ import annotations

import json
import logging
import os
import secrets
from dataclasses import asdict, dataclass, field
from pathlib import Path

import psycopg
from psycopg.conninfo import conninfo_to_dict

from collector_api.store.accounts.principals import create_api_key, create_user, find_user
from collector_api.store.core.db import create_pool
from config.server import ServerSettings, reveal
from viewer.auth import hash_password

logger = logging.getLogger(__name__)

DEMO_TENANTS = ("acme", "globex", "initech")
CREDENTIALS_FILE = "demo-credentials.json"


@dataclass
class DemoCredentials:
    provider_email: str
    provider_password: str
    client_email: str
    client_password: str
    client_id: str
    ingest_keys: dict[str, str] = field(default_factory=dict)  # tenant -> secret


def write_private(path: Path, text: str) -> None:
    """Write `text` to a file only its owner can read (0600), atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


# Values that are public: the defaults older compose files shipped, .env.example's, and the usual stand-ins.
KNOWN_PLACEHOLDERS = frozenset({
    "compose-dev-session-secret-change-me-0123456789", "change-me-please", "flusso-dev-password",
    "flusso-owner-dev-password", "fo_compose_demo_key_change_me_0123456789abcdef",
    "compose-demo-pii-key-change-me-0123456789abcdef", "change-me", "changeme", "change_me", "secret",
    "password", "admin", "test", "example", "default", "dev", "development", "your-secret-here", "xxx",
})
MIN_SECRET_CHARS = 32
# Secret settings that are not keys of ours: a password, a DSN and the judge endpoint's key (its
# provider decides its length) are checked for placeholders only.
NOT_KEYS = frozenset({"database_url", "flusso_bootstrap_admin_password", "flusso_judge_api_key"})
ADMIN_PASSWORD_FILE = "bootstrap-admin-password"


def _is_placeholder(value: str) -> bool:
    lowered = value.strip().lower()
    return lowered in KNOWN_PLACEHOLDERS or "change-me" in lowered or "change_me" in lowered or "changeme" in lowered


def secret_fields() -> list[str]:
    """Every secret setting of ServerSettings: those typed SecretStr (one place decides)."""
    return [name for name, field in ServerSettings.model_fields.items() if "SecretStr" in str(field.annotation)]


def _dsn_password(dsn: str) -> str | None:
    try:
        return conninfo_to_dict(dsn).get("password")
    except psycopg.ProgrammingError:
        return None  # not a DSN psycopg reads: connecting will say so


def unsafe_secrets(settings: ServerSettings) -> list[str]:
    """Why the configured secrets must not be served with (empty when they are fine): for every
    secret setting, a published placeholder; for every key or token, fewer than 32 characters;
    for DATABASE_URL, a placeholder password."""
    problems = []
    for name in secret_fields():
        value = reveal(getattr(settings, name))
        if not value:
            continue
        if name == "database_url":
            value = _dsn_password(value) or ""
            if value and _is_placeholder(value):
                problems.append("DATABASE_URL's password is a published placeholder; set a password of your own")
            continue
        if _is_placeholder(value):
            problems.append(f"{name.upper()} is a published placeholder; set a secret of your own")
        elif name not in NOT_KEYS and len(value) < MIN_SECRET_CHARS:
            problems.append(f"{name.upper()} is shorter than {MIN_SECRET_CHARS} characters (generate one:"
                            " python -c 'import secrets; print(secrets.token_urlsafe(32))')")
    return problems


def session_secret(settings: ServerSettings) -> str:
    """The configured cookie-signing secret, else one generated once and kept in the data dir."""
    if settings.flusso_session_secret:
        return settings.flusso_session_secret.get_secret_value()
    path = settings.flusso_data_dir / "session-secret"
    if path.exists():
        return path.read_text(encoding="utf-8").strip()
    secret = secrets.token_urlsafe(48)
    write_private(path, secret)
    return secret


def pii_hash_key(settings: ServerSettings) -> str | None:
    """FLUSSO_PII_HASH_KEY (/v1/traces): the configured one; in embedded mode (no DATABASE_URL)
    one generated once into the data dir (0600); with DATABASE_URL and none, None (/v1/traces
    then answers 501 naming the setting)."""
    if settings.flusso_pii_hash_key:
        return reveal(settings.flusso_pii_hash_key)
    if settings.database_url:
        return None
    path = settings.flusso_data_dir / "pii-hash-key"
    if path.exists():
        return path.read_text(encoding="utf-8").strip()
    secret = secrets.token_urlsafe(48)
    write_private(path, secret)
    return secret
def alert_secret_key(settings: ServerSettings) -> str:
    """The key alert rules' webhook secrets derive from: FLUSSO_ALERT_SECRET_KEY, else one
    generated once and kept in the data dir (mode 0600), like the session secret."""
    if settings.flusso_alert_secret_key:
        return reveal(settings.flusso_alert_secret_key)
    path = settings.flusso_data_dir / "alert-secret-key"
    if path.exists():
        return path.read_text(encoding="utf-8").strip()
    key = secrets.token_urlsafe(48)
    write_private(path, key)
    return key


async def bootstrap_from_settings(settings: ServerSettings, dsn: str) -> None:
    """Create the FLUSSO_BOOTSTRAP_* tenant key and provider login if set (idempotent)."""
    async with create_pool(dsn) as pool:
        if settings.flusso_bootstrap_api_key:
            client = settings.flusso_bootstrap_client_id or "default"
            await create_api_key(pool, client, "ingest", secret=settings.flusso_bootstrap_api_key.get_secret_value())
            logger.info("bootstrap ingest key for tenant %s is in place", client)
        email = settings.flusso_bootstrap_admin_email
        if email and await find_user(pool, email) is None:
            password = settings.flusso_bootstrap_admin_password
            secret = password.get_secret_value() if password else _generated_admin_password(settings, email)
            await create_user(pool, email, hash_password(secret), "provider", None)
            logger.info("bootstrap provider login %s created", email)


def _generated_admin_password(settings: ServerSettings, email: str) -> str:
    """A password for the bootstrap login when none is configured: generated once, kept (0600) in
    the data directory and printed once, to this process's log, when the login is created."""
    path = settings.flusso_data_dir / ADMIN_PASSWORD_FILE
    password = secrets.token_urlsafe(18)
    write_private(path, password + "\n")
    logger.warning("generated the password of the provider login %s (printed once; also in %s): %s",
                   email, path, password)
    return password


async def ensure_demo_credentials(settings: ServerSettings, dsn: str) -> DemoCredentials:
    """Demo tenants, their ingest keys and two logins: created on first run, then read back."""
    path = settings.flusso_data_dir / CREDENTIALS_FILE
    if path.exists():
        creds = DemoCredentials(**json.loads(path.read_text(encoding="utf-8")))
    else:
        creds = DemoCredentials(
            provider_email="provider@demo.local", provider_password=secrets.token_urlsafe(12),
            client_email="client@acme.demo.local", client_password=secrets.token_urlsafe(12), client_id="acme",
            ingest_keys={tenant: "fo_" + secrets.token_urlsafe(32) for tenant in DEMO_TENANTS})
    # Idempotent: also repairs a database that was reset while the file stayed.
    async with create_pool(dsn) as pool:
        for tenant, secret in creds.ingest_keys.items():
            await create_api_key(pool, tenant, "ingest", secret=secret)
        for email, password, role, client in (
            (creds.provider_email, creds.provider_password, "provider", None),
            (creds.client_email, creds.client_password, "client", creds.client_id),
        ):
            if await find_user(pool, email) is None:
                await create_user(pool, email, hash_password(password), role, client)
    if not path.exists():
        write_private(path, json.dumps(asdict(creds), indent=2))
    return creds
