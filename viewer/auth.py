"""Passwords, sessions, CSRF, login rate limiting and the `Principal` (who is asking).

Routes get their principal from the dependencies in `viewer.deps` and contain no auth code.
"""
from __future__ import annotations

import asyncio
import hmac
import logging
import os
import secrets
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from itsdangerous import BadSignature, URLSafeTimedSerializer

from collector_api.store.core.db import Scope

logger = logging.getLogger(__name__)

SESSION_COOKIE = "flusso_session"
LOGIN_CSRF_COOKIE = "flusso_login_csrf"
# argon2id, RFC 9106's second recommended option (64 MiB, 3 passes) in ONE lane: the library's
# default of 4 lanes runs each check on 4 threads, so one check took both cores from ingest at
# once. One lane costs the same memory and CPU time (~0.1-0.2 s), on one core.
_hasher = PasswordHasher(time_cost=3, memory_cost=64 * 1024, parallelism=1)


def hash_password(password: str) -> str:
    """An argon2id hash (PHC string) of `password`, salted; store it as is."""
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    """True when `password` matches; False on mismatch or a malformed hash. Never raises."""
    try:
        return _hasher.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


# Verifying against this when the email is unknown keeps the response time of unknown and
# known emails alike, so timing does not reveal which accounts exist.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


def needs_rehash(password_hash: str) -> bool:
    """True for a hash made with other parameters (e.g. the 4-lane default of earlier versions):
    sign-in then stores a new hash of the password it just checked."""
    try:
        return _hasher.check_needs_rehash(password_hash)
    except (InvalidHashError, ValueError):
        return False


def verify_login(password_hash: str | None, password: str) -> bool:
    if password_hash is None:
        verify_password(_DUMMY_HASH, password)
        return False
    return verify_password(password_hash, password)


