"""At-least-once delivery of workflow logs (docs/client.md, "Delivery").

The bridge worker hands each finished log to ``Delivery.submit`` (an append under a short
lock: never blocks, never raises). ``otel-bridge-sender`` groups logs into requests and sends
them through a ``Transport``; a request that fails for a reason worth retrying is kept and
re-sent with exponential backoff and jitter until delivered or older than
FLUSSO_RETRY_MAX_AGE_S. 413 splits a request in halves; other 4xx (except 408/429) and the
collector's partial-success rejections are counted by reason and warned about (once per
reason per minute). Memory is bounded by the shared ``MemoryBudget``: beyond it the oldest
log waiting is dropped and counted.

With a spool (FLUSSO_SPOOL_DIR), ``otel-bridge-spool`` commits what was submitted every
FLUSSO_SPOOL_FSYNC_MS, and the sender sends only committed rows, deleting each once
acknowledged: a log is on disk before it is sent, and what was not acknowledged at exit (or at
a crash) is sent by the next process on the directory. A spool that fails (disk full, corrupt
file, read-only directory) degrades to memory with one warning.
"""

from __future__ import annotations

import collections
import logging
import os
import random
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from opentelemetry.sdk._logs.export import LogRecordExporter, LogRecordExportResult

from otel_bridge.budget import LOG_OVERHEAD_BYTES, MemoryBudget
from otel_bridge.spool import Spool
from otel_bridge.wire import DELIVERED, RETRY, SPLIT, OneShotExporter, Outcome, classify

logger = logging.getLogger(__name__)

MAX_BATCH_RECORDS = 512
MAX_BATCH_BYTES = 4 * 1024 * 1024  # serialized, before gzip; 413 halves a request anyway
BACKOFF_FIRST_S = 0.5
BACKOFF_CAP_S = 10.0
WARN_EVERY_S = 60.0


@dataclass(slots=True)
class Item:
    data: bytes  # a serialized ExportLogsServiceRequest holding this one log (b"" for a foreign exporter)
    created: float  # wall clock when its ticket ended: the spool commit deadline and the age limit count from it
    size: int  # bytes it holds in memory
    key: int = 0  # spool row id
    record: Any = None  # the SDK record, only for an exporter that is not ours


class Transport(Protocol):
    def send(self, items: list[Item]) -> Outcome: ...
    def shutdown(self) -> None: ...
    def after_fork(self) -> None: ...


class OtlpTransport:
    """Requests concatenated from one-record requests (protobuf merges repeated fields), one
    POST each through the real OTLP exporter's session."""

    encodes = True

    def __init__(self, exporter: OneShotExporter, timeout_seconds: float) -> None:
        self.exporter = exporter
        self.timeout_seconds = timeout_seconds

    def send(self, items: list[Item]) -> Outcome:
        return classify(self.exporter.send_once(b"".join(i.data for i in items), self.timeout_seconds))

    def shutdown(self) -> None:
        self.exporter.shutdown()

    def after_fork(self) -> None:
        self.exporter.reset_after_fork()


class ExporterTransport:
    """Any OTel LogRecordExporter (configure(exporter=...)): SUCCESS or a retry."""

    encodes = False

    def __init__(self, exporter: LogRecordExporter) -> None:
        self.exporter = exporter

    def send(self, items: list[Item]) -> Outcome:
        try:
            result = self.exporter.export([i.record for i in items])
        except Exception as exc:
            logger.debug("otel_bridge: the log exporter raised", exc_info=True)
            return Outcome(RETRY, reason="exporter_error", message=repr(exc))
        return Outcome(DELIVERED) if result == LogRecordExportResult.SUCCESS else Outcome(RETRY, reason="export_failed")

    def shutdown(self) -> None:
        try:
            self.exporter.shutdown()
        except Exception:
            logger.exception("otel_bridge: exporter shutdown failed")

    def after_fork(self) -> None:
        pass


