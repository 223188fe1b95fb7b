"""Each bridge benchmark runs in --smoke mode (well under 60 s) and exits 0."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = sorted((ROOT / "bench").glob("bench_bridge_*.py"))


def test_all_four_benchmarks_exist():
    names = {p.stem for p in SCRIPTS}
    assert {"bench_bridge_span_cost", "bench_bridge_ticket_end", "bench_bridge_memory",
            "bench_bridge_delivery"} <= names


@pytest.mark.bench
@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.stem)
def test_bench_smoke(script):
    out = subprocess.run([sys.executable, str(script), "--smoke"], cwd=ROOT, capture_output=True, text=True,
                         timeout=90)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip(), "a benchmark prints its table"
