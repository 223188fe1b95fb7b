"""Settings of the client library (otel_bridge).

Resolution order for every value: explicit ``configure()`` argument, then this class
(environment variables, then a ``.env`` file in the working directory), then the default.
The seed's names (CLIENT_ID, LOG_COLLECTOR_URL, LOG_COLLECTOR_API_KEY, ENVIRONMENT,
WORKFLOW_VERSION) are kept so an existing Flusso deployment needs no new variables.
Secrets (PII_HASH_KEY, LOG_COLLECTOR_API_KEY, OTEL_EXPORTER_OTLP_HEADERS) are SecretStr: masked in
repr, str and logs of the settings.
"""

from __future__ import annotations

from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def _env(*names: str) -> AliasChoices:
    return AliasChoices(*names)


class BridgeSettings(BaseSettings):
    """Everything the bridge reads from the environment. Units live in the names."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        case_sensitive=False,
        populate_by_name=True,
    )

    # --- identification (the seed's names) ---
    client_id: str | None = Field(None, validation_alias=_env("CLIENT_ID", "client_id"))
    environment: str = Field("development", validation_alias=_env("ENVIRONMENT", "environment"))
    workflow_version: str | None = Field(
        None, validation_alias=_env("WORKFLOW_VERSION", "workflow_version")
    )
    service_name: str | None = Field(
        None, validation_alias=_env("OTEL_SERVICE_NAME", "service_name")
    )

    # --- where logs go ---
    log_collector_url: str | None = Field(
        None, validation_alias=_env("LOG_COLLECTOR_URL", "log_collector_url")
    )
    log_collector_api_key: SecretStr | None = Field(
        None, validation_alias=_env("LOG_COLLECTOR_API_KEY", "log_collector_api_key")
    )
    # A read-scope key: otel_bridge.experiments fetches dataset items with it (docs/experiments.md).
    log_collector_read_key: SecretStr | None = Field(
        None, validation_alias=_env("LOG_COLLECTOR_READ_KEY", "log_collector_read_key")
    )
    otel_exporter_otlp_logs_endpoint: str | None = Field(
        None,
        validation_alias=_env("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", "otel_exporter_otlp_logs_endpoint"),
    )
    otel_exporter_otlp_endpoint: str | None = Field(
        None, validation_alias=_env("OTEL_EXPORTER_OTLP_ENDPOINT", "otel_exporter_otlp_endpoint")
    )
    otel_exporter_otlp_headers: SecretStr | None = Field(  # may carry the key
        None, validation_alias=_env("OTEL_EXPORTER_OTLP_HEADERS", "otel_exporter_otlp_headers")
    )
    otel_exporter_otlp_protocol: Literal["http/protobuf", "grpc"] = Field(
        "http/protobuf",
        validation_alias=_env("OTEL_EXPORTER_OTLP_LOGS_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL",
                              "otel_exporter_otlp_protocol"),
    )

    @field_validator("otel_exporter_otlp_protocol", mode="before")
    @classmethod
    def _protocol_word(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    # --- privacy ---
    pii_hash_key: SecretStr | None = Field(None, validation_alias=_env("PII_HASH_KEY", "pii_hash_key"))
    pii_token_hex_chars: int = Field(
        12, ge=12, le=64, validation_alias=_env("FLUSSO_PII_TOKEN_HEX_CHARS", "pii_token_hex_chars")
    )
    max_string_chars: int = Field(
        4000, ge=64, validation_alias=_env("FLUSSO_MAX_STRING_CHARS", "max_string_chars")
    )
    # hash: a ticket's texts (subject, description, body, messages) become one token each;
    # scrub: they are kept, every personal value in them replaced by its token.
    content: Literal["hash", "scrub"] = Field("hash", validation_alias=_env("FLUSSO_CONTENT", "content"))

    # --- shipping and bounds ---
    export_timeout_seconds: float = Field(
        10.0, gt=0, validation_alias=_env("FLUSSO_EXPORT_TIMEOUT_SECONDS", "export_timeout_seconds")
    )
    log_batch_delay_millis: int = Field(
        200, ge=1, validation_alias=_env("FLUSSO_LOG_BATCH_DELAY_MILLIS", "log_batch_delay_millis")
    )
    worker_poll_millis: int = Field(
        100, ge=1, le=5000, validation_alias=_env("FLUSSO_WORKER_POLL_MILLIS", "worker_poll_millis")
    )
    # Deprecated count bounds (one version): unset, FLUSSO_MEMORY_MAX_MB bounds these in bytes;
    # set, they still cap the count on top of it, with a deprecation warning.
    log_queue_size: int | None = Field(
        None, ge=1, validation_alias=_env("FLUSSO_LOG_QUEUE_SIZE", "log_queue_size")
    )
    max_queued_spans: int | None = Field(
        None, ge=10, validation_alias=_env("FLUSSO_MAX_QUEUED_SPANS", "max_queued_spans")
    )
    max_buffered_spans: int | None = Field(
        None, ge=10, validation_alias=_env("FLUSSO_MAX_BUFFERED_SPANS", "max_buffered_spans")
    )
    max_open_traces: int = Field(
        1000, ge=1, validation_alias=_env("FLUSSO_MAX_OPEN_TRACES", "max_open_traces")
    )
    max_spans_per_trace: int = Field(
        500, ge=2, validation_alias=_env("FLUSSO_MAX_SPANS_PER_TRACE", "max_spans_per_trace")
    )
    trace_ttl_seconds: float = Field(
        600.0, gt=0, validation_alias=_env("FLUSSO_TRACE_TTL_SECONDS", "trace_ttl_seconds")
    )
    shutdown_timeout_seconds: float = Field(
        5.0, gt=0, validation_alias=_env("FLUSSO_SHUTDOWN_TIMEOUT_SECONDS", "shutdown_timeout_seconds")
    )

    # --- delivery: retries, memory budget, write-ahead spool (docs/client.md "Delivery") ---
    memory_max_mb: float = Field(
        32.0, gt=0, validation_alias=_env("FLUSSO_MEMORY_MAX_MB", "memory_max_mb")
    )
    retry_max_age_s: float = Field(
        86400.0, gt=0, validation_alias=_env("FLUSSO_RETRY_MAX_AGE_S", "retry_max_age_s")
    )
    spool_dir: str | None = Field(None, validation_alias=_env("FLUSSO_SPOOL_DIR", "spool_dir"))
    spool_fsync_ms: int = Field(
        200, ge=1, le=60000, validation_alias=_env("FLUSSO_SPOOL_FSYNC_MS", "spool_fsync_ms")
    )
    spool_max_mb: float = Field(
        256.0, gt=0, validation_alias=_env("FLUSSO_SPOOL_MAX_MB", "spool_max_mb")
    )
