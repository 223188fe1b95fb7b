"""Numbers from untrusted values, for the collector and the viewer: the rule itself is the
bridge's (`otel_bridge.numbers`, pure), so a log's figures read the same on both sides.
"""
from __future__ import annotations

from otel_bridge.numbers import finite_number

__all__ = ["finite_number", "non_negative"]


def non_negative(value: object) -> float:
    """A finite number clamped at 0, else 0.0 (durations, offsets, counts as the bridge sums them)."""
    number = finite_number(value)
    return number if number is not None and number > 0 else 0.0
