"""The bridge's exceptions (raised only by configure(), never inside a workflow)."""

from __future__ import annotations


class BridgeError(Exception):
    """Base of the bridge's errors (raised only by configure(), never by a workflow)."""


class ConfigurationError(BridgeError):
    pass
