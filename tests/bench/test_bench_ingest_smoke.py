"""Smoke run of the ingest benchmark: real uvicorn collector, embedded PostgreSQL, COPY baseline."""
from __future__ import annotations

import re

import pytest

from .helpers import load_bench, run_bench

pytestmark = pytest.mark.bench

SMOKE_LOGS, SMOKE_LIVE_LOGS = 600, 200  # bench_ingest.py --smoke


def test_bench_ingest_smoke():
    out = run_bench("bench_ingest.py", "--smoke", timeout=90)
    for row in ("logs sent = rows stored", "request latency p50 / p99", "raw binary COPY",
                "ratio collector / COPY (shared cores)", "ratio collector / COPY (split cores)",
                "collector peak RSS (VmHWM)", "live OTLPLogExporter"):
        assert row in out, f"missing table row {row!r}:\n{out}"
    assert re.search(rf"^logs sent = rows stored \(pre-encoded phase\) +{SMOKE_LOGS} = {SMOKE_LOGS}  "
                     r"\(counted in PostgreSQL after the phase\)$", out, re.M), out
    # "durable, verified" only beside a count taken after the collector stopped, with the
    # settings that make a commit durable (the embedded server's defaults)
    total = SMOKE_LOGS + SMOKE_LIVE_LOGS
    assert re.search(rf"^rows after the run \(collector stopped\) +{total} = {total}, each once; "
                     r"fsync=on, synchronous_commit=on: durable, verified$", out, re.M), out
    assert out.count("durable, verified") == 1, out


def test_durability_is_claimed_only_when_counted_and_flushed(db_dsn):
    """The verdict the script prints after the run comes from a count and the server's settings:
    a row missing fails the run; commits not flushed are said not to be verified."""
    import psycopg

    verify_after_run = load_bench("bench_ingest.py").verify_after_run
    assert verify_after_run(db_dsn, 0).endswith("fsync=on, synchronous_commit=on: durable, verified")
    with pytest.raises(SystemExit, match="FAILED: after the run 3 logs sent, 0 rows stored"):
        verify_after_run(db_dsn, 3)
    with psycopg.connect(db_dsn, autocommit=True) as conn:  # this database only: new sessions commit lazily
        conn.execute(f"ALTER DATABASE {conn.info.dbname} SET synchronous_commit = off")
    verdict = verify_after_run(db_dsn, 0)
    assert "synchronous_commit=off: durability NOT verified" in verdict and "durable, verified" not in verdict
