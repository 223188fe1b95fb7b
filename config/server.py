"""Settings of the provider side: collector, viewer and the CLI.

Values resolve explicit argument -> environment variable -> `.env` file -> default. Every secret
(keys, tokens, passwords, DATABASE_URL) is a SecretStr: masked in repr, str and logs of the
settings; `reveal` gives its text to the one place that uses it.
"""
from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def reveal(value: SecretStr | str | None) -> str | None:
    """The text of a secret setting, None when unset (a plain str, e.g. from model_copy, passes)."""
    if value is None:
        return None
    return value.get_secret_value() if isinstance(value, SecretStr) else value


class ServerSettings(BaseSettings):
    # An empty variable counts as unset: compose passes every setting as ${NAME:-}.
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore",
                                      env_ignore_empty=True)

    database_url: SecretStr | None = Field(
        default=None,
        description="PostgreSQL DSN (secret: it holds the password). When unset, an embedded PostgreSQL is started in"
        " FLUSSO_DATA_DIR.",
    )
    flusso_data_dir: Path = Field(default=Path(".flusso"), description="Embedded PostgreSQL data and demo credentials.")
    flusso_host: str = Field(default="127.0.0.1", description="Interface the server binds to.")
    flusso_port: int = Field(default=8000, ge=1, le=65535, description="Port the server binds to.")
    flusso_grpc_port: int = Field(
        default=4317, ge=0, le=65535,
        description="Port of the OTLP/gRPC receiver (logs and traces Export), on FLUSSO_HOST, in the same process"
                    " as HTTP; 0 turns it off.",
    )
    flusso_grpc_tls_cert: Path | None = Field(
        default=None, description="PEM certificate (chain) of the OTLP/gRPC port; with FLUSSO_GRPC_TLS_KEY it serves"
                                  " TLS only. Unset: plaintext (keep the port on loopback or behind a TLS proxy).",
    )
    flusso_grpc_tls_key: Path | None = Field(
        default=None, description="PEM private key of FLUSSO_GRPC_TLS_CERT.",
    )
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
    flusso_login_checks_per_second: float = Field(
        default=2.0, gt=0, le=1000,
        description="Password checks started per second at most (paced; the waiting ones queue, beyond 32 a 503"
                    " with Retry-After): bounds the CPU a sign-in flood takes from ingest.",
    )
    flusso_max_form_bytes: int = Field(
        default=64 * 1024, ge=1024,
        description="Body limit of every POST that is not an ingest receiver (forms, review API): 413 before reading.",
    )
    flusso_session_hours: int = Field(
        default=12, ge=1, le=24 * 30, description="Lifetime of a viewer session; after it the user signs in again."
    )
    flusso_rollup_refresh_seconds: float = Field(
        default=30.0, ge=0.0,
        description="How often the overview's daily rollups of past days are refreshed (in the background);"
        " 0 turns rollups off and aggregates raw logs on every request.",
    )
    flusso_recontact_days: int = Field(
        default=7, ge=1, le=90,
        description="Recontact window in days: a resolved ticket counts as recontacted when its customer's"
        " session has another ticket within this many days after it (docs/viewer.md \"Sessions\").",
    )
    flusso_drain_timeout_s: float = Field(
        default=20.0, ge=1.0, le=600.0,
        description="On SIGTERM: the most time from the signal to exit; requests in progress finish within it.",
    )
    flusso_drain_grace_s: float = Field(
        default=2.0, ge=0.0, le=300.0,
        description="On SIGTERM: the least time /readyz and new ingest answer 503 before the listener closes.",
    )
    flusso_ingest_counters_flush_seconds: float = Field(
        default=5.0, ge=0.1, le=300.0,
        description="How often each process writes its ingest health counters (the /ingest page) to PostgreSQL.",
    )
    flusso_export_max_rows: int = Field(
        default=100_000, ge=1, description="Most rows one CSV/JSON export of the viewer returns."
    )
    # Human review.
    flusso_review_labels: str = Field(
        default="", description="Extra review flags, comma-separated (e.g. refund,legal), beside hallucination,"
        " policy, tone and wrong_tool; each 1-40 of a-z, 0-9, '_' or '-'.",
        pattern=r"^\s*([a-z0-9_][a-z0-9_-]{0,39}\s*(,\s*[a-z0-9_][a-z0-9_-]{0,39}\s*)*)?$",
    )
    flusso_review_hash_key: SecretStr | None = Field(
        default=None, description="Key of the HMAC that turns personal data found in review notes and corrected"
        " drafts into tokens; unset: derived from FLUSSO_SESSION_SECRET.",
    )
    # /v1/traces.
    flusso_pii_hash_key: SecretStr | None = Field(
        default=None,
        description="Server secret of /v1/traces: per-tenant hashing and staging-encryption keys are derived from"
        " it. Embedded mode generates one into FLUSSO_DATA_DIR; with DATABASE_URL and none, /v1/traces answers 501.",
    )
    flusso_prices_file: Path | None = Field(
        default=None, description="LLM price table (YAML) for trace costs; unset: the shipped config/prices.yaml."
    )
    flusso_trace_quiet_seconds: float = Field(
        default=10.0, gt=0, description="A trace is assembled once its root ended and no span arrived for this long."
    )
    flusso_trace_max_age_seconds: float = Field(
        default=600.0, gt=0, description="A trace still open this long after its first span is assembled as it is"
        " (outcome.complete=false without its root).",
    )
    flusso_trace_late_window_seconds: float = Field(
        default=600.0, ge=0, description="Spans arriving this long after assembly re-assemble the trace (same log);"
        " later ones are refused and counted.",
    )
    flusso_trace_max_spans: int = Field(default=10_000, ge=1, description="Spans staged per trace; beyond: refused.")
    flusso_trace_max_bytes: int = Field(
        default=16 * 1024 * 1024, ge=1024, description="Sealed span bytes staged per trace; beyond: refused."
    )
    flusso_trace_max_open_traces: int = Field(
        default=100_000, ge=1, description="Traces open (not assembled yet) per tenant; spans of new traces beyond"
        " it are refused.",
    )
    flusso_trace_max_staged_mb_per_tenant: float = Field(
        default=1024.0, ge=0, description="Sealed span bytes (MB) of one tenant's traces waiting for assembly; spans"
        " beyond it are refused (cap_tenant_bytes) until assembly catches up. 0 turns the quota off.",
    )
    flusso_trace_assembly_seconds: float = Field(
        default=1.0, gt=0, description="How often the trace-assembly job looks for due traces."
    )
    # Alerts.
    flusso_alert_interval_s: float = Field(
        default=60.0, ge=0.0, le=86400.0,
        description="How often alert rules are evaluated and due webhooks sent (one leader across processes);"
        " 0 turns alert evaluation off.",
    )
    flusso_webhook_allow: str = Field(
        default="",
        description="Comma-separated webhook targets allowed: host[:port] or CIDR (e.g. hooks.example.com:443,"
        " 10.0.0.0/8), checked on the resolved address at send time. Empty: webhooks are off.",
    )
    flusso_webhook_timeout_s: float = Field(
        default=10.0, gt=0, le=300,
        description="Total time one webhook attempt may take (connect, send, response headers and body together);"
        " beyond it the attempt fails and is retried later with backoff.",
    )
    flusso_public_url: str | None = Field(
        default=None, description="The viewer's public base URL (e.g. https://obs.example.com), for links in alerts.",
    )
    flusso_alert_secret_key: SecretStr | None = Field(
        default=None,
        description="Key from which every alert rule's webhook signing secret is derived (never stored in the"
        " database). When unset, one is generated and kept in the data dir; replicas must share it.",
    )
    # Online evaluations (docs/evaluations.md).
    flusso_eval_interval_s: float = Field(
        default=30.0, ge=0.0, le=86400.0,
        description="How often the evaluation job scores new logs (one leader across processes); 0 turns it off.",
    )
    flusso_judge_url: str | None = Field(
        default=None,
        description="OpenAI-compatible chat completions URL of the LLM judge (e.g."
        " https://api.openai.com/v1/chat/completions). Unset: judge evaluators are skipped.",
    )
    flusso_judge_model: str = Field(default="gpt-4o-mini", description="The judge's model name.")
    flusso_judge_api_key: SecretStr | None = Field(
        default=None, description="Bearer key of the judge endpoint (sent only there).",
    )
    flusso_judge_timeout_s: float = Field(
        default=30.0, gt=0, le=600, description="Total time one judge attempt may take; then it is retried.",
    )
    flusso_judge_concurrency: int = Field(default=16, ge=1, le=256, description="Judge calls in flight at most.")
    flusso_judge_retries: int = Field(default=3, ge=0, le=10, description="Retries of a failed judge call (backoff).")
    flusso_judge_usd_per_input_mtok: float = Field(
        default=0.15, ge=0, description="The judge's price per million input tokens (for the cost cap).",
    )
    flusso_judge_usd_per_output_mtok: float = Field(
        default=0.6, ge=0, description="The judge's price per million output tokens (for the cost cap).",
    )
    flusso_eval_retry_attempts: int = Field(
        default=4, ge=1, le=20,
        description="Attempts of a judge evaluation that ended in an `error` (the endpoint failed after the"
        " in-call retries), counting the first: later runs of the evaluation job try it again until then.",
    )
    flusso_eval_retry_backoff_s: float = Field(
        default=300.0, ge=1.0, le=86400.0,
        description="Wait before the first retry of an `error` evaluation; doubled after every failed attempt.",
    )
    # Erasure and retention (docs/privacy.md).
    flusso_receipt_key: SecretStr | None = Field(
        default=None, description="Key of the HMAC-SHA256 that signs erasure and retention receipts (flusso-obs"
        " erasures verify checks it). Unset: erasures are refused (501) and retention runs are not signed.",
    )
    flusso_max_erasure_bytes: int = Field(
        default=4 * 1024 * 1024, ge=1024, description="Body limit of POST /api/v1/erasures (10,000 ticket ids are"
        " ~200 KB): 413 before reading.",
    )
    flusso_retention_interval_s: float = Field(
        default=3600.0, ge=0.0, description="How often tenants' own retention (tenants set --retention-days) runs;"
        " 0 turns the job off.",
    )
    flusso_bootstrap_client_id: str | None = Field(default=None, description="Tenant created at start (compose).")
    flusso_bootstrap_api_key: SecretStr | None = Field(
        default=None, description="Ingest key for the bootstrap tenant, stored hashed at start (compose)."
    )
    flusso_bootstrap_admin_email: str | None = Field(default=None, description="Provider login created at start.")
    flusso_bootstrap_admin_password: SecretStr | None = Field(default=None,
                                                     description="Its password (stored argon2-hashed).")

    @field_validator("flusso_grpc_tls_cert", "flusso_grpc_tls_key", mode="before")
    @classmethod
    def _empty_path_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @model_validator(mode="after")
    def _grpc_tls_pair(self) -> ServerSettings:
        if (self.flusso_grpc_tls_cert is None) != (self.flusso_grpc_tls_key is None):
            raise ValueError("set both FLUSSO_GRPC_TLS_CERT and FLUSSO_GRPC_TLS_KEY, or neither")
        return self

    @field_validator("flusso_cookie_secure", mode="before")
    @classmethod
    def _cookie_secure_words(cls, value: object) -> object:
        if isinstance(value, bool):
            return "true" if value else "false"
        return value.strip().lower() if isinstance(value, str) else value
