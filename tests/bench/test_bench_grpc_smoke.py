"""Smoke run of the gRPC vs HTTP/protobuf ingest benchmark: real serve, embedded PostgreSQL."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.bench

ROOT = Path(__file__).resolve().parents[2]


def test_bench_grpc_smoke():
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "bench_grpc.py"), "--smoke"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    for row in ("| logs (logs) | HTTP/protobuf |", "| logs (logs) | gRPC |", "| traces (spans) | HTTP/protobuf |",
                "| traces (spans) | gRPC |", "logs: gRPC/HTTP items/s", "traces: gRPC/HTTP items/s"):
        assert row in proc.stdout, f"missing table row {row!r}:\n{proc.stdout}"
