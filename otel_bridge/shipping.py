"""Where the workflow log goes and how: a PRIVATE LoggerProvider (the global one is left to
the host), the OTel batch log processor and the OTLP/HTTP log exporter (protobuf, gzip,
X-API-Key). Endpoint and key resolution follow docs/client.md."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple
from urllib.parse import unquote, urlsplit, urlunsplit

from opentelemetry import trace
from opentelemetry._logs import SeverityNumber
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor, LogRecordExporter, LogRecordExportResult
from opentelemetry.sdk.resources import Resource
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from config.bridge import BridgeSettings
from otel_bridge import attributes as A
from otel_bridge.assemble import finite

logger = logging.getLogger(__name__)

LOGS_PATH = "/v1/logs"
LEGACY_PATH = "/api/v1/logs"


_orjson: Any
try:  # optional speed-up (docs/benchmarks-bridge.md); orjson writes NaN/inf as null, as we want
    import orjson as _orjson
except ImportError:  # pragma: no cover - orjson ships with the server extra only
    _orjson = None


def dumps_log(log: dict[str, Any]) -> str:
    """The log as compact UTF-8 JSON text; NaN/inf (not JSON) become null."""
    if _orjson is not None:
        try:
            return _orjson.dumps(log).decode("utf-8")
        except TypeError:  # e.g. an int beyond 64 bits: fall back to the stdlib
            pass
    try:
        return json.dumps(log, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except ValueError:
        return json.dumps(finite(log), ensure_ascii=False, separators=(",", ":"), allow_nan=False)


class Endpoint(NamedTuple):
    url: str | None
    source: str  # which setting it came from, for the startup log line


def logs_url_from_base(url: str) -> str:
    """A base URL, the full /v1/logs URL or the seed's .../api/v1/logs form -> /v1/logs URL."""
    parts = urlsplit(url.strip())
    path = parts.path.rstrip("/")
    if path.endswith(LOGS_PATH) and not path.endswith(LEGACY_PATH):
        new_path = path
    else:
        if path.endswith(LEGACY_PATH):
            path = path[: -len(LEGACY_PATH)]
        new_path = path + LOGS_PATH
    return urlunsplit((parts.scheme, parts.netloc, new_path, parts.query, parts.fragment))


def resolve_endpoint(explicit: str | None, settings: BridgeSettings) -> Endpoint:
    """configure(endpoint=) -> OTEL_EXPORTER_OTLP_LOGS_ENDPOINT (as is) ->
    OTEL_EXPORTER_OTLP_ENDPOINT + /v1/logs -> LOG_COLLECTOR_URL (a base URL)."""
    if explicit:
        return Endpoint(logs_url_from_base(explicit), "configure(endpoint=)")
    if settings.otel_exporter_otlp_logs_endpoint:
        return Endpoint(settings.otel_exporter_otlp_logs_endpoint.strip(), "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT")
    if settings.otel_exporter_otlp_endpoint:
        base = settings.otel_exporter_otlp_endpoint.strip().rstrip("/")
        return Endpoint(base + LOGS_PATH, "OTEL_EXPORTER_OTLP_ENDPOINT")
    if settings.log_collector_url:
        return Endpoint(logs_url_from_base(settings.log_collector_url), "LOG_COLLECTOR_URL")
    return Endpoint(None, "none")


def parse_headers(raw: str | None) -> dict[str, str]:
    """OTEL_EXPORTER_OTLP_HEADERS: ``k1=v1,k2=v2`` with URL-encoded values."""
    out: dict[str, str] = {}
    for item in (raw or "").split(","):
        if "=" not in item:
            continue
        k, v = item.split("=", 1)
        if k.strip():
            out[unquote(k.strip()).lower()] = unquote(v.strip())
    return out


def resolve_headers(explicit_key: str | None, settings: BridgeSettings) -> dict[str, str]:
    """Headers to send: OTEL_EXPORTER_OTLP_HEADERS, with X-API-Key from configure(api_key=)
    or LOG_COLLECTOR_API_KEY taking precedence over one given there."""
    headers = parse_headers(settings.otel_exporter_otlp_headers)
    key = explicit_key or settings.log_collector_api_key
    if key:
        headers["x-api-key"] = key
    return headers


