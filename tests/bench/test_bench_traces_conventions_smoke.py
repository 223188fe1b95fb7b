"""Smoke run of `bench_traces.py --convention openinference`: the same 17-span traces in
OpenInference, every log stored, our traces/s printed next to a peer's figure (the script's own
reference; the test checks only that the comparison is computed from the run's figures)."""
from __future__ import annotations

import re

import pytest

from .helpers import check_traces_table, run_bench

pytestmark = pytest.mark.bench


def test_bench_traces_openinference_smoke():
    out = run_bench("bench_traces.py", "--smoke", "--convention", "openinference")
    rows = check_traces_table(out)
    side = re.search(r"^side by side \(openinference spans, shared cores\): ours (\d+\.\d) traces/s; "
                     r"(\w+) (\d+)-(\d+) traces/s measured here -> (\d+)-(\d+)x$", out, re.M)
    assert side, out
    ours, low, high, times_low, times_high = (float(side[i]) for i in (1, 3, 4, 5, 6))
    # this run's figure (printed to one decimal from the unrounded rate; the table has two)
    assert ours == pytest.approx(rows["traces/s (until every log is stored)"], abs=0.051), out
    assert 0 < low <= high, out
    # the multiples are of this run's rate (the script divides the unrounded rate: allow one step)
    assert abs(times_low - ours / high) <= 1 and abs(times_high - ours / low) <= 1, out
