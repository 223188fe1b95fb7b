"""Smoke run of the alert benchmark: 20,000 logs, 100 rules, embedded PostgreSQL."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.bench

ROOT = Path(__file__).resolve().parents[2]


def test_bench_alerts_smoke():
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "bench_alerts.py"), "--smoke"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    for name in ("tick, steady", "tick, first", "baseline: raw-scan"):
        assert re.search(rf"{re.escape(name)}.* +\d+\.\d{{3}} +\d+\.\d\dx", proc.stdout), proc.stdout
