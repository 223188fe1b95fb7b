"""What one process knows of its jobs' health: each job's lag (now minus its last success).

The job runner (collector_api.store.core.jobs) writes to a `JobBoard`; `/metrics` (a gauge per
job), the provider's `/ingest` page and `/readyz` detail read it. A leader job's last success
comes from `job_runs` (read at every check, so every process knows it, not only the leader); a
per-process job's from this process's own clock. No I/O here.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

LATE_FACTOR = 3.0  # a job is late when its last success is more than this many intervals ago


@dataclass(frozen=True)
class JobLag:
    name: str
    interval_s: float
    lag_s: float  # now - last success; since this process started when none is known
    last_ok_at: float | None  # unix seconds (this host's clock) of the last success, None: none known
    last_error: str | None  # the last run's error, None when it succeeded
    running_s: float | None  # how long a run started by THIS process has been going, None: not running here
    per_process: bool

    @property
    def late(self) -> bool:
        return self.lag_s > LATE_FACTOR * self.interval_s


@dataclass
class _Entry:
    interval_s: float
    per_process: bool
    last_ok_at: float | None = None
    last_error: str | None = None
    running_since: float | None = None


class JobBoard:
    """Thread-safe: the runner writes from the event loop, `/metrics` may read from another thread."""

    def __init__(self, clock: Callable[[], float] = time.time):
        self._clock = clock
        self._started = clock()
        self._jobs: dict[str, _Entry] = {}
        self._lock = threading.Lock()

    def register(self, name: str, interval_s: float, per_process: bool) -> None:
        with self._lock:
            self._jobs.setdefault(name, _Entry(interval_s, per_process)).interval_s = interval_s

    def note_started(self, name: str) -> None:
        with self._lock:
            self._jobs[name].running_since = self._clock()

    def note_finished(self, name: str, error: str | None) -> None:
        """A run by this process ended; `error` None is a success, now."""
        with self._lock:
            entry = self._jobs[name]
            entry.running_since, entry.last_error = None, error
            if error is None:
                entry.last_ok_at = self._clock()

    def note_row(self, name: str, db_now: float, last_ok_at: float | None, last_error: str | None) -> None:
        """What `job_runs` says (all in the database's clock, converted to this host's)."""
        with self._lock:
            entry = self._jobs[name]
            entry.last_error = last_error
            if last_ok_at is not None:
                entry.last_ok_at = self._clock() - max(0.0, db_now - last_ok_at)

    def snapshot(self) -> list[JobLag]:
        """Every registered job's lag now, in registration order."""
        now = self._clock()
        with self._lock:
            return [JobLag(name, e.interval_s, max(0.0, now - (e.last_ok_at if e.last_ok_at is not None
                                                               else self._started)),
                           e.last_ok_at, e.last_error,
                           None if e.running_since is None else max(0.0, now - e.running_since), e.per_process)
                    for name, e in self._jobs.items()]

    def late(self) -> list[JobLag]:
        return [job for job in self.snapshot() if job.late]
