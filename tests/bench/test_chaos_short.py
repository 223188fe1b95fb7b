"""The chaos suite's short mode: every fault, a few hundred tickets, real processes
(client, `flusso-obs serve`, embedded PostgreSQL); 0 lost and 0 stored twice, within 5 minutes."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.bench
def test_chaos_short_mode_loses_nothing_and_stores_nothing_twice():
    out = subprocess.run([sys.executable, "-u", str(ROOT / "bench" / "chaos.py"), "--short"], cwd=ROOT,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "RESULT: OK" in out.stdout
    table = out.stdout.split("chaos (short")[1].split("\n\n")[0].splitlines()[2:]
    assert len(table) == 6  # every fault ran
    for line in table:
        fault, sent, stored, lost, twice, *_ = (c.strip() for c in line.split("|"))
        assert int(sent) > 0 and int(lost) == 0 and int(twice) == 0, line
