"""Smoke run of the store benchmark: the collector's write path vs binary COPY, embedded PostgreSQL."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.bench

ROOT = Path(__file__).resolve().parents[2]


def test_bench_store_smoke():
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "bench_store.py"), "--smoke"], cwd=ROOT,
                          capture_output=True, text=True, timeout=90)
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    for streams in (1, 2):
        for path in ("COPY", "collector"):
            assert re.search(rf"{path}, {streams} stream\(s\) +[\d,]+ rows/s", proc.stdout), proc.stdout
        assert re.search(rf"ratio collector / COPY, {streams} stream\(s\) +\d+\.\d\dx", proc.stdout), proc.stdout
