"""ruff on the whole repository and mypy on the client library, as CI runs them (settings in
pyproject.toml). Both are dev dependencies; a missing one fails here rather than skipping."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_ruff_passes():
    result = _run("ruff", "check", "--no-cache", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_passes_on_the_client_library():
    result = _run("mypy", "otel_bridge")
    assert result.returncode == 0, result.stdout + result.stderr
