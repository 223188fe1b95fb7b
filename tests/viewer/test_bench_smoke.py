"""The viewer benchmark still runs end to end (small data set)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.bench
def test_bench_viewer_smoke(pg_server_dsn, db_dsn):
    result = subprocess.run([sys.executable, str(ROOT / "bench" / "bench_viewer.py"), "--smoke", "--dsn", db_dsn],
                            capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "ticket detail" in result.stdout and "overview (30 days, all tenants)" in result.stdout
    assert "review queue (all tenants)" in result.stdout and "POST /tickets/{id}/reviews" in result.stdout
    assert "GET /api/v1/usage (last month)" in result.stdout and "compare two tickets" in result.stdout
    assert "sessions (30 days, all tenants)" in result.stdout and "session page: " in result.stdout
