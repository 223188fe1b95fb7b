"""The collector's errors: each carries the HTTP status and a message a sender can act on."""
from __future__ import annotations


class CollectorError(Exception):
    status = 400

    def __init__(self, message: str, *, status: int | None = None, retry_after: int | None = None):
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status
        self.retry_after = retry_after


class Unauthorized(CollectorError):
    status = 401


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
