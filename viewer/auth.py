"""Passwords, sessions, CSRF, login rate limiting and the `Principal` (who is asking).

Routes get their principal from the dependencies in `viewer.deps` and contain no auth code.
"""
from __future__ import annotations

import hmac
import logging
import secrets
import time
from collections import deque
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from itsdangerous import BadSignature, URLSafeTimedSerializer

from collector_api.store.db import Scope

logger = logging.getLogger(__name__)

SESSION_COOKIE = "flusso_session"
LOGIN_CSRF_COOKIE = "flusso_login_csrf"
_hasher = PasswordHasher()  # argon2id with the library's (RFC 9106 low-memory) defaults


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


def verify_login(password_hash: str | None, password: str) -> bool:
    if password_hash is None:
        verify_password(_DUMMY_HASH, password)
        return False
    return verify_password(password_hash, password)


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
