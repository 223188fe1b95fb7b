"""bench/bench_pii.py runs in --quick mode (a few seconds) and exits 0: its smoke bounds hold."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.bench
def test_bench_pii_quick():
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "bench_pii.py"), "--quick"], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "typical prose (8 KB)" in out.stdout and "digit runs" in out.stdout