class Delivery:
    def __init__(self, transport: Transport, *, budget: MemoryBudget, binding: str, batch_delay_s: float,
                 max_age_s: float, spool: Spool | None = None, spool_commit_s: float = 0.2,
                 max_queued: int | None = None) -> None:
        self.transport = transport
        self.budget = budget
        self.binding = binding
        self.batch_delay_s = batch_delay_s
        self.max_age_s = max_age_s
        self.spool = spool
        self.spool_commit_s = spool_commit_s
        self.max_queued = max_queued
        self.stats: collections.Counter[str] = collections.Counter()
        self._warned_at: dict[str, float] = {}
        self._stopped = False
        self._init_state()
        if hasattr(os, "register_at_fork"):
            ref = weakref.WeakMethod(self._after_fork_in_child)
            os.register_at_fork(after_in_child=lambda: _call_if_alive(ref))
        self._start_threads()

    def _init_state(self) -> None:
        self._lock = threading.Lock()
        self._inbox: collections.deque[Item] = collections.deque()
        self._committing: list[Item] = []
        self._batches: collections.deque[list[Item]] = collections.deque()
        self._cursor = 0  # highest spool row id taken by the sender
        self._wake = threading.Event()
        self._spool_wake = threading.Event()
        self._attempt = 0
        self._retry_at = 0.0
        self._backlog = False  # the last take was a full batch: take the next one at once

    def _start_threads(self) -> None:
        self._sender = threading.Thread(target=self._run_sender, name="otel-bridge-sender", daemon=True)
        self._sender.start()
        if self.spool is not None:
            self._spooler = threading.Thread(target=self._run_spool, name="otel-bridge-spool", daemon=True)
            self._spooler.start()

    def _after_fork_in_child(self) -> None:
        self._init_state()
        self.stats = collections.Counter()
        self.budget.log_bytes = 0
        if self.spool is not None:
            spool, self.spool = self.spool, None  # the spool module let go of the file (register_at_fork)
            logger.warning("otel_bridge: fork child: the spool %s stays with the parent process; this process "
                           "keeps its logs in memory (configure() after fork with its own FLUSSO_SPOOL_DIR)",
                           spool.directory)
        try:
            self.transport.after_fork()
        except Exception:
            logger.exception("otel_bridge: resetting the exporter after fork failed")
        if not self._stopped:
            self._start_threads()

    # --- the worker thread ---
    def submit(self, item: Item) -> None:
        with self._lock:
            self._inbox.append(item)
            self.budget.log_bytes += item.size
            self._enforce_bounds()
            full = len(self._inbox) >= MAX_BATCH_RECORDS
        if full:
            self._wake.set()

    def _enforce_bounds(self) -> None:
        """Under the lock: drop the oldest waiting logs beyond the memory budget (or the
        deprecated FLUSSO_LOG_QUEUE_SIZE)."""
        inbox, dropped = self._inbox, 0
        while len(inbox) > 1 and (self.budget.free() < 0 or (self.max_queued and len(inbox) > self.max_queued)):
            old = inbox.popleft()
            self.budget.log_bytes -= old.size
            dropped += 1
        if dropped:
            self.stats["dropped_logs_memory"] += dropped
            self._warn("dropped_logs_memory", f"{dropped} waiting logs dropped: the memory budget "
                       f"(FLUSSO_MEMORY_MAX_MB) is full; totals {self.counters()}")

    # --- read by stats(), flush() ---
    def pending(self) -> int:
        """Logs handed over and not yet delivered, rejected or dropped."""
        with self._lock:
            n = len(self._inbox) + len(self._committing)
            if self.spool is not None:
                return n + max(0, self.spool.pending)
            return n + sum(len(b) for b in self._batches)

    def counters(self) -> dict[str, int]:
        out = dict(self.stats)
        out["logs_pending"] = len(self._inbox) + len(self._committing) + sum(len(b) for b in self._batches)
        if self.spool is not None:
            out["logs_spooled"] = self.spool.pending
        return out

    def flush(self, timeout_seconds: float) -> bool:
        """Wait until everything handed over is settled (a retry due later is tried now)."""
        deadline = time.monotonic() + max(0.0, timeout_seconds)
        self._retry_at = 0.0
        self._spool_wake.set()
        self._wake.set()
        while self.pending() > 0:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.01)
        return True

    def close(self, timeout_seconds: float, successor: Delivery | None = None) -> int:
        """Flush within the deadline, then stop. Returns how many logs were not settled: in the
        spool (sent by the next process), handed to ``successor`` (same endpoint and key) or
        lost."""
        self.flush(timeout_seconds)
        self._stopped = True
        self._wake.set()
        self._spool_wake.set()
        if self.spool is not None:
            self._commit_inbox()
        elif successor is not None and successor is not self and successor.binding == self.binding:
            self._hand_over(successor)
        left = self.pending()
        spool = self.spool
        if left and spool is not None:
            logger.warning("otel_bridge: %d workflow logs not delivered yet; kept in the spool %s, the next "
                           "process on it sends them", left, spool.directory)
        elif left:
            self.stats["dropped_logs_at_exit"] += left
            logger.warning("otel_bridge: %d workflow logs not delivered; they are lost at exit (set "
                           "FLUSSO_SPOOL_DIR to keep them for the next process)", left)
        if spool is not None:
            spool.close()
        with self._lock:  # what is left is on disk or lost: it no longer holds memory here
            held = [i for b in self._batches for i in b] + list(self._inbox) + self._committing
            self.budget.log_bytes -= sum(i.size for i in held)
            self._batches.clear()
            self._inbox.clear()
            self._committing = []
        self.transport.shutdown()
        return left

    def _hand_over(self, successor: Delivery) -> None:
        with self._lock:
            items = [i for b in self._batches for i in b] + list(self._inbox)
            self._batches.clear()
            self._inbox.clear()
            self.budget.log_bytes -= sum(i.size for i in items)
        if items:
            successor.adopt(items)
            logger.info("otel_bridge: %d undelivered logs handed to the new configuration", len(items))

    def adopt(self, items: list[Item]) -> None:
        """Logs of a replaced configuration, older than ours: first in line."""
        with self._lock:
            self._inbox.extendleft(reversed(items))
            self.budget.log_bytes += sum(i.size for i in items)
            self._enforce_bounds()
        self._wake.set()

    # --- the spool thread ---
    def _run_spool(self) -> None:
        """Commit in groups, so that a log is on disk at most FLUSSO_SPOOL_FSYNC_MS after its
        ticket ended (``Item.created``): the wait counts from the oldest log waiting, and the
        thread looks every quarter interval (a deque check) while none is due."""
        period = self.spool_commit_s
        while not self._stopped and self.spool is not None:
            with self._lock:
                oldest = self._inbox[0].created if self._inbox else None
            wait = period / 4 if oldest is None else min(period / 4, oldest + period * 0.75 - time.time())
            if wait > 0 and not self._spool_wake.wait(wait):
                continue  # nothing due yet: look again
            self._spool_wake.clear()
            self._commit_inbox()

    def _commit_inbox(self) -> None:
        spool = self.spool
        with self._lock:
            if spool is None or not self._inbox:
                return
            self._committing = list(self._inbox)
            self._inbox.clear()
        try:
            _, trimmed = spool.insert((i.created, i.data) for i in self._committing)
        except Exception as exc:
            self._degrade(exc)
            return
        with self._lock:
            self.budget.log_bytes -= sum(i.size for i in self._committing)
            self.stats["spool_bytes_written"] += sum(len(i.data) for i in self._committing)
            self.stats["spool_commits"] += 1
            self._committing = []
        self._wake.set()
        if trimmed:
            self.stats["dropped_logs_spool_full"] += trimmed
            self._warn("dropped_logs_spool_full", f"{trimmed} oldest spooled logs dropped: the spool is over "
                       "FLUSSO_SPOOL_MAX_MB")

    def _degrade(self, exc: BaseException) -> None:
        """The spool failed: from now on logs wait in memory; rows already on disk stay there
        for the next process."""
        with self._lock:
            spool, self.spool = self.spool, None
            self._inbox.extendleft(reversed(self._committing))
            self._committing = []
        if spool is None:
            return
        self.stats["spool_failures"] += 1
        logger.warning("otel_bridge: the spool %s failed (%s); workflow logs are kept in memory from now on "
                       "(rows already on disk stay for the next process)", spool.directory, exc)
        try:
            spool.close()
        except Exception:
            pass

    # --- the sender thread ---
    def _run_sender(self) -> None:
        while not self._stopped:
            try:
                batch = self._next_batch()
                if batch:
                    self._attempt_batch(batch)
            except Exception:
                logger.exception("otel_bridge: delivery iteration failed; continuing")
                time.sleep(0.5)

    def _next_batch(self) -> list[Item] | None:
        if self._batches:
            wait = self._retry_at - time.monotonic()
            if wait > 0:
                self._wake.wait(min(wait, 1.0))
                self._wake.clear()
                return None
            return self._batches[0]
        if not self._backlog:
            self._wake.wait(self.batch_delay_s)
            self._wake.clear()
        items = self._take()
        self._backlog = items is not None and (len(items) >= MAX_BATCH_RECORDS
                                               or sum(i.size for i in items) >= MAX_BATCH_BYTES)
        return items

    def _take(self) -> list[Item] | None:
        spool = self.spool
        if spool is None:
            with self._lock:
                items: list[Item] = []
                size = 0
                while self._inbox and len(items) < MAX_BATCH_RECORDS and (not items or size < MAX_BATCH_BYTES):
                    item = self._inbox.popleft()
                    items.append(item)
                    size += item.size
                if items:
                    self._batches.append(items)
            return items or None
        try:
            rows = spool.take(self._cursor, MAX_BATCH_RECORDS, MAX_BATCH_BYTES)
        except Exception as exc:
            self._degrade(exc)
            return None
        if not rows:
            return None
        self._cursor = rows[-1].id
        items = [Item(r.data, r.created, len(r.data) + LOG_OVERHEAD_BYTES, key=r.id) for r in rows]
        with self._lock:
            self.budget.log_bytes += sum(i.size for i in items)
            self._batches.append(items)
        return items

    def _attempt_batch(self, batch: list[Item]) -> None:
        cutoff = time.time() - self.max_age_s
        fresh = [i for i in batch if i.created >= cutoff]
        if len(fresh) < len(batch):
            expired = [i for i in batch if i.created < cutoff]
            self._settle(expired, replace=fresh)
            self.stats["dropped_logs_expired"] += len(expired)
            self._warn("dropped_logs_expired", f"{len(expired)} logs dropped: undelivered for longer than "
                       f"FLUSSO_RETRY_MAX_AGE_S ({self.max_age_s:.0f}s)")
            if not fresh:
                return
        outcome = self.transport.send(fresh)
        if outcome.kind == RETRY:
            self._schedule_retry(outcome, len(fresh))
            return
        self._attempt = 0
        if outcome.kind == SPLIT and len(fresh) > 1:
            half = len(fresh) // 2
            self._settle([], replace=None, split=(fresh[:half], fresh[half:]))
            return
        if outcome.kind == DELIVERED:
            self.stats["logs_exported"] += len(fresh) - min(outcome.rejected, len(fresh))
            rejected = min(outcome.rejected, len(fresh))
        else:  # REJECTED, or SPLIT of a single log: too large for the collector
            rejected = len(fresh)
            self.stats["export_failures"] += 1
        if rejected:
            reason = "too_large" if outcome.kind == SPLIT else outcome.reason
            self._reject(rejected, reason, outcome.message)
        self._settle(fresh, replace=None)

    def _schedule_retry(self, outcome: Outcome, n: int) -> None:
        self._attempt += 1
        self.stats["export_failures"] += 1
        self.stats["export_retries"] += 1
        base = min(BACKOFF_CAP_S, BACKOFF_FIRST_S * 2 ** min(self._attempt - 1, 16))
        delay = base / 2 + random.uniform(0, base / 2)
        if outcome.retry_after_s is not None:
            delay = max(delay, outcome.retry_after_s)
        self._retry_at = time.monotonic() + delay
        self._warn(f"retry_{outcome.reason}", f"exporting {n} workflow logs failed ({outcome.reason}: "
                   f"{outcome.message or 'no answer'}); kept, retrying in {delay:.1f}s (attempt {self._attempt})")

    def _reject(self, n: int, reason: str, message: str) -> None:
        self.stats["logs_rejected"] += n
        self.stats[f"rejected_{reason}"] += n
        self._warn(f"rejected_{reason}", f"the collector rejected {n} workflow logs ({reason}); they are not "
                   f"retried: {message or 'no message'}")

    def _settle(self, done: list[Item], *, replace: list[Item] | None,
                split: tuple[list[Item], list[Item]] | None = None) -> None:
        """The head batch is finished with ``done``: drop it, or replace it by what is left
        (``replace``) or by two halves (``split``)."""
        keys = [i.key for i in done if i.key]
        with self._lock:
            if not self._batches:  # closed or handed over meanwhile: nothing of ours to settle
                return
            self._batches.popleft()
            if split is not None:
                self._batches.appendleft(split[1])
                self._batches.appendleft(split[0])
            elif replace:
                self._batches.appendleft(replace)
            self.budget.log_bytes -= sum(i.size for i in done)
        spool = self.spool
        if keys and spool is not None:
            try:
                spool.delete(keys)
            except Exception as exc:
                self._degrade(exc)

    def _warn(self, reason: str, message: str) -> None:
        now = time.monotonic()
        last = self._warned_at.get(reason)
        if last is None or now - last >= WARN_EVERY_S:
            self._warned_at[reason] = now
            logger.warning("otel_bridge: %s", message)


def _call_if_alive(ref: weakref.WeakMethod[Callable[[], None]]) -> None:
    method = ref()
    if method is not None:
        method()
