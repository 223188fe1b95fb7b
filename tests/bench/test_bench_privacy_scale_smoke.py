"""Smoke run of the privacy-at-scale benchmark: real collector, embedded PostgreSQL, two tenants."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.bench

ROOT = Path(__file__).resolve().parents[2]


def test_bench_privacy_scale_smoke():
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "bench_privacy_scale.py"), "--smoke"], cwd=ROOT,
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    for line in ("large request: 800 spans", "other tenant's /v1/logs during it", "one 1000-span trace", "OK"):
        assert line in proc.stdout, f"missing {line!r}:\n{proc.stdout}"
