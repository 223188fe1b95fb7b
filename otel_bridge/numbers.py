"""One rule for "a finite number, else None", shared by the bridge and the collector. Pure: no
I/O, no OpenTelemetry import (collector_api.contract.numbers is the collector's door to it).
"""
from __future__ import annotations

import math
from typing import Any


def finite_number(value: Any) -> float | None:
    """`value` as a float when it is an int or a float (never a bool) that is finite as a float.

    None for NaN, the infinities, an integer too large for a float (10**400: `math.isfinite`
    raises OverflowError on it) and any other type, text included."""
    if type(value) is float:  # the common case
        return value if math.isfinite(value) else None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None
