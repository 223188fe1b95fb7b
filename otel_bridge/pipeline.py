"""The pipeline: what turns one finished ticket into one shipped log (redactor + builder +
shipper), built from settings by ``build_pipeline``. Immutable: configure() replaces it whole;
the worker reads the current one for each ticket it builds (docs/client.md says which tickets
finish on which pipeline).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from opentelemetry.sdk._logs.export import LogRecordExporter
from opentelemetry.sdk.resources import Resource

from config.bridge import BridgeSettings
from otel_bridge.assemble import build_workflow_log
from otel_bridge.errors import ConfigurationError
from otel_bridge.pii import DEV_KEY, Redactor
from otel_bridge.shipping import Shipper, build_otlp_exporter, resolve_endpoint, resolve_headers

logger = logging.getLogger(__name__)

DEV_ENVIRONMENTS = ("development", "dev", "test", "testing", "local")
# What was warned about once per process (reset by tests that check the warning).
warned: set[str] = set()


@dataclass(frozen=True)
class Pipeline:
    settings: BridgeSettings
    resource: Resource
    redactor: Redactor
    identification: Mapping[str, str | None]
    shipper: Shipper | None  # None: no collector URL, logs are not built
    endpoint: str | None
    endpoint_source: str

    def handle_trace(self, spans: list[Any], dropped: int) -> None:
        """Build, redact and ship the log of one ticket (on the worker thread)."""
        if self.shipper is None:
            return
        root = next((sp for sp in spans if sp.parent is None), None)
        if root is None:
            return
        log = build_workflow_log(spans, identification=self.identification, redactor=self.redactor,
                                 dropped_spans=dropped)
        self.shipper.emit(log, root)

    def counters(self) -> dict[str, int]:
        if self.shipper is None:
            return {"logs_emitted": 0, "logs_exported": 0, "export_failures": 0}
        return {"logs_emitted": self.shipper.emitted, "logs_exported": self.shipper.exporter.exported,
                "export_failures": self.shipper.exporter.failures}

    def flush(self, timeout_seconds: float) -> bool:
        return True if self.shipper is None else self.shipper.force_flush(timeout_seconds)

    def shutdown(self, timeout_seconds: float) -> bool:
        return True if self.shipper is None else self.shipper.shutdown(timeout_seconds)


def build_pipeline(s: BridgeSettings, *, endpoint: str | None, api_key: str | None,
                   exporter: LogRecordExporter | None) -> Pipeline:
    """Raises ConfigurationError when there is no PII_HASH_KEY and ENVIRONMENT was not set
    explicitly to development/test."""
    redactor = Redactor(resolve_hash_key(s), hex_chars=s.pii_token_hex_chars, max_string_chars=s.max_string_chars)
    ep = resolve_endpoint(endpoint, s)
    resource = Resource.create({"service.name": s.service_name or "flusso-workflow",
                                "deployment.environment.name": s.environment})
    if exporter is None and ep.url:
        exporter = build_otlp_exporter(ep.url, resolve_headers(api_key, s), s.export_timeout_seconds)
    shipper = None
    if exporter is not None:
        shipper = Shipper(exporter, resource=resource, schedule_delay_millis=s.log_batch_delay_millis,
                          max_queue_size=s.log_queue_size, client_id=s.client_id)
    else:
        _warn_no_endpoint()
    identification = {"client_id": s.client_id, "environment": s.environment,
                      "workflow_version": s.workflow_version, "service_name": s.service_name}
    return Pipeline(settings=s, resource=resource, redactor=redactor, identification=identification,
                    shipper=shipper, endpoint=ep.url, endpoint_source=ep.source)


def resolve_hash_key(s: BridgeSettings) -> str:
    """The HMAC key of the PII tokens. The built-in development key is public (tokens made
    with it are reversible by dictionary): it is used only when ENVIRONMENT was set
    explicitly (argument, environment variable or .env) to a development/test value, never
    because ENVIRONMENT fell back to its default."""
    if s.pii_hash_key:
        return s.pii_hash_key
    explicit = "environment" in s.model_fields_set
    if not explicit or s.environment.lower() not in DEV_ENVIRONMENTS:
        got = f"ENVIRONMENT={s.environment!r}" if explicit else "ENVIRONMENT is not set"
        raise ConfigurationError(
            f"PII_HASH_KEY is not set and {got}: refusing to hash customer data with the public "
            "development key. Set PII_HASH_KEY to a long random secret (e.g. `python -c 'import "
            "secrets; print(secrets.token_hex(32))'`), or, on a development or test machine only, "
            "set ENVIRONMENT=development (or test)."
        )
    logger.warning("otel_bridge: PII_HASH_KEY not set; using the insecure development key "
                   "(ENVIRONMENT=%s)", s.environment)
    return DEV_KEY


def _warn_no_endpoint() -> None:
    if "no_endpoint" not in warned:
        warned.add("no_endpoint")
        logger.warning("otel_bridge: no collector URL (set LOG_COLLECTOR_URL or OTEL_EXPORTER_OTLP_"
                       "[LOGS_]ENDPOINT, or pass configure(endpoint=...)); workflow logs are not shipped")
