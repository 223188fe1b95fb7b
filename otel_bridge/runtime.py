"""configure(), flush(), shutdown(): the bridge's process-wide state.

Spans: the bridge's own spans come from a private TracerProvider whose sampler is ALWAYS_ON,
so every ticket yields a log whatever sampler the host uses. If the host has set an SDK
TracerProvider globally, the bridge adds its span processor to it too (the host's spans
inside a ticket then appear in the log); otherwise the private provider becomes the global
one. Logs: a private LoggerProvider; the global one is never touched.
"""

from __future__ import annotations

import atexit
import logging
import threading
from dataclasses import dataclass, field

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanLimits, TracerProvider
from opentelemetry.sdk.trace.sampling import ALWAYS_ON

from config.bridge import BridgeSettings
from otel_bridge.assemble import build_workflow_log
from otel_bridge.pii import DEV_KEY, Redactor
from otel_bridge.processor import BridgeSpanProcessor, Worker
from otel_bridge.shipping import Shipper, build_otlp_exporter, resolve_endpoint, resolve_headers

logger = logging.getLogger(__name__)

DEV_ENVIRONMENTS = ("development", "dev", "test", "testing", "local")


class BridgeError(Exception):
    """Base of the bridge's errors (raised only by configure(), never by a workflow)."""


class ConfigurationError(BridgeError):
    pass


@dataclass
class BridgeState:
    settings: BridgeSettings
    tracer: trace.Tracer
    worker: Worker
    shipper: Shipper | None
    redactor: Redactor
    identification: dict
    endpoint: str | None
    joined_host_provider: bool
    stats: dict = field(default_factory=dict)


STATE: BridgeState | None = None
PROCESSOR = BridgeSpanProcessor()
_private_provider: TracerProvider | None = None
_host_providers_joined: set[int] = set()
_lock = threading.Lock()
_atexit_registered = False
_warned_no_endpoint = False


def configure(settings: BridgeSettings | None = None, *, endpoint: str | None = None,
              api_key: str | None = None, client_id: str | None = None,
              environment: str | None = None, workflow_version: str | None = None,
              pii_hash_key: str | None = None, service_name: str | None = None,
              exporter=None, **overrides) -> BridgeState:
    """Set the bridge up. Explicit arguments win over ``settings`` (default: env + .env).

    ``endpoint`` may be the full ``/v1/logs`` URL or a base URL. ``exporter`` replaces the
    OTLP exporter (any OTel LogRecordExporter; for tests). Other keyword arguments override
    BridgeSettings fields by name (e.g. ``export_timeout_seconds=2``).

    Raises ConfigurationError when ENVIRONMENT is not development/test and no PII_HASH_KEY
    is set. Calling it again replaces the previous configuration (pending logs are flushed).
    """
    global STATE, _atexit_registered, _warned_no_endpoint
    base = settings if settings is not None else BridgeSettings()
    updates = {k: v for k, v in dict(client_id=client_id, environment=environment,
                                      workflow_version=workflow_version, pii_hash_key=pii_hash_key,
                                      service_name=service_name, **overrides).items() if v is not None}
    s = base.model_copy(update=updates) if updates else base

    key = s.pii_hash_key
    if not key:
        if s.environment.lower() not in DEV_ENVIRONMENTS:
            raise ConfigurationError(
                f"PII_HASH_KEY is required when ENVIRONMENT={s.environment!r} (only development/test "
                "may use the built-in insecure key). Set PII_HASH_KEY to a long random secret, "
                "e.g. `python -c 'import secrets; print(secrets.token_hex(32))'`."
            )
        logger.warning("otel_bridge: PII_HASH_KEY not set; using the insecure development key "
                       "(ENVIRONMENT=%s)", s.environment)
        key = DEV_KEY
    redactor = Redactor(key, hex_chars=s.pii_token_hex_chars, max_string_chars=s.max_string_chars)

    ep = resolve_endpoint(endpoint, s)
    resource = Resource.create({"service.name": s.service_name or "flusso-workflow",
                                "deployment.environment.name": s.environment})
    shipper = None
    if exporter is None and ep.url:
        exporter = build_otlp_exporter(ep.url, resolve_headers(api_key, s), s.export_timeout_seconds)
    if exporter is not None:
        shipper = Shipper(exporter, resource=resource, schedule_delay_millis=s.log_batch_delay_millis,
                          max_queue_size=s.log_queue_size, client_id=s.client_id)
    elif not _warned_no_endpoint:
        _warned_no_endpoint = True
        logger.warning("otel_bridge: no collector URL (set LOG_COLLECTOR_URL or OTEL_EXPORTER_OTLP_"
                       "[LOGS_]ENDPOINT, or pass configure(endpoint=...)); workflow logs are not shipped")

    identification = {
        "client_id": s.client_id,
        "environment": s.environment,
        "workflow_version": s.workflow_version,
        "service_name": s.service_name,
    }

    def handle_trace(spans: list, dropped: int) -> None:
        if shipper is None:
            return
        root = _root_of(spans)
        if root is None:
            return
        log = build_workflow_log(spans, identification=identification, redactor=redactor, dropped_spans=dropped)
        shipper.emit(log, root)

    worker = Worker(handle_trace, max_queued_spans=s.max_queued_spans, max_open_traces=s.max_open_traces,
                    max_buffered_spans=s.max_buffered_spans,
                    max_spans_per_trace=s.max_spans_per_trace, trace_ttl_seconds=s.trace_ttl_seconds,
                    idle_wait_seconds=s.worker_poll_millis / 1000, held=True)

    with _lock:
        previous = STATE
        if previous is not None:  # tickets in flight keep their log
            worker.follow(previous.worker)
        tracer, joined = _setup_tracing(resource)
        PROCESSOR.worker = worker
        STATE = BridgeState(settings=s, tracer=tracer, worker=worker, shipper=shipper, redactor=redactor,
                            identification=identification, endpoint=ep.url, joined_host_provider=joined)
        if not _atexit_registered:
            _atexit_registered = True
            atexit.register(_at_exit)
    if previous is None:
        worker.release()
    else:
        # Tickets in flight keep their spans: the old worker drains what it was handed (logs
        # of tickets that ended go out through the old shipper), then the new, still-held
        # worker takes over its buffers before it processes anything.
        timeout = min(2.0, previous.settings.shutdown_timeout_seconds)
        try:
            previous.worker.stop(timeout)
            worker.adopt(previous.worker)
        except Exception:
            logger.exception("otel_bridge: taking over the tickets in flight failed")
        finally:
            worker.release()
        _shutdown_state(previous, timeout)
    logger.info("otel_bridge: configured (endpoint %s from %s, environment %s, host provider joined: %s)",
                ep.url, ep.source, s.environment, joined)
    return STATE


