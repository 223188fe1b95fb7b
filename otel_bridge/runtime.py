"""configure(), flush(), shutdown(), stats(): the bridge's process-wide state.

Spans: the bridge's own spans come from a private TracerProvider whose sampler is ALWAYS_ON,
so every ticket yields a log whatever sampler the host uses. It is never the global provider
(its spans carry raw record.* payloads; no host processor may see them). If the host sets an
SDK TracerProvider globally, before configure() or after it, the bridge adds its span
processor to it too (the host's spans inside a ticket then appear in the log).
Logs: a private LoggerProvider per pipeline; the global one is never touched.

One worker lives from the first configure() to shutdown(). configure() builds a new
immutable Pipeline and swaps it in; the worker reads the current pipeline for each ticket
it builds. Tickets that ended before configure() was called go out on the old pipeline;
tickets still running finish on the new one (docs/client.md).
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk._logs.export import LogRecordExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanLimits, TracerProvider
from opentelemetry.sdk.trace.sampling import ALWAYS_ON
from pydantic import SecretStr

from config.bridge import BridgeSettings
from otel_bridge.budget import MemoryBudget
from otel_bridge.errors import BridgeError, ConfigurationError
from otel_bridge.pipeline import Pipeline, build_pipeline
from otel_bridge.processor import BridgeSpanProcessor, Worker

logger = logging.getLogger(__name__)

__all__ = ["BridgeError", "ConfigurationError", "BridgeState", "configure", "flush", "shutdown", "stats"]

# How long configure() waits for the worker to finish the tickets that ended before it.
_SWAP_TIMEOUT_SECONDS = 2.0


@dataclass(frozen=True)
class BridgeState:
    """What the decorators and the public functions read; replaced whole by configure()."""

    pipeline: Pipeline
    tracer: trace.Tracer
    worker: Worker
    joined_host_provider: bool

    @property
    def settings(self) -> BridgeSettings:
        return self.pipeline.settings

    @property
    def endpoint(self) -> str | None:
        return self.pipeline.endpoint


STATE: BridgeState | None = None
PROCESSOR = BridgeSpanProcessor()
# The pipeline the worker builds with: set by configure(), cleared by shutdown() only once
# the worker has drained (STATE is cleared first so that no new ticket starts).
_pipeline: Pipeline | None = None
_private_provider: TracerProvider | None = None
_host_providers_joined: set[int] = set()
_host_seen: object = None  # the global provider join_host_provider() last looked at
_join_lock = threading.Lock()
_lock = threading.Lock()
_atexit_registered = False
# One memory budget for the process (worker spans + delivery logs); its limit follows configure().
_budget = MemoryBudget(32 * 1024 * 1024)
# What had gone wrong (drops, rejections, incomplete logs) at the previous flush.
_bad_checkpoint = 0


def configure(settings: BridgeSettings | None = None, *, endpoint: str | None = None,
              api_key: str | None = None, client_id: str | None = None,
              environment: str | None = None, workflow_version: str | None = None,
              pii_hash_key: str | None = None, service_name: str | None = None,
              exporter: LogRecordExporter | None = None, **overrides: Any) -> BridgeState:
    """Set the bridge up. Explicit arguments win over ``settings`` (default: env + .env).

    ``endpoint`` may be the full ``/v1/logs`` URL or a base URL. ``exporter`` replaces the
    OTLP exporter (any OTel LogRecordExporter; for tests). Other keyword arguments override
    BridgeSettings fields by name (e.g. ``export_timeout_seconds=2``).

    Raises ConfigurationError when ENVIRONMENT is not development/test and no PII_HASH_KEY
    is set. Calling it again swaps in the new configuration: logs of tickets that already
    ended go out on the previous one, tickets still running finish on the new one.
    """
    s = _merge_settings(settings, dict(client_id=client_id, environment=environment,
                                       workflow_version=workflow_version, pii_hash_key=pii_hash_key,
                                       service_name=service_name, **overrides))
    _budget.limit = int(s.memory_max_mb * 1024 * 1024)
    new = build_pipeline(s, endpoint=endpoint, api_key=api_key, exporter=exporter, budget=_budget)
    previous = _swap_in(new)
    if previous is not None:
        _retire(previous, min(_SWAP_TIMEOUT_SECONDS, previous.settings.shutdown_timeout_seconds))
    state = STATE
    assert state is not None
    logger.info("otel_bridge: configured (endpoint %s from %s, environment %s, host provider joined: %s)",
                new.endpoint, new.endpoint_source, s.environment, state.joined_host_provider)
    return state


def _merge_settings(settings: BridgeSettings | None, overrides: dict[str, Any]) -> BridgeSettings:
    base = settings if settings is not None else BridgeSettings()
    # model_copy does not validate: a secret given as text is wrapped here, as validation would.
    updates = {k: SecretStr(v) if isinstance(v, str) and k in BridgeSettings.model_fields
               and "SecretStr" in str(BridgeSettings.model_fields[k].annotation) else v
               for k, v in overrides.items() if v is not None}
    return base.model_copy(update=updates) if updates else base


def _swap_in(new: Pipeline) -> Pipeline | None:
    """Make ``new`` the current pipeline (starting the worker on first use); returns the one
    it replaced. Tickets that ended before the call are built on the old pipeline first."""
    global STATE, _pipeline, _atexit_registered
    with _lock:
        previous = _pipeline
        worker = STATE.worker if STATE is not None else None
        if worker is not None:
            worker.flush(_SWAP_TIMEOUT_SECONDS)
        else:
            worker = Worker(_handle_trace, budget=_budget)
        worker.apply_limits(**_limits(new.settings))
        tracer, joined = _setup_tracing(new.resource)
        _pipeline = new
        STATE = BridgeState(pipeline=new, tracer=tracer, worker=worker, joined_host_provider=joined)
        _reset_checkpoint(worker)
        PROCESSOR.worker = worker
        if not _atexit_registered:
            _atexit_registered = True
            atexit.register(_at_exit)
    return previous


def _retire(old: Pipeline, timeout: float) -> None:
    """A log the worker was building on ``old`` when it was swapped out is emitted before
    ``old``'s exporter shuts down; pending logs are delivered within ``timeout``."""
    state = STATE
    if state is not None:
        state.worker.flush(timeout)
    if not old.shutdown(timeout, successor=_pipeline):
        logger.warning("otel_bridge: the replaced configuration did not deliver all its logs in %.1fs", timeout)


