"""Each bridge benchmark runs in --smoke mode (well under 60 s), exits 0 and prints its table:
every row it promises, every column a number, and the numbers in a range that can be true
(ordered percentiles, counts equal to what was sent, ratios that agree with their figures)."""

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = sorted((ROOT / "bench").glob("bench_bridge_*.py"))
NUMBER = r"-?\d+(?:\.\d+)?"


def row(out: str, label: str, columns: int, suffix: str = "") -> list[float]:
    """The `columns` numbers of the table row starting with `label` (each may end in `suffix`)."""
    cells = rf"\s+({NUMBER}){re.escape(suffix)}" * columns
    match = re.search(rf"^{re.escape(label)}{cells}(?:\s|$)", out, re.M)
    assert match, f"no row {label!r} with {columns} numbers in:\n{out}"
    return [float(x) for x in match.groups()]


def header(out: str, *names: str) -> None:
    assert re.search(r"^" + r"\s+".join(re.escape(n) for n in names) + r"\s*$", out, re.M), \
        f"no header {names} in:\n{out}"


def check_span_cost(out: str) -> None:
    tickets = int(re.search(r"^per-span cost, (\d+) tickets x \d+ spans, median of \d+ rounds$", out, re.M)[1])
    header(out, "variant", "wall ns/span", "cpu ns/span")
    bare, bridge = row(out, "bare start_as_current_span", 2), row(out, "@node + otel_bridge", 2)
    for ns in bare + bridge:
        assert 100 <= ns <= 10_000_000, out  # a span costs between 0.1 µs and 10 ms
    ratios = row(out, "ratio bridge/bare", 2, suffix="x")
    for ratio, b, o in zip(ratios, bridge, bare, strict=True):
        assert ratio == pytest.approx(b / o, abs=0.02), out  # the ratio is of the figures above it
    found = re.search(r"^logs built: (\d+), drops: (\{.*\})$", out, re.M)
    assert found, out
    drops = ast.literal_eval(found[2])
    assert all(count == 0 for count in drops.values()), out  # nothing dropped, whatever is counted
    assert int(found[1]) >= tickets, out


def check_ticket_end(out: str) -> None:
    header(out, "scenario", "wall p50", "p99", "p99.9", "max", "cpu p50", "p99", "p99.9")
    for label in ("baseline: bare OTel root span end", "bridge, collector up", "bridge, connection refused",
                  "bridge, black-holed"):
        wall50, wall99, wall999, wall_max, cpu50, cpu99, cpu999 = row(out, label, 7)
        assert 0 <= wall50 <= wall99 <= wall999 <= wall_max < 5000, (label, out)  # milliseconds
        assert 0 <= cpu50 <= cpu99 <= cpu999 < 5000, (label, out)
    assert re.search(r"^targets \(.*\) met in all scenarios: (yes|NO)$", out, re.M), out


def check_memory(out: str) -> None:
    header(out, "scenario", "RSS before", "after", "growth MB", "tickets/s", "drops")
    growth = {}
    for label in ("baseline", "refused", "blackhole"):
        match = re.search(rf"^{label}\s+({NUMBER})\s+({NUMBER})\s+({NUMBER})\s+(\d+)\s+(-|\{{.*\}})$", out, re.M)
        assert match, f"no row {label!r} in:\n{out}"
        before, after, grown, rate = (float(x) for x in match.groups()[:4])
        assert 10 <= before <= after + 0.1 and after < 2000, (label, out)  # MB of a Python process
        assert grown == pytest.approx(after - before, abs=0.15), (label, out)
        assert rate > 0, (label, out)
        growth[label] = grown
    beyond = float(re.search(rf"^bridge growth beyond baseline: ({NUMBER}) MB", out, re.M)[1])
    assert beyond == pytest.approx(max(growth["refused"], growth["blackhole"]) - growth["baseline"], abs=0.15), out


def check_delivery(out: str) -> None:
    sent = int(re.search(r"^delivery delay, (\d+) tickets at", out, re.M)[1])
    header(out, "path", "delivered", "p50", "p99", "max")
    for label in ("baseline: bare OTLP receiver (arrival)", "collector -> PostgreSQL row"):  # the collector ran
        delivered, p50, p99, slowest = row(out, label, 4)
        assert delivered == sent, (label, out)  # every ticket arrived
        assert 0 <= p50 <= p99 <= slowest < 60, (label, out)  # seconds
    assert re.search(r"^target p99 < 2 s: (met|NOT met)$", out, re.M), out


CHECKS = {"bench_bridge_span_cost": check_span_cost, "bench_bridge_ticket_end": check_ticket_end,
          "bench_bridge_memory": check_memory, "bench_bridge_delivery": check_delivery}


def test_all_four_benchmarks_exist():
    names = {p.stem for p in SCRIPTS}
    assert set(CHECKS) <= names


@pytest.mark.bench
@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.stem)
def test_bench_smoke(script):
    out = subprocess.run([sys.executable, str(script), "--smoke"], cwd=ROOT, capture_output=True, text=True,
                         timeout=90)
    assert out.returncode == 0, out.stderr[-3000:]
    assert script.stem in CHECKS, f"{script.name}: add the checks of its table to CHECKS"
    CHECKS[script.stem](out.stdout)
