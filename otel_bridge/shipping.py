"""Where the workflow log goes and how: a PRIVATE LoggerProvider (the global one is left to
the host) whose one processor hands each record to ``Delivery`` (retries, memory budget,
spool), which sends through the OTLP/HTTP log exporter (protobuf, gzip, X-API-Key). Endpoint
and key resolution follow docs/client.md."""

from __future__ import annotations

import copy
import json
import logging
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import unquote, urlsplit, urlunsplit

from opentelemetry import trace
from opentelemetry._logs import SeverityNumber
from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
from opentelemetry.sdk._logs import LoggerProvider, LogRecordProcessor, ReadableLogRecord
from opentelemetry.sdk.resources import Resource
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from config.bridge import BridgeSettings
from otel_bridge import attributes as A
from otel_bridge.assemble import finite
from otel_bridge.budget import LOG_OVERHEAD_BYTES
from otel_bridge.delivery import Delivery, Item

if TYPE_CHECKING:
    from otel_bridge.wire import OneShotExporter

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
    raw, configured = settings.otel_exporter_otlp_headers, settings.log_collector_api_key
    headers = parse_headers(raw.get_secret_value() if raw is not None else None)
    key = explicit_key or (configured.get_secret_value() if configured is not None else None)
    if key:
        headers["x-api-key"] = key
    return headers


class DeliveryProcessor(LogRecordProcessor):
    """The LoggerProvider's one processor: each emitted record becomes one delivery ``Item``
    (encoded here, on the worker thread, as a one-record OTLP request)."""

    def __init__(self, delivery: Delivery, encodes: bool) -> None:
        self.delivery = delivery
        self.encodes = encodes

    def on_emit(self, log_record: Any) -> None:
        try:
            api_record = copy.copy(log_record.log_record)
            api_record.context = Context()  # do not hold the emitting context
            readable = ReadableLogRecord(log_record=api_record, resource=log_record.resource,
                                         instrumentation_scope=log_record.instrumentation_scope,
                                         limits=log_record.limits)
            ended = min(time.time(), api_record.timestamp / 1e9) if api_record.timestamp else time.time()
            if self.encodes:
                data = encode_logs([readable]).SerializeToString()
                item = Item(data, ended, len(data) + LOG_OVERHEAD_BYTES)
            else:
                body = api_record.body
                size = (len(body) if isinstance(body, str | bytes) else 1024) + LOG_OVERHEAD_BYTES
                item = Item(b"", ended, size, record=readable)
            self.delivery.submit(item)
        except Exception:
            self.delivery.stats["encode_errors"] += 1
            logger.exception("otel_bridge: a workflow log could not be encoded; dropped")

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.delivery.flush(timeout_millis / 1000)


class Shipper:
    """Emits one OTel LogRecord per workflow log. ``emit`` runs on the bridge worker thread:
    it only serializes and enqueues (delivery's own thread does the HTTP)."""

    def __init__(self, delivery: Delivery, *, encodes: bool, resource: Resource, client_id: str | None):
        self.client_id = client_id
        self.delivery = delivery
        self.emitted = 0
        self.incomplete = 0  # logs built with complete: false (spans dropped)
        self.dropped_fields = 0  # fields the schema check dropped so that their ticket ships
        self.provider = LoggerProvider(resource=resource, shutdown_on_exit=False)
        self.provider.add_log_record_processor(DeliveryProcessor(delivery, encodes))
        self._logger = self.provider.get_logger("otel_bridge", "0.1.0")

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
        """Deliver what is pending; False if the deadline passed first (what is left is kept:
        retried later, or in the spool)."""
        return self.delivery.flush(timeout_seconds)

    def shutdown(self, timeout_seconds: float, successor: Delivery | None = None) -> bool:
        """Flush within the deadline, then stop; True when nothing was left undelivered."""
        return self.delivery.close(timeout_seconds, successor) == 0

    def counters(self) -> dict[str, int]:
        out = self.delivery.counters()
        out["logs_emitted"] = self.emitted
        out["logs_incomplete"] = self.incomplete
        out["dropped_fields"] = self.dropped_fields
        out.setdefault("logs_exported", 0)
        out.setdefault("export_failures", 0)
        return out


def build_otlp_exporter(endpoint: str, headers: Mapping[str, str], timeout_seconds: float,
                        protocol: str = "http/protobuf") -> OneShotExporter:
    """The exporter one delivery attempt goes through: OTLP/HTTP (protobuf, gzip) or, with
    OTEL_EXPORTER_OTLP_PROTOCOL=grpc, OTLP/gRPC (gzip; needs grpcio) with the same answers."""
    if protocol == "grpc":
        from otel_bridge.grpc_wire import GrpcLogWire

        return GrpcLogWire(endpoint, headers, timeout_seconds)
    from opentelemetry.exporter.otlp.proto.http import Compression

    from otel_bridge.wire import FlussoLogExporter

    return FlussoLogExporter(endpoint=endpoint, headers=dict(headers), timeout=timeout_seconds,
                             compression=Compression.Gzip)
