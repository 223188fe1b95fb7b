"""Every request body the edge does not read itself is read here first: capped and timed out.

The edge's receivers stream their own (large, compressed) bodies under FLUSSO_MAX_BODY_BYTES and
FLUSSO_BODY_TIMEOUT_SECONDS. Every other route with a body (sign-in, review and alert forms, the
review API) gets the same rules from this pure-ASGI middleware, by construction: the body is read
in full before the route runs, within FLUSSO_MAX_FORM_BYTES (a form or a review is small) and the
same timeout, then replayed to the route. Over the cap (declared or sent): 413; too slow: 408; a
chunked body without Content-Length: 411; all before any route code, authentication or form
parsing runs, so a half-sent or huge body holds nothing else.
"""
from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class BodyGuard:
    def __init__(self, app, edge_paths: Callable[[], frozenset[str]], timeout_s: float, max_bytes: int,
                 path_limits: dict[str, int] | None = None):
        self.app, self.timeout_s, self.max_bytes = app, timeout_s, max_bytes
        self.path_limits = dict(path_limits or {})  # exact path -> its own cap (the erasure API's id lists)
        self._edge_paths, self._edge = edge_paths, None  # read once, at the first request (the app is final)

    def edge_paths(self) -> frozenset[str]:
        if self._edge is None:
            self._edge = self._edge_paths()
        return self._edge

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] not in _BODY_METHODS or scope["path"] in self.edge_paths():
            return await self.app(scope, receive, send)
        headers = dict(scope["headers"])
        limit = self.path_limits.get(scope["path"], self.max_bytes)
        declared = headers.get(b"content-length")
        if declared is None and b"transfer-encoding" in headers:
            return await _refuse(send, scope, 411, "send the body with a Content-Length")
        if declared is not None and not declared.isdigit():
            return await _refuse(send, scope, 400, "Content-Length is not a number")
        if declared is not None and int(declared) > limit:
            return await _refuse(send, scope, 413, f"body of {int(declared)} bytes exceeds the limit of"
                                                   f" {limit} bytes ({_setting(scope['path'], self.path_limits)})")
        parts, size = [], 0
        try:
            async with asyncio.timeout(self.timeout_s):
                while True:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        return None
                    chunk = message.get("body", b"")
                    size += len(chunk)
                    if size > limit:
                        return await _refuse(send, scope, 413, f"body exceeds the limit of {limit} bytes")
                    parts.append(chunk)
                    if not message.get("more_body", False):
                        break
        except TimeoutError:
            return await _refuse(send, scope, 408, f"the request body did not arrive within {self.timeout_s:g} s"
                                                   f" ({size} bytes received)")
        body, replayed = b"".join(parts), False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # after the body: the disconnect, when it comes

        return await self.app(scope, replay, send)


def _setting(path: str, path_limits: dict[str, int]) -> str:
    return "FLUSSO_MAX_ERASURE_BYTES" if path in path_limits else "FLUSSO_MAX_FORM_BYTES"


async def _refuse(send, scope, status: int, message: str) -> None:
    """`{"detail": message}` for the JSON API, the message as text for pages; the connection closes."""
    if scope["path"].startswith("/api/"):
        body, kind = json.dumps({"detail": message}).encode(), b"application/json"
    else:
        body, kind = message.encode(), b"text/plain; charset=utf-8"
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", kind), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})
