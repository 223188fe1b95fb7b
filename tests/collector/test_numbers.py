"""One rule for "a finite number, else None" (otel_bridge.numbers, the collector's door
collector_api.contract.numbers): the copies it replaced disagreed on an integer too large for a
float (10**400, which the stdlib JSON parser reads): some answered None, others raised
OverflowError from `math.isfinite`."""
import math

import pytest

from collector_api.contract.derived import usage_by_model
from collector_api.contract.numbers import finite_number, non_negative
from collector_api.traces.conventions.common import count, number
from collector_api.traces.prices import PriceTableError, parse_prices
from otel_bridge import sections
from viewer.formatting import duration_ms, nice_axis
from viewer.template_filters import number as number_filter
from viewer.template_filters import percent

HUGE = 10**400


@pytest.mark.parametrize(("value", "expected"), [
    (1, 1.0), (-2.5, -2.5), (0, 0.0), (10**20, 1e20), (True, None), (False, None), (math.nan, None),
    (math.inf, None), (-math.inf, None), (HUGE, None), (-HUGE, None), ("1", None), (None, None), ([1], None)])
def test_finite_number(value, expected):
    assert finite_number(value) == expected
    assert non_negative(value) == (expected if expected and expected > 0 else 0.0)


def test_an_integer_too_large_for_a_float_is_no_number_anywhere():
    """Before: the viewer's filters (which "never raise"), the bridge's metric sums and the price
    table raised OverflowError on it; the collector's readers answered None."""
    assert number_filter(HUGE) == str(HUGE) and percent(HUGE) == "–"
    assert duration_ms(HUGE) == str(HUGE) and nice_axis(HUGE)[0] == nice_axis(0)[0]
    assert sections.num(HUGE) == 0.0 and sections.ratio(HUGE) is None
    assert number(HUGE) is None and count(HUGE) is None and number("1e400") is None
    assert usage_by_model([{"model": "m", "input_tokens": HUGE, "cost_usd": HUGE}])["m"]["cost_usd"] == 0.0
    with pytest.raises(PriceTableError, match="must be a number >= 0"):
        parse_prices(f"models:\n  m:\n    input: {HUGE}\n    output: 1\n", "prices.yaml")


def test_the_readers_keep_their_own_bounds():
    assert number("2.5") == 2.5 and number(-1) is None and number(-1, signed=True) == -1.0
    assert count(7) == 7 and count("12") == 12 and count(-1) is None and count(10**13) is None
    assert sections.ratio(3) == 1.0 and sections.ratio(-1) == 0.0 and sections.num(True) == 0.0
