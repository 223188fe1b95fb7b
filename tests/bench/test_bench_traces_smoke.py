"""Smoke run of the /v1/traces benchmark: real uvicorn collector, embedded PostgreSQL, /v1/logs baseline."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.bench

ROOT = Path(__file__).resolve().parents[2]


def test_bench_traces_smoke():
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "bench_traces.py"), "--smoke"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    for row in ("traces/s (until every log is stored)", "/v1/logs logs/s (same tickets)", "ratio traces / logs",
                "open traces", "collector peak RSS MB"):
        assert row in proc.stdout, f"missing table row {row!r}:\n{proc.stdout}"
