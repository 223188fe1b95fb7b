"""Signed webhook delivery for alerts: the target allow-list, the signature, one POST.

Each attempt has a TOTAL deadline (FLUSSO_WEBHOOK_TIMEOUT_S, `AttemptDeadline`): a receiver
that answers a byte at a time fails the attempt at the deadline like one that never answers.

Targets are restricted by FLUSSO_WEBHOOK_ALLOW (collector_api.alerts.targets; empty = no
webhook is sent). The check runs at send time on the address the host resolves to, and the
request goes to that very address (no second lookup a DNS rebinding could change); TLS still
verifies the certificate for the URL's host name. Redirects are never followed (http.client
does not follow them; a 3xx is a failed attempt).
"""
from __future__ import annotations

import hashlib
import hmac
import http.client
import socket
import ssl
import threading
import time
from collections.abc import Callable
from urllib.parse import urlsplit

from collector_api.alerts.targets import AllowList
from collector_api.store.alerts.deliveries import AttemptResult

USER_AGENT = "flusso-obs-alerts/1"
MAX_RESPONSE_BYTES = 64 * 1024

def sign(secret: str, body: bytes, timestamp: int) -> str:
    """The X-Flusso-Signature value: t=<unix>,v1=<hex HMAC-SHA256(secret, t + "." + body)>."""
    mac = hmac.new(secret.encode("utf-8"), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


class AttemptDeadline:
    """One attempt's TOTAL deadline (connect, send, headers and body together).

    Socket timeouts apply to each operation, so a receiver sending one byte every few seconds
    would never time out; instead a timer shuts the connection's socket down when the deadline
    passes, which ends whatever call is blocked on it, and every operation also gets at most the
    time that remains."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.at = time.monotonic() + seconds
        self.expired = False
        self._sock: socket.socket | None = None
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def remaining(self) -> float:
        return max(0.001, self.at - time.monotonic())

    def watch(self, sock: socket.socket) -> socket.socket:
        self._sock = sock  # set first, then look: _expire sets first, then looks (no lost wake-up)
        if self.expired:
            self._shut(sock)
        return sock

    def _expire(self) -> None:
        self.expired = True
        if self._sock is not None:
            self._shut(self._sock)

    @staticmethod
    def _shut(sock: socket.socket) -> None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # already closed: nothing left to end

    def __enter__(self) -> AttemptDeadline:
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """HTTP to an address already checked, its socket under the attempt's total deadline."""

    def __init__(self, address: str, port: int, deadline: AttemptDeadline):
        super().__init__(address, port, timeout=deadline.remaining())
        self._deadline = deadline

    def connect(self) -> None:
        self.sock = self._deadline.watch(socket.create_connection((self.host, self.port), self._deadline.remaining()))


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """HTTPS to an address already checked, verifying the certificate for the URL's host name."""

    def __init__(self, address: str, port: int, server_name: str, deadline: AttemptDeadline):
        super().__init__(address, port, timeout=deadline.remaining(), context=ssl.create_default_context())
        self._server_name, self._deadline = server_name, deadline

    def connect(self) -> None:
        # The raw TCP socket is the one watched: shutting it down ends a TLS read too.
        sock = self._deadline.watch(socket.create_connection((self.host, self.port), self._deadline.remaining()))
        self.sock = self._context.wrap_socket(sock, server_hostname=self._server_name)  # type: ignore[attr-defined]


def _pick_address(host: str, port: int, scheme: str, allow: AllowList) -> str:
    """The first address `host` resolves to that `allow` admits; raises OSError naming them all."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    address = next((str(i[4][0]) for i in infos if allow.allows(host, port, str(i[4][0]), scheme)), None)
    if address is None:
        raise PermissionError(f"{host}:{port} (resolved to {', '.join(sorted({str(i[4][0]) for i in infos}))})"
                              " is not allowed by FLUSSO_WEBHOOK_ALLOW (a name entry reaches public addresses"
                              " on its port or the scheme's default only; list an IP or CIDR for any other)")
    return address


def post_webhook(url: str, body: bytes, headers: dict[str, str], allow: AllowList,
                 timeout_s: float = 10.0) -> AttemptResult:
    """One POST (blocking; run it in a thread) within `timeout_s` in total, the address lookup
    included. Never raises: the outcome is the result."""
    started = time.monotonic()

    def result(status: int | None, error: str | None) -> AttemptResult:
        return AttemptResult(status, error[:500] if error else None, (time.monotonic() - started) * 1000)

    parts = urlsplit(url)
    host, https = parts.hostname or "", parts.scheme == "https"
    port = parts.port or (443 if https else 80)
    if not allow:
        return result(None, "webhooks are off: FLUSSO_WEBHOOK_ALLOW is empty")
    with AttemptDeadline(timeout_s) as deadline:
        try:
            address = _pick_address(host, port, parts.scheme, allow)
        except PermissionError as exc:
            return result(None, str(exc))
        except OSError as exc:
            return result(None, f"cannot resolve {host}: {exc}")
        conn = (_PinnedHTTPSConnection(address, port, host, deadline) if https
                else _PinnedHTTPConnection(address, port, deadline))
        late = f"no complete answer within the total deadline of {timeout_s:g} s (FLUSSO_WEBHOOK_TIMEOUT_S)"
        try:
            answer = _exchange(conn, parts, body, headers, result)
        except (OSError, http.client.HTTPException, ValueError) as exc:
            return result(None, late if deadline.expired else f"{type(exc).__name__}: {exc}")
        finally:
            conn.close()
        # A body cut short by the deadline reads as a short body, not an error: still a failure.
        return result(None, late) if deadline.expired else answer


def _exchange(conn: http.client.HTTPConnection, parts, body: bytes, headers: dict[str, str],
              result: Callable[[int | None, str | None], AttemptResult]) -> AttemptResult:
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    conn.request("POST", target, body=body, headers={
        "Host": parts.netloc.rpartition("@")[2], "Content-Type": "application/json", "User-Agent": USER_AGENT,
        "Connection": "close", **headers})
    response = conn.getresponse()
    response.read(MAX_RESPONSE_BYTES)
    if 300 <= response.status < 400:
        return result(response.status, f"redirect to {response.getheader('Location', '?')[:200]} not followed")
    return result(response.status, None if 200 <= response.status < 300 else f"HTTP {response.status}")