def _root_of(spans):
    for sp in spans:
        if sp.parent is None:
            return sp
    return None


def _setup_tracing(resource: Resource) -> tuple[trace.Tracer, bool]:
    global _private_provider
    if _private_provider is None:
        # record.* payloads are events carrying one JSON string: no length cap (a host's
        # OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT would cut the JSON), and room for long ReACT loops.
        limits = SpanLimits(max_events=1024, max_attribute_length=SpanLimits.UNSET,
                            max_span_attribute_length=SpanLimits.UNSET, max_event_attributes=SpanLimits.UNSET)
        _private_provider = TracerProvider(sampler=ALWAYS_ON, resource=resource, shutdown_on_exit=False,
                                           span_limits=limits)
        _private_provider.add_span_processor(PROCESSOR)
    joined = False
    host = trace.get_tracer_provider()
    if isinstance(host, TracerProvider) and host is not _private_provider:
        if id(host) not in _host_providers_joined:
            _host_providers_joined.add(id(host))
            host.add_span_processor(PROCESSOR)
        joined = True
    elif not isinstance(host, TracerProvider):
        trace.set_tracer_provider(_private_provider)
    return _private_provider.get_tracer("otel_bridge", "0.1.0"), joined


def flush(timeout_seconds: float | None = None) -> bool:
    """Deliver what is pending (built and exported) within the deadline. True when all of it
    was exported and no export failed since the previous flush. Never raises; never waits
    longer than ``timeout_seconds`` (default: FLUSSO_SHUTDOWN_TIMEOUT_SECONDS)."""
    state = STATE
    if state is None:
        return True
    import time
    timeout = state.settings.shutdown_timeout_seconds if timeout_seconds is None else timeout_seconds
    deadline = time.monotonic() + timeout
    try:
        ok = state.worker.flush(timeout)
        if state.shipper is not None:
            ok = state.shipper.force_flush(max(0.0, deadline - time.monotonic())) and ok
        return ok
    except Exception:
        logger.exception("otel_bridge: flush failed")
        return False


def shutdown(timeout_seconds: float | None = None) -> bool:
    """Flush, then stop the worker and the exporter, within the deadline. Decorators keep
    working afterwards (without telemetry)."""
    global STATE
    with _lock:
        state, STATE = STATE, None
        PROCESSOR.worker = None
    if state is None:
        return True
    timeout = state.settings.shutdown_timeout_seconds if timeout_seconds is None else timeout_seconds
    return _shutdown_state(state, timeout)


def _shutdown_state(state: BridgeState, timeout: float) -> bool:
    import time
    deadline = time.monotonic() + timeout
    try:
        state.worker.stop(timeout)
        ok = True
        if state.shipper is not None:
            ok = state.shipper.shutdown(max(0.1, deadline - time.monotonic()))
        return ok
    except Exception:
        logger.exception("otel_bridge: shutdown failed")
        return False


def _at_exit() -> None:
    shutdown()
