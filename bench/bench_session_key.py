"""What the session key costs the collector per log: `prepare_row` (schema, tenant, ids,
promoted columns, derived figures, and now the session key) on the bench's realistic documents,
timed with the session key derived and, as the baseline in the same run, with the derivation
replaced by a no-op. CPU time of this process (time.process_time), best of `--rounds`.

    .venv/bin/python bench/bench_session_key.py [--logs 5000] [--rounds 7]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from random import Random

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.bench_ingest import TENANT, make_doc  # noqa: E402
from collector_api.contract import prepare  # noqa: E402


def run(texts: list[str]) -> float:
    """CPU seconds to prepare every document (parsed from its JSON text, as the receiver does)."""
    start = time.process_time()
    for i, text in enumerate(texts):
        prepare.prepare_row(i, json.loads(text), TENANT, None, source_text=text, may_hold_nul=False)
    return time.process_time() - start


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--logs", type=int, default=5000)
    ap.add_argument("--rounds", type=int, default=7)
    args = ap.parse_args()
    rng, now = Random(3), datetime.now(UTC)
    month = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    texts = [json.dumps(make_doc(rng, n, month, now)) for n in range(args.logs)]
    derive = prepare.session_key
    assert prepare.prepare_row(0, json.loads(texts[0]), TENANT, None).session_key, "no session key derived"
    timings: dict[str, list[float]] = {"without session key (baseline)": [], "with session key": []}
    for _ in range(args.rounds):  # interleaved, so a noisy neighbour hits both alike
        prepare.session_key = lambda client_id, document: None
        timings["without session key (baseline)"].append(run(texts))
        prepare.session_key = derive
        timings["with session key"].append(run(texts))
    base = min(timings["without session key (baseline)"]) / args.logs * 1e6
    print(f"prepare_row CPU per log, {args.logs:,} documents, best of {args.rounds} rounds")
    print(f"{'variant':<34} {'us/log':>8} {'vs baseline':>12}")
    for name, values in timings.items():
        per_log = min(values) / args.logs * 1e6
        print(f"{name:<34} {per_log:8.1f} {per_log / base - 1:+11.1%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
