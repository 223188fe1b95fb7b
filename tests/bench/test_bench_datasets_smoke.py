"""Smoke run of the datasets benchmark: dataset creation and the experiment pages, embedded PostgreSQL."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.bench

ROOT = Path(__file__).resolve().parents[2]


def test_bench_datasets_smoke():
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "bench_datasets.py"), "--smoke"], cwd=ROOT,
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    assert re.search(r"dataset creation, 300 items", proc.stdout), proc.stdout
    assert re.search(r"create_dataset +\d+\.\d\d", proc.stdout) and "baseline: SELECT" in proc.stdout
    for row in ("experiment page (HTML", "GET /api/v1/experiments/{id}", "compare two experiments",
                "baseline: ticket search page"):
        assert re.search(re.escape(row) + r".* +\d+\.\d +\d+\.\d", proc.stdout), (row, proc.stdout)