def _lower_priority() -> None:
    """Password-check threads (and the lane threads argon2 starts from them) yield the CPU to
    ingest and PostgreSQL: a login flood slows sign-ins, not the collector."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)  # this thread only (Linux)
    except (AttributeError, OSError):  # other platforms: no per-thread priority
        pass


class VerifierBusy(Exception):
    """Too many sign-ins are waiting for a password check: the caller answers 503."""


class PasswordVerifier:
    """argon2 off the event loop (ingest shares it): at most `concurrency` checks at once in
    threads (each costs ~64 MiB and a core for ~50-170 ms), started at most `checks_per_second`
    times a second, at most `max_waiting` more queued; beyond that VerifierBusy at once. So a
    login flood costs bounded memory and a bounded share of the CPU, whatever its size."""

    def __init__(self, concurrency: int, max_waiting: int = 32, checks_per_second: float | None = None):
        self._slots = asyncio.Semaphore(concurrency)
        self.max_waiting = max_waiting
        self.waiting = 0
        self._interval = 1.0 / checks_per_second if checks_per_second else 0.0
        self._next_start = 0.0  # loop time before which no further check may start
        self._threads = ThreadPoolExecutor(concurrency, thread_name_prefix="argon2", initializer=_lower_priority)

    @property
    def retry_after_s(self) -> int:
        """How long the queue takes to drain at the paced rate (the 503's Retry-After)."""
        return max(1, round(self.max_waiting * self._interval))

    async def verify(self, password_hash: str | None, password: str) -> bool:
        if self.waiting >= self.max_waiting:
            raise VerifierBusy()
        self.waiting += 1
        try:
            async with self._slots:
                loop = asyncio.get_running_loop()
                start = max(loop.time(), self._next_start)
                self._next_start = start + self._interval
                await asyncio.sleep(start - loop.time())  # pacing: a token bucket of one
                return await loop.run_in_executor(self._threads, verify_login, password_hash, password)
        finally:
            self.waiting -= 1

    async def rehash(self, password: str) -> str:
        """A new hash of `password` (after a successful sign-in), on the same low-priority threads."""
        return await asyncio.get_running_loop().run_in_executor(self._threads, hash_password, password)


@dataclass(frozen=True)
class Principal:
    """Who is asking. A provider sees every tenant; a client (user or read key) only its own."""

    role: str
    client_id: str | None
    email: str | None = None
    user_id: int | None = None
    csrf: str | None = None  # session's CSRF token; None for API keys (no cookies, no CSRF)
    via: str = "session"
    key_id: str | None = None  # the API key's public id (a review's author when posted with a key)
    key_scope: str | None = None  # "read" or "review" for an API key

    @property
    def is_provider(self) -> bool:
        return self.role == "provider"

    @property
    def scope(self) -> Scope:
        return Scope.provider() if self.is_provider else Scope.tenant(self.client_id or "")


class SessionCodec:
    """Signed, timestamped session payloads (itsdangerous). The cookie holds no secret data."""

    def __init__(self, secret: str, max_age_s: int):
        self._sessions = URLSafeTimedSerializer(secret, salt="flusso.viewer.session")
        self._login = URLSafeTimedSerializer(secret, salt="flusso.viewer.login-csrf")
        self.max_age_s = max_age_s

    def new_session(self, user_id: int, epoch: int = 0) -> tuple[str, str]:
        csrf = secrets.token_urlsafe(24)
        return self._sessions.dumps({"uid": user_id, "csrf": csrf, "ep": epoch}), csrf

    def read_session(self, cookie: str | None) -> dict | None:
        if not cookie or len(cookie) > 4096:
            return None
        try:
            data = self._sessions.loads(cookie, max_age=self.max_age_s)
        except BadSignature:
            return None
        if not isinstance(data, dict) or not isinstance(data.get("uid"), int) or not isinstance(data.get("csrf"), str):
            return None
        return data

    def new_login_token(self) -> tuple[str, str]:
        """(cookie value, form value) for the login form's double-submit CSRF check."""
        token = secrets.token_urlsafe(24)
        return self._login.dumps(token), token

    def check_login_token(self, cookie: str | None, form_value: str | None) -> bool:
        if not cookie or not form_value:
            return False
        try:
            token = self._login.loads(cookie, max_age=3600)
        except BadSignature:
            return False
        return isinstance(token, str) and hmac.compare_digest(token, form_value)


def csrf_matches(expected: str | None, presented: str | None) -> bool:
    return bool(expected and presented) and hmac.compare_digest(expected, presented)


class FailureDelay:
    """A growing delay per account after repeated failed sign-ins: none for the first
    `free_failures`, then `base_s` doubling up to `max_s`; forgotten after a success or
    `forget_s` without failures. A delay, never a lock-out: whoever triggers it, the right
    password still signs in."""

    def __init__(self, *, free_failures: int = 3, base_s: float = 0.5, max_s: float = 8.0,
                 forget_s: float = 900.0, max_keys: int = 100_000):
        self.free_failures, self.base_s, self.max_s = free_failures, base_s, max_s
        self.forget_s, self.max_keys = forget_s, max_keys
        self._failures: dict[str, tuple[int, float]] = {}

    def delay_s(self, account: str) -> float:
        count, last = self._failures.get(account, (0, 0.0))
        if count < self.free_failures or time.monotonic() - last > self.forget_s:
            return 0.0
        return min(self.max_s, self.base_s * 2 ** (count - self.free_failures))

    def failed(self, account: str) -> None:
        now = time.monotonic()
        if len(self._failures) > self.max_keys:  # bound memory under a spray of emails
            self._failures = {k: v for k, v in self._failures.items() if now - v[1] < self.forget_s}
        count, last = self._failures.get(account, (0, now))
        self._failures[account] = ((0 if now - last > self.forget_s else count) + 1, now)

    def succeeded(self, account: str) -> None:
        self._failures.pop(account, None)


class LoginLimiter:
    """Sliding one-minute window of login attempts per key (client IP, email)."""

    def __init__(self, per_minute: int, max_keys: int = 100_000):
        self.per_minute = per_minute
        self.max_keys = max_keys
        self._attempts: dict[str, deque[float]] = {}

    def allow(self, *keys: str) -> bool:
        """Record an attempt under every key; False when any key is already over the limit."""
        now = time.monotonic()
        if len(self._attempts) > self.max_keys:  # bound memory under a spray of addresses
            self._attempts = {k: v for k, v in self._attempts.items() if v and now - v[-1] < 60}
        allowed = True
        for key in keys:
            window = self._attempts.setdefault(key, deque())
            while window and now - window[0] >= 60:
                window.popleft()
            if len(window) >= self.per_minute:
                allowed = False
            else:
                window.append(now)
        return allowed
