"""Span processor (on the span-ending thread: enqueue only) and the background worker that
groups spans by trace, builds the workflow log, redacts it and hands it to the shipper.

Bounds: the shared memory budget (``budget``, FLUSSO_MEMORY_MAX_MB) in bytes for spans waiting
for the worker and spans held for tickets still running: the worker estimates each span's
bytes and turns what is free into ``max_queued_spans``, the one number the span-ending thread
compares with (a root span may exceed it by a headroom so a ticket's log survives a burst);
the deprecated counts (``max_queued_spans`` / ``max_buffered_spans`` given) cap on top of it.
``max_open_traces`` traces buffered, ``max_spans_per_trace`` spans per trace,
``trace_ttl_seconds`` for roots that never end.
Every drop is counted in ``Worker.stats`` and logged (rate-limited).
"""

from __future__ import annotations

import collections
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor

from otel_bridge import attributes as A
from otel_bridge.budget import SPAN_OVERHEAD_BYTES, MemoryBudget

logger = logging.getLogger(__name__)

_ROOT_HEADROOM = 1000
_RECENT_DONE = 4096
_MIN_QUEUED_SPANS = 256  # the queue bound never falls below this, whatever the budget says
_REFRESH_EVERY = 256  # spans drained between two refreshes of the budget-derived bound


class _Flush:
    __slots__ = ("done",)

    def __init__(self) -> None:
        self.done = threading.Event()


class _TraceBuffer:
    __slots__ = ("spans", "created", "dropped", "bytes")

    def __init__(self, now: float) -> None:
        self.spans: list[Any] = []
        self.created = now
        self.dropped = 0
        self.bytes = 0


