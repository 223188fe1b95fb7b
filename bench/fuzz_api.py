"""Long fuzz run: schemathesis from the app's own OpenAPI against a live server with real
PostgreSQL, keys and a session, and hypothesis-generated OTLP/gRPC calls to both Export methods of
its gRPC port; the same test modules as `make test`'s short mode (tests/fuzz/test_openapi_fuzz.py,
tests/fuzz/test_grpc_fuzz.py: 5 x the examples per gRPC test), with many more cases.

    .venv/bin/python bench/fuzz_api.py [--examples 500] [--smoke]

Prints the number of requests sent, the failures by kind (5xx, schema violations) and the time.
Target: >= 10,000 requests, 0 responses >= 500, 0 schema violations, 0 gRPC calls answered
UNKNOWN/INTERNAL or with an unexpected status (a failure of the gRPC tests).
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--examples", type=int, default=500, help="cases per operation and auth (default 500)")
    ap.add_argument("--smoke", action="store_true", help="3 cases per operation")
    args = ap.parse_args()
    examples = 3 if args.smoke else args.examples
    with tempfile.NamedTemporaryFile(prefix="flusso-fuzz-", suffix=".count", delete=False) as handle:
        count_file = handle.name
    env = {**os.environ, "FLUSSO_FUZZ_EXAMPLES": str(examples), "FLUSSO_FUZZ_COUNT_FILE": count_file}
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/fuzz"],
                          cwd=ROOT, env=env, capture_output=True, text=True)
    seconds = time.monotonic() - started
    sent = sum(1 for _ in open(count_file, encoding="utf-8"))
    os.unlink(count_file)
    out = proc.stdout + proc.stderr
    server_errors = len(re.findall(r"Server error", out))
    violations = len(re.findall(r"ST1\d\d ", out))
    summary = out.strip().splitlines()[-1] if out.strip() else ""
    print(f"schemathesis fuzz of the app's OpenAPI, {examples} cases per operation and auth")
    print(f"{'requests sent (incl. stateful steps)':<40}{sent:>10}")
    print(f"{'responses >= 500':<40}{server_errors:>10}")
    print(f"{'schema violations (ST1xx)':<40}{violations:>10}")
    print(f"{'seconds':<40}{seconds:>10.0f}")
    print(f"pytest: {summary}")
    if proc.returncode != 0:
        print(out[-6000:])
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main())
