"""Smoke run of the evaluations benchmark: small sizes, embedded PostgreSQL; the table's three
rows are printed with numbers (the targets are checked by the full run, not here)."""
from __future__ import annotations

import re

import pytest

from tests.bench.helpers import run_bench

pytestmark = pytest.mark.bench


def test_bench_evals_smoke():
    out = run_bench("bench_evals.py", "--smoke", "--rate", "10", timeout=300)
    for name in ("deterministic logs/s per core", "judge logs/s", "ingest p99 ms, job busy vs idle"):
        assert re.search(rf"{re.escape(name)}.* +\d+(\.\d)? +\d+(\.\d)? +\d+\.\d\dx", out), out
    scored = re.search(r"(\d+) scores, (\d+) judge calls in all", out)
    assert scored and int(scored[1]) > 0 and int(scored[2]) > 0, out
