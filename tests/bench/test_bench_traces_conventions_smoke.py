"""Smoke run of `bench_traces.py --convention openinference` (issue 16): the same 17-span traces in
OpenInference, every log stored, our traces/s printed next to Phoenix's."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.bench

ROOT = Path(__file__).resolve().parents[2]


def test_bench_traces_openinference_smoke():
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "bench_traces.py"), "--smoke", "--convention",
                           "openinference"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    assert "side by side (openinference spans" in proc.stdout and "Phoenix 4-7 traces/s" in proc.stdout, proc.stdout