class CountingExporter(LogRecordExporter):
    """Wraps the real exporter: counts exported logs and failed exports (for stats() and
    for flush()/shutdown() to say whether everything was delivered). Never raises."""

    def __init__(self, inner: LogRecordExporter) -> None:
        self.inner = inner
        self.exported = 0
        self.failures = 0

    def export(self, batch: Sequence[Any]) -> LogRecordExportResult:
        try:
            result = self.inner.export(batch)
        except Exception:
            logger.exception("otel_bridge: the log exporter raised; %d logs dropped", len(batch))
            result = LogRecordExportResult.FAILURE
        if result == LogRecordExportResult.SUCCESS:
            self.exported += len(batch)
        else:
            self.failures += 1
            logger.warning("otel_bridge: exporting %d workflow logs failed; they are dropped", len(batch))
        return result

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        try:
            return self.inner.force_flush(timeout_millis)
        except Exception:
            logger.exception("otel_bridge: exporter force_flush failed")
            return False

    def shutdown(self) -> None:
        try:
            self.inner.shutdown()
        except Exception:
            logger.exception("otel_bridge: exporter shutdown failed")


class Shipper:
    """Emits one OTel LogRecord per workflow log. ``emit`` runs on the bridge worker thread:
    it only serializes and enqueues (the batch processor's thread does the HTTP)."""

    def __init__(self, exporter: LogRecordExporter, *, resource: Resource, schedule_delay_millis: int,
                 max_queue_size: int, client_id: str | None):
        self.client_id = client_id
        self.exporter = CountingExporter(exporter)
        self._failures_checkpoint = 0
        self.provider = LoggerProvider(resource=resource, shutdown_on_exit=False)
        self.processor = BatchLogRecordProcessor(
            self.exporter,
            schedule_delay_millis=schedule_delay_millis,
            max_queue_size=max_queue_size,
            max_export_batch_size=min(512, max_queue_size),
        )
        self.provider.add_log_record_processor(self.processor)
        self._logger = self.provider.get_logger("otel_bridge", "0.1.0")
        self.emitted = 0

    def emit(self, log: dict[str, Any], root: Any) -> None:
        body = dumps_log(log)
        sc = root.context
        ctx = trace.set_span_in_context(
            NonRecordingSpan(SpanContext(sc.trace_id, sc.span_id, is_remote=False, trace_flags=TraceFlags(1)))
        )
        status = log["outcome"]["status"]
        attrs = {
            A.TICKET_ID: log["ticket_info"]["ticket_id"],
            A.STATUS: status,
            A.SCHEMA_VERSION: A.SCHEMA_VERSION_VALUE,
        }
        client_id = log["identification"].get("client_id") or self.client_id
        if client_id:
            attrs[A.CLIENT_ID] = client_id
        self._logger.emit(
            timestamp=root.end_time,
            observed_timestamp=time.time_ns(),
            context=ctx,
            severity_number=SeverityNumber.ERROR if status == "FAILED" else SeverityNumber.INFO,
            severity_text="ERROR" if status == "FAILED" else "INFO",
            body=body,
            attributes=attrs,
            event_name=A.LOG_EVENT_NAME,
        )
        self.emitted += 1

    def force_flush(self, timeout_seconds: float) -> bool:
        """Export what is queued. False if the deadline passed first (a black-holed collector
        keeps the export thread busy; we never wait past the deadline) or if an export
        failed since the previous flush."""
        return _run_with_deadline(self.processor.force_flush, timeout_seconds, "flush") and self._no_new_failures()

    def shutdown(self, timeout_seconds: float) -> bool:
        # The SDK's shutdown has no deadline of its own (it waits on a busy export): ours does.
        return _run_with_deadline(self.processor.shutdown, timeout_seconds, "shutdown") and self._no_new_failures()

    def _no_new_failures(self) -> bool:
        failures = self.exporter.failures
        ok = failures == self._failures_checkpoint
        self._failures_checkpoint = failures
        return ok


def _run_with_deadline(fn: Callable[[], object], timeout_seconds: float, what: str) -> bool:
    done = threading.Event()

    def target() -> None:
        try:
            fn()
        except Exception:
            logger.exception("otel_bridge: log exporter %s failed", what)
        finally:
            done.set()

    try:
        threading.Thread(target=target, name=f"otel-bridge-{what}", daemon=True).start()
    except RuntimeError:  # interpreter shutting down: no new threads; do it inline
        target()
    ok = done.wait(max(0.0, timeout_seconds))
    if not ok:
        logger.warning("otel_bridge: log exporter %s did not finish within %.1fs; pending logs may be lost",
                       what, timeout_seconds)
    return ok


def build_otlp_exporter(endpoint: str, headers: Mapping[str, str], timeout_seconds: float) -> LogRecordExporter:
    from opentelemetry.exporter.otlp.proto.http import Compression
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter

    return OTLPLogExporter(endpoint=endpoint, headers=dict(headers), timeout=timeout_seconds,
                           compression=Compression.Gzip)
