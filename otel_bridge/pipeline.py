"""The pipeline: what turns one finished ticket into one shipped log (redactor + builder +
shipper), built from settings by ``build_pipeline``. Immutable: configure() replaces it whole;
the worker reads the current one for each ticket it builds (docs/client.md says which tickets
finish on which pipeline).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from opentelemetry.sdk._logs.export import LogRecordExporter
from opentelemetry.sdk.resources import Resource

from config.bridge import BridgeSettings
from otel_bridge.assemble import build_workflow_log, checked_for_shipping
from otel_bridge.budget import MemoryBudget
from otel_bridge.delivery import Delivery, ExporterTransport, OtlpTransport
from otel_bridge.errors import ConfigurationError
from otel_bridge.pii import DEV_KEY, Redactor
from otel_bridge.shipping import Shipper, build_otlp_exporter, resolve_endpoint, resolve_headers
from otel_bridge.spool import Spool, SpoolUnavailable, binding_of

logger = logging.getLogger(__name__)

DEV_ENVIRONMENTS = ("development", "dev", "test", "testing", "local")
# What was warned about once per process (reset by tests that check the warning).
warned: set[str] = set()
DEPRECATED_COUNTS = ("log_queue_size", "max_queued_spans", "max_buffered_spans")


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
                                 dropped_spans=dropped, content=self.settings.content)
        lost = checked_for_shipping(log)
        if lost:
            self.shipper.dropped_fields += len(lost)
            logger.warning("otel_bridge: ticket %s ships without %d field(s) the collector's schema would refuse: "
                           "%s", log["ticket_info"]["ticket_id"], len(lost), ", ".join(lost[:10]))
        if not log["outcome"]["complete"]:
            self.shipper.incomplete += 1
        self.shipper.emit(log, root)

    def counters(self) -> dict[str, int]:
        if self.shipper is None:
            return {"logs_emitted": 0, "logs_exported": 0, "export_failures": 0}
        return self.shipper.counters()

    def flush(self, timeout_seconds: float) -> bool:
        return True if self.shipper is None else self.shipper.force_flush(timeout_seconds)

    def shutdown(self, timeout_seconds: float, successor: Pipeline | None = None) -> bool:
        """Deliver within the deadline, then stop. Logs still waiting in memory move to
        ``successor`` when it sends to the same endpoint with the same key."""
        if self.shipper is None:
            return True
        heir = successor.shipper.delivery if successor is not None and successor.shipper is not None else None
        return self.shipper.shutdown(timeout_seconds, heir)


def build_pipeline(s: BridgeSettings, *, endpoint: str | None, api_key: str | None,
                   exporter: LogRecordExporter | None, budget: MemoryBudget | None = None) -> Pipeline:
    """Raises ConfigurationError when there is no PII_HASH_KEY and ENVIRONMENT was not set
    explicitly to development/test."""
    redactor = Redactor(resolve_hash_key(s), hex_chars=s.pii_token_hex_chars, max_string_chars=s.max_string_chars)
    ep = resolve_endpoint(endpoint, s)
    resource = Resource.create({"service.name": s.service_name or "flusso-workflow",
                                "deployment.environment.name": s.environment})
    warn_deprecated_counts(s)
    shipper = None
    if exporter is not None or ep.url:
        budget = budget or MemoryBudget(int(s.memory_max_mb * 1024 * 1024))
        shipper = _build_shipper(s, ep.url, api_key, exporter, budget, resource)
    else:
        _warn_no_endpoint()
    identification = {"client_id": s.client_id, "environment": s.environment,
                      "workflow_version": s.workflow_version, "service_name": s.service_name}
    return Pipeline(settings=s, resource=resource, redactor=redactor, identification=identification,
                    shipper=shipper, endpoint=ep.url, endpoint_source=ep.source)


def _build_shipper(s: BridgeSettings, url: str | None, api_key: str | None, exporter: LogRecordExporter | None,
                   budget: MemoryBudget, resource: Resource) -> Shipper:
    transport: OtlpTransport | ExporterTransport
    headers = resolve_headers(api_key, s)
    if exporter is None:
        assert url is not None
        transport = OtlpTransport(build_otlp_exporter(url, headers, s.export_timeout_seconds,
                                                      s.otel_exporter_otlp_protocol), s.export_timeout_seconds)
        binding = binding_of(url, headers)
    else:
        transport = ExporterTransport(exporter)
        binding = f"exporter-{id(exporter)}"
    spool = _open_spool(s, binding) if transport.encodes else None
    if s.spool_dir and not transport.encodes:
        logger.warning("otel_bridge: FLUSSO_SPOOL_DIR is ignored with configure(exporter=...): only the OTLP "
                       "exporter's requests can be spooled")
    delivery = Delivery(transport, budget=budget, binding=binding, batch_delay_s=s.log_batch_delay_millis / 1000,
                        max_age_s=s.retry_max_age_s, spool=spool, spool_commit_s=s.spool_fsync_ms / 1000,
                        max_queued=s.log_queue_size)
    return Shipper(delivery, encodes=transport.encodes, resource=resource, client_id=s.client_id)


def _open_spool(s: BridgeSettings, binding: str) -> Spool | None:
    """The spool, or None (memory) with one warning when the directory cannot hold one."""
    if not s.spool_dir:
        return None
    try:
        spool = Spool(s.spool_dir, binding, int(s.spool_max_mb * 1024 * 1024))
    except SpoolUnavailable as exc:
        logger.warning("otel_bridge: FLUSSO_SPOOL_DIR unusable (%s); workflow logs are kept in memory", exc)
        return None
    if spool.others:
        logger.warning("otel_bridge: the spool %s holds %d logs for another endpoint or API key; they are left "
                       "alone (a process configured with that endpoint and key sends them)", spool.directory,
                       spool.others)
    if spool.pending:
        logger.info("otel_bridge: the spool %s holds %d logs from a previous process; sending them",
                    spool.directory, spool.pending)
    return spool


def warn_deprecated_counts(s: BridgeSettings) -> None:
    """The count bounds keep working for one version, on top of the byte budget."""
    for name in DEPRECATED_COUNTS:
        if getattr(s, name) is not None and name not in warned:
            warned.add(name)
            message = (f"FLUSSO_{name.upper()} is deprecated and will be removed in the next "
                       "version: FLUSSO_MEMORY_MAX_MB bounds spans and logs in bytes")
            warnings.warn(message, DeprecationWarning, stacklevel=3)
            logger.warning("otel_bridge: %s", message)


def resolve_hash_key(s: BridgeSettings) -> str:
    """The HMAC key of the PII tokens. The built-in development key is public (tokens made
    with it are reversible by dictionary): it is used only when ENVIRONMENT was set
    explicitly (argument, environment variable or .env) to a development/test value, never
    because ENVIRONMENT fell back to its default."""
    if s.pii_hash_key and s.pii_hash_key.get_secret_value():
        return s.pii_hash_key.get_secret_value()
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