def _handle_trace(spans: list[Any], dropped: int) -> None:
    """Worker thread: the ticket's log is built on the pipeline current at this moment."""
    pipeline = _pipeline
    if pipeline is not None:
        pipeline.handle_trace(spans, dropped)


def _limits(s: BridgeSettings) -> dict[str, Any]:
    return dict(max_queued_spans=s.max_queued_spans, max_open_traces=s.max_open_traces,
                max_buffered_spans=s.max_buffered_spans, max_spans_per_trace=s.max_spans_per_trace,
                trace_ttl_seconds=s.trace_ttl_seconds, idle_wait_seconds=s.worker_poll_millis / 1000)


def _setup_tracing(resource: Resource) -> tuple[trace.Tracer, bool]:
    global _private_provider
    if _private_provider is None:
        # record.* payloads are events carrying one JSON string: no length cap (a host's
        # OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT would cut the JSON), and room for long ReACT loops.
        limits = SpanLimits(max_events=1024, max_attribute_length=SpanLimits.UNSET,
                            max_span_attribute_length=SpanLimits.UNSET, max_event_attributes=SpanLimits.UNSET)
        # Never made the global provider: its spans carry raw record.* payloads, and a
        # processor the host adds to the global provider would export them.
        _private_provider = TracerProvider(sampler=ALWAYS_ON, resource=resource, shutdown_on_exit=False,
                                           span_limits=limits)
        _private_provider.add_span_processor(PROCESSOR)
    return _private_provider.get_tracer("otel_bridge", "0.1.0"), join_host_provider()


def join_host_provider() -> bool:
    """Add the bridge's span processor (which only reads) to the global TracerProvider when it
    is an SDK one, so the host's spans inside a ticket are part of its log. Called by
    configure() and at the start of each ticket (cheap when nothing changed), so a provider
    the host sets after configure() is joined too. True when the host's provider is joined."""
    global _host_seen
    host = trace.get_tracer_provider()
    if host is not _host_seen:
        with _join_lock:
            if isinstance(host, TracerProvider) and host is not _private_provider \
                    and id(host) not in _host_providers_joined:
                _host_providers_joined.add(id(host))
                host.add_span_processor(PROCESSOR)
            _host_seen = host
    return isinstance(host, TracerProvider) and id(host) in _host_providers_joined


