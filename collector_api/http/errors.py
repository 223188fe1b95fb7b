"""The collector's errors: each carries its status and a message a sender can act on.

The status is said once per error and read by each transport: `status` (HTTP) and `grpc_code`
(the gRPC status code, also the `code` of the google.rpc.Status an OTLP/HTTP error body carries).
Codes follow the OTLP specification: bad input is INVALID_ARGUMENT (not retried), shedding load or
draining is RESOURCE_EXHAUSTED / UNAVAILABLE with a retry delay (retried), and nothing a sender
did wrong is ever UNKNOWN or INTERNAL.
"""
from __future__ import annotations

# gRPC status codes (grpc.StatusCode values; the numbers are the protocol's, no grpc import here).
INVALID_ARGUMENT, DEADLINE_EXCEEDED, PERMISSION_DENIED = 3, 4, 7
RESOURCE_EXHAUSTED, UNIMPLEMENTED, UNAVAILABLE, UNAUTHENTICATED = 8, 12, 14, 16
GRPC_CODE_OF_HTTP = {400: INVALID_ARGUMENT, 401: UNAUTHENTICATED, 403: PERMISSION_DENIED, 408: DEADLINE_EXCEEDED,
                     413: RESOURCE_EXHAUSTED, 415: INVALID_ARGUMENT, 422: INVALID_ARGUMENT, 429: RESOURCE_EXHAUSTED,
                     501: UNIMPLEMENTED, 503: UNAVAILABLE}


class CollectorError(Exception):
    status = 400
    grpc: int | None = None  # None: GRPC_CODE_OF_HTTP[status]

    def __init__(self, message: str, *, status: int | None = None, retry_after: int | None = None):
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status
        self.retry_after = retry_after

    @property
    def grpc_code(self) -> int:
        """The gRPC status code: never UNKNOWN (2) or INTERNAL (13); a 4xx without an entry is
        INVALID_ARGUMENT, a 5xx UNAVAILABLE."""
        if self.grpc is not None:
            return self.grpc
        return GRPC_CODE_OF_HTTP.get(self.status, INVALID_ARGUMENT if self.status < 500 else UNAVAILABLE)


class Unauthorized(CollectorError):
    status = 401


class WrongScope(Unauthorized):
    """A valid key of another scope: 401 over HTTP (as documented since the first release), the
    more precise PERMISSION_DENIED over gRPC (the key is known, it may not do this)."""

    grpc = PERMISSION_DENIED


class PayloadTooLarge(CollectorError):
    status = 413


class UnsupportedMedia(CollectorError):
    status = 415


class Unavailable(CollectorError):
    status = 503


class TooManyRequests(CollectorError):
    status = 429


class RequestTimeout(CollectorError):
    status = 408
