"""Smoke run of the /v1/traces benchmark: real uvicorn collector, embedded PostgreSQL, /v1/logs baseline."""
from __future__ import annotations

import pytest

from .helpers import check_traces_table, run_bench

pytestmark = pytest.mark.bench


def test_bench_traces_smoke():
    check_traces_table(run_bench("bench_traces.py", "--smoke"))