def flush(timeout_seconds: float | None = None) -> bool:
    """Deliver what is pending (built and exported) within the deadline. True only when all
    of it was acknowledged and nothing was dropped, rejected or left incomplete since the
    previous flush; otherwise False, with a warning saying what (and what stays spooled).
    Never raises; never waits longer than ``timeout_seconds`` (default:
    FLUSSO_SHUTDOWN_TIMEOUT_SECONDS)."""
    state = STATE
    if state is None:
        return True
    timeout = state.settings.shutdown_timeout_seconds if timeout_seconds is None else timeout_seconds
    deadline = time.monotonic() + timeout
    try:
        ok = state.worker.flush(timeout)
        ok = state.pipeline.flush(max(0.0, deadline - time.monotonic())) and ok
        return _truthful(state, ok, "flush")
    except Exception:
        logger.exception("otel_bridge: flush failed")
        return False


_BAD_PREFIXES = ("dropped_", "rejected_")
_BAD_KEYS = ("logs_incomplete", "trace_errors", "encode_errors")
# dropped_fields: the ticket was delivered, without a field the schema refused (warned about then).
_NOT_BAD = ("dropped_spans_total", "dropped_fields")


def _bad_total(counters: dict[str, int]) -> int:
    """Everything counted as not delivered whole: drops (spans, traces, logs), rejections by
    reason, incomplete logs, build errors."""
    return sum(v for k, v in counters.items()
               if (k.startswith(_BAD_PREFIXES) and k not in _NOT_BAD) or k in _BAD_KEYS)


def _reset_checkpoint(worker: Worker) -> None:
    """A new pipeline counts from zero; the worker's counters go on."""
    global _bad_checkpoint
    _bad_checkpoint = _bad_total(worker.counters())


def _truthful(state: BridgeState, delivered: bool, what: str) -> bool:
    """``delivered`` and nothing went wrong since the previous flush; a warning otherwise."""
    global _bad_checkpoint
    counters = state.worker.counters()
    counters.update(state.pipeline.counters())
    bad = _bad_total(counters)
    new_bad, _bad_checkpoint = max(0, bad - _bad_checkpoint), bad
    if delivered and not new_bad:
        return True
    wrong = {k: v for k, v in counters.items()
             if v and ((k.startswith(_BAD_PREFIXES) and k not in _NOT_BAD) or k in _BAD_KEYS)}
    left = counters.get("logs_pending", 0)
    spooled = counters.get("logs_spooled")
    logger.warning("otel_bridge: %s: NOT all delivered: %d logs not acknowledged yet%s; %d problems since the "
                   "last flush (totals: %s)", what, left,
                   f" ({spooled} kept in the spool {state.settings.spool_dir})" if spooled else "", new_bad, wrong)
    return False


def shutdown(timeout_seconds: float | None = None) -> bool:
    """Flush, then stop the worker and the exporter, within the deadline. Decorators keep
    working afterwards (without telemetry)."""
    global STATE, _pipeline
    with _lock:
        state, STATE = STATE, None
        PROCESSOR.worker = None
        if state is None:
            return True
        timeout = state.settings.shutdown_timeout_seconds if timeout_seconds is None else timeout_seconds
        deadline = time.monotonic() + timeout
        try:
            state.worker.stop(timeout)  # builds what is queued, on the current pipeline
            _pipeline = None
            ok = state.pipeline.shutdown(max(0.1, deadline - time.monotonic()))
            return _truthful(state, ok, "shutdown")
        except Exception:
            logger.exception("otel_bridge: shutdown failed")
            return False


def stats() -> dict[str, int]:
    """Counters of the running bridge (drops, traces handled, logs emitted); {} when it is
    not configured."""
    state = STATE
    if state is None:
        return {}
    out = state.worker.counters()
    out.update(state.pipeline.counters())
    return out


def _at_exit() -> None:
    shutdown()
