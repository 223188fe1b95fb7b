"""Smoke run of the alert refresh benchmark: old (from git) vs additive refresh, embedded PostgreSQL."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.bench

ROOT = Path(__file__).resolve().parents[2]


def test_bench_alert_refresh_smoke():
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "bench_alert_refresh.py"), "--smoke"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    for name in ("spread", "current hour", "busy hour"):
        assert re.search(rf"{name} +new +[\d,]+ +[\d.]+ +[\d,]+ .* \d+\.\d\dx", proc.stdout), proc.stdout
    assert re.search(r"trigger off [\d.]+ ms per 1,000 logs, on [\d.]+ ms", proc.stdout), proc.stdout
