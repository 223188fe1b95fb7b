"""Bench smoke tests: run a bench script as a user does, read the table it prints."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_bench(script: str, *args: str, timeout: float = 120) -> str:
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / script), *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


def traces_table(out: str) -> dict[str, float]:
    """bench_traces.py's table of one run ('shared cores'): measure -> figure."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if re.match(r"^measure\s+shared cores$", line))
    rows = {}
    for line in lines[start + 1:]:
        match = re.match(r"^(.+?)\s+(-?\d+\.\d\d)$", line)
        if not match:
            break
        rows[match[1]] = float(match[2])
    return rows


def check_traces_table(out: str, traces: int = 120, spans_per_trace: int = 17) -> dict[str, float]:
    """Every row of the table, each figure in a range that can be true and consistent with the others."""
    rows = traces_table(out)
    for name in ("traces/s (until every log is stored)", "spans/s", "ack time s", "end-to-end s",
                 "collector CPU ms per trace", "PostgreSQL CPU ms per trace (incl. wait polls)",
                 "/v1/logs logs/s (same tickets)", "ratio traces / logs", "collector RSS MB after run",
                 "collector peak RSS MB"):
        assert name in rows, f"missing table row {name!r}:\n{out}"
    rate, elapsed = rows["traces/s (until every log is stored)"], rows["end-to-end s"]
    assert 0 < rows["ack time s"] <= elapsed < 120, out
    assert abs(rate - traces / elapsed) <= 0.02 * rate, out  # the rate is of the run's own clock
    assert abs(rows["spans/s"] - rate * spans_per_trace) <= 0.01 * rows["spans/s"], out
    assert abs(rows["ratio traces / logs"] - rate / rows["/v1/logs logs/s (same tickets)"]) <= 0.01, out
    for cpu in ("collector CPU ms per trace", "PostgreSQL CPU ms per trace (incl. wait polls)"):
        assert 0 < rows[cpu] < 1000, out
    open_rss = next(v for k, v in rows.items() if re.fullmatch(r"collector RSS MB with \d+ open traces", k))
    assert 20 < rows["collector RSS MB after run"] <= rows["collector peak RSS MB"] < 2000, out
    assert 20 < open_rss <= rows["collector peak RSS MB"], out
    return rows


def load_bench(script: str):
    """A bench script imported as a module (its functions, without running main())."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(script.removesuffix(".py"), ROOT / "bench" / script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