class Worker:
    """Owns the span queue and the per-trace buffers. ``handle_trace(spans, dropped)`` is
    called on the worker thread with the finished spans of one ticket. One worker lives as
    long as the bridge is configured: configure() changes what ``handle_trace`` builds with
    (the pipeline) and the limits (``apply_limits``), never the worker."""

    def __init__(self, handle_trace: Callable[[list[Any], int], None], *, max_queued_spans: int | None = None,
                 max_open_traces: int = 1000, max_spans_per_trace: int = 500,
                 max_buffered_spans: int | None = None,
                 trace_ttl_seconds: float = 600.0, idle_wait_seconds: float = 0.1,
                 budget: MemoryBudget | None = None):
        self._handle_trace = handle_trace
        self.budget = budget or MemoryBudget(32 * 1024 * 1024)
        self._span_cost_avg = float(SPAN_OVERHEAD_BYTES)
        self.apply_limits(max_queued_spans=max_queued_spans, max_open_traces=max_open_traces,
                          max_spans_per_trace=max_spans_per_trace, max_buffered_spans=max_buffered_spans,
                          trace_ttl_seconds=trace_ttl_seconds, idle_wait_seconds=idle_wait_seconds)
        self.stats: collections.Counter[str] = collections.Counter()
        self._last_drop_log = 0.0
        self._stopped = False
        self._init_state()
        if hasattr(os, "register_at_fork"):
            ref = weakref.WeakMethod(self._after_fork_in_child)
            os.register_at_fork(after_in_child=lambda: _call_if_alive(ref))
        self._start_thread()

    def apply_limits(self, *, max_queued_spans: int | None, max_open_traces: int, max_spans_per_trace: int,
                     max_buffered_spans: int | None, trace_ttl_seconds: float, idle_wait_seconds: float) -> None:
        """Set the bounds (each is one attribute write: safe while spans flow). A None count
        bound: the memory budget alone decides."""
        self.queued_cap = max_queued_spans
        self.max_open_traces = max_open_traces
        self.max_spans_per_trace = max_spans_per_trace
        self.max_buffered_spans = max_buffered_spans
        self.trace_ttl_seconds = trace_ttl_seconds
        self.idle_wait_seconds = idle_wait_seconds
        self.max_queued_spans = max_queued_spans or max(_MIN_QUEUED_SPANS, 8192)
        self._set_wake_marks()

    def _set_wake_marks(self) -> None:
        self._wake_at = max(1, min(self.max_queued_spans, 16384) // 4)
        self._yield_below = max(1, min(self.max_queued_spans, 16384) // 8)

    def refresh_budget(self) -> None:
        """Worker thread: publish the spans' bytes and turn what the budget leaves free into
        the queue bound the span-ending thread reads."""
        budget, avg = self.budget, max(1.0, self._span_cost_avg)
        queued = len(self._queue)
        budget.span_bytes = self._buffered_bytes + int(queued * avg)
        room = int((budget.limit - _logs_share(budget) - self._buffered_bytes) // avg)
        bound = max(_MIN_QUEUED_SPANS, room)
        if self.queued_cap is not None:
            bound = min(bound, self.queued_cap)
        if bound != self.max_queued_spans:
            self.max_queued_spans = bound
            self._set_wake_marks()

    def _init_state(self) -> None:
        self._queue: collections.deque[Any] = collections.deque()
        self._wake = threading.Event()
        # trace_id -> monotonic start; read on span-ending threads (dict lookups are atomic).
        self.active: dict[int, float] = {}
        self._incomplete: dict[int, int] = {}
        self._buffers: dict[int, _TraceBuffer] = {}
        self._buffered = 0  # spans held in all buffers
        self._buffered_bytes = 0  # their estimated bytes
        self._done: collections.OrderedDict[int, None] = collections.OrderedDict()
        self._last_sweep = time.monotonic()

    def _start_thread(self) -> None:
        self._thread = threading.Thread(target=self._run, name="otel-bridge-worker", daemon=True)
        self._thread.start()

    def _after_fork_in_child(self) -> None:
        # The parent's buffers belong to the parent's tickets; the child starts clean.
        self._init_state()
        self.stats = collections.Counter()
        if not self._stopped:
            self._start_thread()

    # --- read by stats() and tests ---
    def counters(self) -> dict[str, int]:
        """Drop and progress counters, plus what is queued and open right now."""
        out = dict(self.stats)
        out["queued_spans"] = len(self._queue)
        out["open_traces"] = len(self.active)
        out["buffered_spans"] = self._buffered
        out["memory_bytes"] = self.budget.used()
        return out

    def buffered_traces(self) -> set[int]:
        """Trace ids whose spans are buffered, waiting for their root."""
        return set(self._buffers)

    # --- called on application threads: no I/O, no building, never raises ---
    def open_trace(self, trace_id: int) -> None:
        self.active[trace_id] = time.monotonic()

    def submit(self, span: Any) -> None:
        try:
            trace_id = span.context.trace_id
            if trace_id not in self.active:
                return
            is_root = span.parent is None
            limit = self.max_queued_spans + (_ROOT_HEADROOM if is_root else 0)
            if len(self._queue) >= limit:
                self.stats["dropped_spans_queue_full"] += 1
                self._incomplete[trace_id] = self._incomplete.get(trace_id, 0) + 1
                return
            self._queue.append(span)
            # No wake-up per ticket: waking a thread costs the span-ending thread a GIL
            # hand-off. The worker polls; it is woken only when the queue is filling up.
            if len(self._queue) > self._wake_at:
                self._wake.set()
        except Exception:  # never let telemetry break the span-ending thread
            self.stats["submit_errors"] += 1

    def flush(self, timeout_seconds: float) -> bool:
        """Wait until everything queued before this call has been processed."""
        if self._stopped or not self._thread.is_alive():
            return False
        marker = _Flush()
        self._queue.append(marker)
        self._wake.set()
        return marker.done.wait(max(0.0, timeout_seconds))

    def stop(self, timeout_seconds: float) -> None:
        if self._stopped:
            return
        self.flush(timeout_seconds)
        self._stopped = True
        self._wake.set()
        self._thread.join(max(0.0, timeout_seconds))

    # --- worker thread ---
    def _run(self) -> None:
        while not self._stopped:
            self._wake.wait(self.idle_wait_seconds)
            self._wake.clear()
            try:
                self._drain()
                self.refresh_budget()
                now = time.monotonic()
                if now - self._last_sweep >= min(1.0, self.trace_ttl_seconds / 2):
                    self._last_sweep = now
                    self._sweep(now)
            except Exception:
                logger.exception("otel_bridge: worker iteration failed; continuing")

    def _drain(self) -> None:
        q = self._queue
        n = 0
        while q:
            n += 1
            if n % _REFRESH_EVERY == 0:
                self.refresh_budget()
            item = q.popleft()
            if isinstance(item, _Flush):
                item.done.set()
                continue
            try:
                if self._add(item) and len(q) < self._yield_below:
                    # Hand the GIL back between tickets so the workflow's threads never wait
                    # behind a burst of log building. When the queue backs up (the process
                    # is saturated), drain at full speed instead so spans are not dropped.
                    time.sleep(0)
            except Exception:
                logger.exception("otel_bridge: handling span %s failed", getattr(item, "name", "?"))

    def _add(self, span: Any) -> bool:
        """Buffer one span; True when it was a root and its log was built."""
        trace_id = span.context.trace_id
        if trace_id in self._done:
            self.stats["late_spans"] += 1
            return False
        buf = self._buffers.get(trace_id)
        if buf is None:
            if len(self._buffers) >= self.max_open_traces:
                old_id, old = next(iter(self._buffers.items()))
                del self._buffers[old_id]
                self._buffered -= len(old.spans)
                self._buffered_bytes -= old.bytes
                self.active.pop(old_id, None)
                self._drop("dropped_traces_too_many_open", len(old.spans), old_id)
            buf = self._buffers[trace_id] = _TraceBuffer(time.monotonic())
        is_root = span.parent is None
        if not is_root and len(buf.spans) >= self.max_spans_per_trace:
            buf.dropped += 1
            self.stats["dropped_spans_per_trace_limit"] += 1
        elif not is_root and self._buffer_full():
            buf.dropped += 1
            self.stats["dropped_spans_buffer_full"] += 1
        else:
            if self._buffered & 7:  # measure one span in 8; the others cost the running average
                cost = int(self._span_cost_avg)
            else:
                cost = _span_cost(span)
                self._span_cost_avg += (cost - self._span_cost_avg) / 16
            buf.spans.append(span)
            buf.bytes += cost
            self._buffered += 1
            self._buffered_bytes += cost
        if is_root:
            del self._buffers[trace_id]
            self._buffered -= len(buf.spans)
            self._buffered_bytes -= buf.bytes
            self.active.pop(trace_id, None)
            self._done[trace_id] = None
            if len(self._done) > _RECENT_DONE:
                self._done.popitem(last=False)
            dropped = buf.dropped + self._incomplete.pop(trace_id, 0)
            try:
                self._handle_trace(buf.spans, dropped)
                self.stats["traces_handled"] += 1
            except Exception:
                self.stats["trace_errors"] += 1
                logger.exception("otel_bridge: building the log of trace %032x failed", trace_id)
            return True
        return False

    def _buffer_full(self) -> bool:
        cap = self.max_buffered_spans
        if cap is not None and self._buffered >= cap:
            return True
        budget = self.budget
        return self._buffered_bytes + _logs_share(budget) >= budget.limit

    def _sweep(self, now: float) -> None:
        ttl = self.trace_ttl_seconds
        for trace_id, buf in list(self._buffers.items()):
            if now - buf.created > ttl:
                del self._buffers[trace_id]
                self._buffered -= len(buf.spans)
                self._buffered_bytes -= buf.bytes
                self.active.pop(trace_id, None)
                self._drop("dropped_traces_ttl", len(buf.spans), trace_id)
        for trace_id, started in list(self.active.items()):
            if now - started > ttl and trace_id not in self._buffers:
                self.active.pop(trace_id, None)
                self.stats["dropped_traces_ttl"] += 1
        if len(self._incomplete) > 4 * self.max_open_traces:
            self._incomplete.clear()

    def _drop(self, reason: str, n_spans: int, trace_id: int) -> None:
        self.stats[reason] += 1
        self.stats["dropped_spans_total"] += n_spans
        now = time.monotonic()
        if now - self._last_drop_log > 10:
            self._last_drop_log = now
            logger.warning("otel_bridge: dropped trace %032x (%s, %d spans); totals %s",
                           trace_id, reason, n_spans, dict(self.stats))


def _logs_share(budget: MemoryBudget) -> int:
    """Waiting logs never squeeze spans below half the budget: during a long outage without a
    spool, the oldest logs are dropped (delivery) rather than every new ticket left incomplete."""
    return min(budget.log_bytes, budget.limit // 2)


def _span_cost(span: Any) -> int:
    """Estimated bytes one finished span holds: a fixed overhead plus the text it carries
    (record.* payloads are events with one JSON string)."""
    n = SPAN_OVERHEAD_BYTES + 64 * len(getattr(span, "attributes", None) or ())
    for event in getattr(span, "events", None) or ():
        n += 256
        for value in (event.attributes or {}).values():
            if isinstance(value, str):
                n += len(value)
    return n


def _call_if_alive(ref: weakref.WeakMethod[Callable[[], None]]) -> None:
    method = ref()
    if method is not None:
        method()


class BridgeSpanProcessor(SpanProcessor):
    """Registers ticket roots as they start and hands finished spans of open tickets to the
    worker. One instance is shared by the bridge's own TracerProvider and, when one exists,
    the host's; ``worker`` is set by configure() and cleared by shutdown()."""

    def __init__(self) -> None:
        self.worker: Worker | None = None

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        # A ticket is a trace whose root is a workflow span: its spans are kept from now on.
        if span.parent is None:
            w = self.worker
            if w is not None and span.attributes is not None and span.attributes.get(A.KIND) == A.KIND_WORKFLOW:
                w.open_trace(span.context.trace_id)

    def on_end(self, span: ReadableSpan) -> None:
        w = self.worker
        if w is not None:
            w.submit(span)

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        w = self.worker
        return True if w is None else w.flush(timeout_millis / 1000)
