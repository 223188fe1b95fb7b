"""Smoke run of the login-flood benchmark: real `flusso-obs serve`, embedded PostgreSQL, a real
flood of sign-ins with the same-run baseline."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.bench

ROOT = Path(__file__).resolve().parents[2]


def test_bench_login_flood_smoke():
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "bench_login_flood.py"), "--smoke"], cwd=ROOT,
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    out = proc.stdout
    for row in ("baseline: no login flood", "during the login flood", "ratio p99 flood / baseline"):
        assert row in out, f"missing table row {row!r}:\n{out}"
    checked = int(out.split("login attempts during the flood: ", 1)[1].split(" checked", 1)[0])
    assert checked > 0, out  # the flood really reached argon2
