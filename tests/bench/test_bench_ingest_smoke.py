"""Smoke run of the ingest benchmark: real uvicorn collector, embedded PostgreSQL, COPY baseline."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.bench

ROOT = Path(__file__).resolve().parents[2]


def test_bench_ingest_smoke():
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "bench_ingest.py"), "--smoke"], cwd=ROOT,
                          capture_output=True, text=True, timeout=90)
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    out = proc.stdout
    for row in ("logs sent = rows stored", "request latency p50 / p99", "raw binary COPY",
                "ratio collector / COPY (shared cores)", "ratio collector / COPY (split cores)",
                "collector peak RSS (VmHWM)", "live OTLPLogExporter"):
        assert row in out, f"missing table row {row!r}:\n{out}"
    assert "(durable, verified)" in out
