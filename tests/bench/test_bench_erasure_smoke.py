"""Smoke run of the erasure benchmark: 30,000 logs, 1,000 tickets erased under steady ingest, a
tenant's retention; every row of its table printed with a plausible figure."""
from __future__ import annotations

import re

import pytest

from .helpers import run_bench

pytestmark = pytest.mark.bench


def test_bench_erasure_smoke():
    out = run_bench("bench_erasure.py", "--smoke", timeout=300)
    rows = dict(re.findall(r"^(.+?)\s{2,}(\d+\.\d{3})$", out, re.M))
    for name in ("erase 1,000 tickets (s)", "ingest p99 before (ms)", "ingest p99 during (ms)",
                 "ratio p99 during / before", "ratio retention / plain DELETE"):
        assert name in rows, f"missing {name!r}:\n{out}"
    assert 0 < float(rows["erase 1,000 tickets (s)"]) < 120
    assert any(k.startswith("retention of ret, 30 days (") for k in rows), out
