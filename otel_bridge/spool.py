"""The write-ahead spool (FLUSSO_SPOOL_DIR): SQLite from the standard library in WAL mode,
``synchronous=FULL`` (a commit is on disk when it returns), one file ``spool.sqlite3``.

One row per workflow log: its serialized one-record OTLP request, when it was handed over,
and its binding (a fingerprint of endpoint + API key: a process with another endpoint or key
leaves the row alone). Rows are inserted in groups by delivery's spool thread and deleted once
the collector acknowledged them; what is left at exit is sent by the next process.

One live process per directory: ``spool.lock`` is held with ``flock`` while the spool is
open; a second process (or a fork child) finds it taken and keeps its logs in memory.
"""

from __future__ import annotations

import collections
import hashlib
import logging
import os
import sqlite3
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - not on Windows: no cross-process lock there
    fcntl = None  # type: ignore[assignment]

logger = logging.getLogger(__name__)

FILE_NAME = "spool.sqlite3"
LOCK_NAME = "spool.lock"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS logs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    binding TEXT NOT NULL,
    created REAL NOT NULL,
    data BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS logs_binding_id ON logs (binding, id);
"""
# Connections a fork child inherited: never closed there (closing would let SQLite think it is
# the last user of the parent's WAL file), never collected.
_abandoned: list[object] = []


class SpoolUnavailable(Exception):
    """The directory cannot hold a spool now (locked by a live process, read-only, corrupt, full)."""


def binding_of(endpoint: str | None, headers: Mapping[str, str]) -> str:
    """Fingerprint of where and as whom logs are sent; the key itself is never stored."""
    h = hashlib.sha256(b"flusso-spool-v1\0")
    h.update((endpoint or "").encode("utf-8"))
    for name in ("x-api-key", "authorization"):
        h.update(b"\0" + name.encode() + b"=" + headers.get(name, "").encode("utf-8"))
    return h.hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class Row:
    id: int
    created: float
    data: bytes


class _File:
    """One open spool directory, shared by every pipeline of this process that uses it."""

    def __init__(self, directory: str, max_page_count: int | None) -> None:
        self.directory = directory
        self.lock = threading.Lock()
        self.lock_fd = _acquire_dir_lock(directory)
        try:
            self.conn = _connect(os.path.join(directory, FILE_NAME), max_page_count)
            self.counts: collections.Counter[str] = collections.Counter()
            self.bytes = 0
            for binding, n, size in self.conn.execute(
                    "SELECT binding, count(*), coalesce(sum(length(data)), 0) FROM logs GROUP BY binding"):
                self.counts[binding] = n
                self.bytes += size
        except (sqlite3.Error, OSError) as exc:
            self.release_dir_lock()
            raise SpoolUnavailable(f"{directory}: {exc}") from exc
        self.refs = 0
        self.closed = False

    def release_dir_lock(self) -> None:
        fd, self.lock_fd = self.lock_fd, None
        if fd is not None:
            try:
                if fcntl is not None:
                    fcntl.flock(fd, fcntl.LOCK_UN)
            finally:
                os.close(fd)


_files: dict[str, _File] = {}
_files_lock = threading.Lock()


class Spool:
    """One pipeline's view of a spool directory: the rows of its binding. Thread-safe (one
    lock around one connection per directory). Every method may raise sqlite3.Error or OSError:
    the caller (delivery) then degrades to memory."""

    def __init__(self, directory: str, binding: str, max_bytes: int, *, max_page_count: int | None = None):
        self.directory = str(Path(directory).resolve())
        self.binding = binding
        self.max_bytes = int(max_bytes)
        with _files_lock:
            f = _files.get(self.directory)
            if f is None or f.closed:
                f = _files[self.directory] = _File(self.directory, max_page_count)
            f.refs += 1
        self._file = f
        self.others = sum(n for b, n in f.counts.items() if b != binding)
        self.closed = False

    @property
    def pending(self) -> int:
        """Rows of this binding in the spool (sent and acknowledged rows are deleted)."""
        return self._file.counts[self.binding]

    def insert(self, items: Iterable[tuple[float, bytes]]) -> tuple[list[int], int]:
        """Insert and commit (durably) a group; (new row ids, rows of ours dropped because the
        spool went over FLUSSO_SPOOL_MAX_MB: the oldest go first)."""
        f = self._file
        with f.lock:
            if self.closed or f.closed:
                raise SpoolUnavailable("spool closed")
            ids, added = [], 0
            with f.conn:
                for created, data in items:
                    cur = f.conn.execute("INSERT INTO logs (binding, created, data) VALUES (?, ?, ?)",
                                         (self.binding, created, data))
                    ids.append(int(cur.lastrowid or 0))
                    added += len(data)
            f.counts[self.binding] += len(ids)
            f.bytes += added
            return ids, self._trim()

    def _trim(self) -> int:
        f, dropped = self._file, 0
        while f.bytes > self.max_bytes and f.counts[self.binding] > 0:
            rows = f.conn.execute("SELECT id, length(data) FROM logs WHERE binding = ? ORDER BY id LIMIT 64",
                                  (self.binding,)).fetchall()
            if not rows:
                break
            victims = []
            for rid, size in rows:
                if f.bytes <= self.max_bytes:
                    break
                victims.append(rid)
                f.bytes -= size
            with f.conn:
                f.conn.executemany("DELETE FROM logs WHERE id = ?", [(v,) for v in victims])
            f.counts[self.binding] -= len(victims)
            dropped += len(victims)
        return dropped

    def take(self, after_id: int, limit: int, max_bytes: int) -> list[Row]:
        """Rows of ours with id > after_id, oldest first, up to limit rows / about max_bytes."""
        f = self._file
        with f.lock:
            if self.closed or f.closed:
                return []
            out: list[Row] = []
            size = 0
            for rid, created, data in f.conn.execute(
                    "SELECT id, created, data FROM logs WHERE binding = ? AND id > ? ORDER BY id LIMIT ?",
                    (self.binding, after_id, limit)):
                if out and size + len(data) > max_bytes:
                    break
                out.append(Row(rid, created, bytes(data)))
                size += len(data)
            return out

    def delete(self, ids: list[int]) -> None:
        """Forget rows (acknowledged, rejected or expired); committed at once."""
        f = self._file
        if not ids:
            return
        with f.lock:
            if f.closed:
                return
            marks = ",".join("?" * len(ids))
            with f.conn:
                rows = f.conn.execute(f"SELECT binding, length(data) FROM logs WHERE id IN ({marks})", ids).fetchall()
                f.conn.execute(f"DELETE FROM logs WHERE id IN ({marks})", ids)
            for binding, size in rows:
                f.counts[binding] -= 1
                f.bytes -= size

    def close(self) -> None:
        f = self._file
        with _files_lock, f.lock:
            if self.closed:
                return
            self.closed = True
            f.refs -= 1
            if f.refs > 0 or f.closed:
                return
            f.closed = True
            _files.pop(self.directory, None)
            try:
                f.conn.close()
            except sqlite3.Error:
                pass
            f.release_dir_lock()


def _abandon_all_after_fork() -> None:
    """In a fork child: the parent owns the files and their locks; drop them without closing."""
    global _files_lock
    _files_lock = threading.Lock()
    for f in list(_files.values()):
        f.closed = True
        f.lock = threading.Lock()
        _abandoned.append(f.conn)
        fd, f.lock_fd = f.lock_fd, None
        if fd is not None:
            try:
                os.close(fd)  # the parent's descriptor keeps the flock
            except OSError:
                pass
    _files.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_abandon_all_after_fork)


def _acquire_dir_lock(directory: str) -> int | None:
    try:
        os.makedirs(directory, mode=0o700, exist_ok=True)
        fd = os.open(os.path.join(directory, LOCK_NAME), os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise SpoolUnavailable(f"{directory}: {exc}") from exc
    if fcntl is None:  # pragma: no cover
        return fd
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise SpoolUnavailable(f"{directory} is in use by another live process") from None
    return fd


def _connect(path: str, max_page_count: int | None) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=5.0, isolation_level="DEFERRED", check_same_thread=False)
    try:
        if conn.execute("PRAGMA journal_mode=WAL").fetchone()[0].lower() != "wal":
            raise sqlite3.OperationalError("WAL mode refused")
        conn.execute("PRAGMA synchronous=FULL")
        if max_page_count:  # tests: a real SQLITE_FULL without filling the disk
            conn.execute(f"PRAGMA max_page_count={int(max_page_count)}")
        conn.executescript(_SCHEMA)
        conn.commit()
        os.chmod(path, 0o600)
    except Exception:
        conn.close()
        raise
    return conn
