"""Settings of the provider side: collector, viewer and the CLI.

Values resolve explicit argument -> environment variable -> `.env` file -> default.
"""
from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class ServerSettings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    database_url: str | None = Field(
        default=None,
        description="PostgreSQL DSN. When unset, an embedded PostgreSQL is started in FLUSSO_DATA_DIR.",
    )
    flusso_data_dir: Path = Field(default=Path(".flusso"), description="Embedded PostgreSQL data and demo credentials.")
    flusso_host: str = Field(default="127.0.0.1", description="Interface the server binds to.")
    flusso_port: int = Field(default=8000, ge=1, le=65535, description="Port the server binds to.")
    flusso_db_pool_size: int = Field(default=10, ge=1, le=200, description="Max PostgreSQL connections of one process.")
    flusso_max_body_bytes: int = Field(
        default=20 * 1024 * 1024, ge=1024, description="Request body limit, on the wire and after decompression."
    )
    flusso_max_inflight_requests: int = Field(
        default=64, ge=1, description="Ingest requests processed at once; beyond it the collector answers 503."
    )
    flusso_max_inflight_per_tenant: int = Field(
        default=16, ge=1,
        description="Ingest requests of ONE tenant in flight at once (of FLUSSO_MAX_INFLIGHT_REQUESTS);"
                    " beyond it that tenant gets 503 + Retry-After while the others go on.",
    )
    flusso_body_timeout_seconds: float = Field(
        default=30.0, gt=0, le=3600,
        description="Time to receive a whole ingest request body; a body still incomplete after it: 408.",
    )
    flusso_ingest_concurrency: int = Field(
        default=4, ge=1, le=64,
        description="Requests in the decode+store stage at once (one decodes, the others are written; the rest"
                    " wait with their compressed bodies): bounds memory, ~15 MB per 512-log request.",
    )
    flusso_tenant_rate_limit_per_s: float = Field(
        default=0.0, ge=0.0, description="Per-tenant ingest requests per second (0 = off); over it: 429."
    )
    flusso_retry_after_seconds: int = Field(default=2, ge=1, le=3600, description="Retry-After sent with 503/429.")
    flusso_forwarded_allow_ips: str | None = Field(
        default=None,
        description="Proxies whose X-Forwarded-For/-Proto are trusted (e.g. 127.0.0.1); unset: none.",
    )
    flusso_metrics_token: SecretStr | None = Field(
        default=None, description="Bearer token for /metrics; without it /metrics answers only loopback clients."
    )
    flusso_session_secret: SecretStr | None = Field(
        default=None,
        description="Secret that signs viewer session cookies. When unset, one is generated and kept in the data dir.",
    )
    flusso_cookie_secure: Literal["auto", "true", "false"] = Field(
        default="auto",
        description="Mark session cookies Secure: auto = when the request came over HTTPS (directly, or as"
                    " X-Forwarded-Proto from a proxy in FLUSSO_FORWARDED_ALLOW_IPS); true; false.",
    )
    flusso_login_attempts_per_minute: int = Field(default=10, ge=1, description="Login attempts per client IP.")
    flusso_login_delay_max_seconds: float = Field(
        default=8.0, ge=0, le=300,
        description="Cap of the growing per-account delay after repeated failed sign-ins (a delay, never a lock-out).",
    )
    flusso_login_verify_concurrency: int = Field(
        default=1, ge=1, le=64,
        description="Password checks (argon2, ~64 MiB each) run at once, off the event loop; 32 more may wait,"
                    " beyond that sign-in answers 503.",
    )
    flusso_max_form_bytes: int = Field(
        default=64 * 1024, ge=1024,
        description="Body limit of the viewer's own POSTs (sign-in form): 413 from Content-Length before reading.",
    )
    flusso_session_hours: int = Field(
        default=12, ge=1, le=24 * 30, description="Lifetime of a viewer session; after it the user signs in again."
    )
    flusso_rollup_refresh_seconds: float = Field(
        default=30.0, ge=0.0,
        description="How often the overview's daily rollups of past days are refreshed (in the background);"
        " 0 turns rollups off and aggregates raw logs on every request.",
    )
    flusso_export_max_rows: int = Field(
        default=100_000, ge=1, description="Most rows one CSV/JSON export of the viewer returns."
    )
    flusso_bootstrap_client_id: str | None = Field(default=None, description="Tenant created at start (compose).")
    flusso_bootstrap_api_key: SecretStr | None = Field(
        default=None, description="Ingest key for the bootstrap tenant, stored hashed at start (compose)."
    )
    flusso_bootstrap_admin_email: str | None = Field(default=None, description="Provider login created at start.")
    flusso_bootstrap_admin_password: SecretStr | None = Field(default=None,
                                                     description="Its password (stored argon2-hashed).")

    @field_validator("flusso_cookie_secure", mode="before")
    @classmethod
    def _cookie_secure_words(cls, value: object) -> object:
        if isinstance(value, bool):
            return "true" if value else "false"
        return value.strip().lower() if isinstance(value, str) else value
