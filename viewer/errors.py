"""The viewer's errors: each carries the HTTP status and a message the user can act on."""
from __future__ import annotations


class ViewerError(Exception):
    status = 400

    def __init__(self, message: str, *, status: int | None = None):
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status


class BadRequest(ViewerError):
    status = 400


class LoginRequired(ViewerError):
    """No valid session (pages redirect to /login) or no valid credentials (API answers 401)."""

    status = 401


class Forbidden(ViewerError):
    status = 403


class NotFound(ViewerError):
    status = 404


class TooManyAttempts(ViewerError):
    status = 429


class Unavailable(ViewerError):
    status = 503
