"""Erasure and per-tenant retention at scale: N logs, 10,000 tickets erased while ingest runs, and
one tenant's 30-day-old data removed by its retention.

    .venv/bin/python bench/bench_erasure.py                       # 1,000,000 logs, erase 10,000
    .venv/bin/python bench/bench_erasure.py --logs 300000         # what a shared 2-core box manages quickly
    .venv/bin/python bench/bench_erasure.py --smoke               # 30,000 logs, erase 1,000, < 2 min

A fresh embedded PostgreSQL, migrated, with monthly partitions over the last 3 months. Logs
(~1.5 KB documents) are generated in SQL: half for `acme` over the last 20 days, a quarter for
`globex` and a quarter for `ret` over the last 60 days. A real server (`flusso-obs serve`, a
separate process) takes ingest from this process (legacy POST /api/v1/logs of acme, new tickets,
at a steady rate) the whole time. Timed:

- `erase N tickets`: POST /api/v1/erasures of N random acme tickets, until its signed receipt;
- `ingest p50/p99 before` and `during`: request latency of the steady ingest in the 10 s before
  the erasure (the baseline) and while it ran; `ratio p99 during / before`;
- `retention of ret (30 days)`: one run of the tenant-retention job with `ret` at 30 days (its
  rows share every partition with the other tenants', so it deletes in batches);
- `baseline: DELETE ... WHERE client_id AND executed_at <`: the same rows of a copy of `ret`'s
  data (`ret2`, as much again) deleted by one plain statement, no receipt, no batches.

Exit 1 when a count is wrong (the receipt's workflow_logs, the rows left).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, date, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import psycopg  # noqa: E402

from collector_api.store.accounts.principals import create_api_key  # noqa: E402
from collector_api.store.core.db import create_pool  # noqa: E402
from collector_api.store.erasure.retention import run_retention, set_retention  # noqa: E402
from collector_api.store.logs.partitions import ensure_partitions  # noqa: E402

RECEIPT_KEY = "bench-receipt-key-" + "b" * 40
_GEN = (
    "INSERT INTO workflow_logs (client_id, ticket_id, status, executed_at, created_at, trace_id, log_data,"
    " execution_time_seconds, cost_usd)"
    " SELECT %(c)s, %(c)s || '-' || g, 'SUCCESS', t.at, t.at, md5(%(c)s || g),"
    " jsonb_build_object('ticket_info', jsonb_build_object('ticket_id', %(c)s || '-' || g,"
    "   'requester_email', '[email:' || substr(md5('e' || g), 1, 12) || ']'),"
    "   'trace', jsonb_build_object('draft', repeat(md5(g::text), 40))),"
    " 1 + 30 * random(), 0.01 * random()"
    " FROM generate_series(%(a)s::bigint, %(b)s::bigint) g,"
    " LATERAL (SELECT now() - make_interval(secs => %(spread)s * random() + 0 * g) AS at) t")


def load(dsn: str, client: str, count: int, spread_days: float) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("INSERT INTO tenants (client_id) VALUES (%s) ON CONFLICT DO NOTHING", (client,))
        for start in range(0, count, 100_000):
            conn.execute(_GEN, {"c": client, "a": start, "b": min(count, start + 100_000) - 1,
                                "spread": spread_days * 86400})


def prepare(dsn: str, logs: int) -> None:
    today = datetime.now(UTC).date()
    index = today.year * 12 + today.month - 1 - 3
    with psycopg.connect(dsn, autocommit=True) as conn:
        ensure_partitions(conn, first=date(index // 12, index % 12 + 1, 1))
    started = time.perf_counter()
    load(dsn, "acme", logs // 2, 20)
    load(dsn, "globex", logs // 4, 60)
    load(dsn, "ret", logs // 4, 60)
    load(dsn, "ret2", logs // 4, 60)  # the baseline's copy (deleted by one plain statement)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("ANALYZE workflow_logs")
    print(f"loaded {logs + logs // 4:,} logs in {time.perf_counter() - started:.0f} s", file=sys.stderr)


class Ingest:
    """Steady legacy ingest of new acme tickets from a few threads; latency per request, by phase."""

    def __init__(self, url: str, key: str, rate: float, threads: int = 2):
        self.url, self.key, self.pause = url, key, threads / rate
        self.phase, self.samples, self.errors = "warmup", {}, []
        self.stop, self.count = threading.Event(), 0
        self.threads = [threading.Thread(target=self.run, args=(i,), daemon=True) for i in range(threads)]

    def run(self, worker: int) -> None:
        with httpx.Client(timeout=30) as client:
            n = 0
            while not self.stop.is_set():
                n += 1
                doc = {"identification": {"client_id": "acme", "workflow_version": "1"},
                       "ticket_info": {"ticket_id": f"new-{worker}-{n}", "executed_at": datetime.now(UTC).isoformat(),
                                       "execution_time_seconds": 2.0},
                       "outcome": {"status": "SUCCESS"}, "metrics": {}, "trace": {"draft": "x" * 1000}}
                phase, t0 = self.phase, time.perf_counter()
                r = client.post(f"{self.url}/api/v1/logs", json=doc, headers={"X-API-Key": self.key})
                self.samples.setdefault(phase, []).append(time.perf_counter() - t0)
                if r.status_code != 200:
                    self.errors.append(r.status_code)
                time.sleep(max(0.0, self.pause - (time.perf_counter() - t0)))


def p(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


async def _keys(dsn: str) -> tuple[str, str]:
    async with create_pool(dsn, max_size=2) as pool:
        ingest = await create_api_key(pool, "acme", "ingest")
        return ingest.secret, (await create_api_key(pool, "acme", "erase")).secret


def start_server(dsn: str, port: int, data_dir: str) -> subprocess.Popen:
    env = {**os.environ, "DATABASE_URL": dsn, "FLUSSO_RECEIPT_KEY": RECEIPT_KEY, "FLUSSO_SESSION_SECRET": "s" * 48,
           "FLUSSO_DATA_DIR": data_dir, "FLUSSO_RETENTION_INTERVAL_S": "0", "FLUSSO_ROLLUP_REFRESH_SECONDS": "0",
           "FLUSSO_ALERT_INTERVAL_S": "0", "FLUSSO_TENANT_RATE_LIMIT_PER_S": "0", "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "flusso_obs.cli", "serve", "--port", str(port)], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(300):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError("the server did not start")


def erase_during_ingest(dsn: str, url: str, erase: int, logs: int, rate: float) -> dict[str, float]:
    ingest_key, erase_key = asyncio.run(_keys(dsn))
    ingest = Ingest(url, ingest_key, rate)
    for t in ingest.threads:
        t.start()
    time.sleep(3)
    ingest.phase = "before"
    time.sleep(10)
    tickets = [f"acme-{i}" for i in random.Random(7).sample(range(logs // 2), erase)]
    ingest.phase = "during"
    started = time.perf_counter()
    r = httpx.post(f"{url}/api/v1/erasures", headers={"X-API-Key": erase_key}, timeout=600,
                   json={"request_id": "bench-1", "ticket_ids": tickets})
    took = time.perf_counter() - started
    ingest.phase = "after"
    time.sleep(1)
    ingest.stop.set()
    for t in ingest.threads:
        t.join(30)
    receipt = r.json()
    if r.status_code != 200 or receipt["counts"]["workflow_logs"] != erase:
        raise SystemExit(f"FAIL: erasure answered {r.status_code}: {json.dumps(receipt)[:500]}")
    before, during = ingest.samples["before"], ingest.samples.get("during", [])
    if len(during) < 5:  # a very short erasure: the requests around it
        during = during + ingest.samples.get("after", [])[:20]
    if ingest.errors:
        raise SystemExit(f"FAIL: ingest errors during the run: {sorted(set(ingest.errors))}")
    return {f"erase {erase:,} tickets (s)": took, "ingest p50 before (ms)": 1000 * p(before, 50),
            "ingest p99 before (ms)": 1000 * p(before, 99), "ingest p50 during (ms)": 1000 * p(during, 50),
            "ingest p99 during (ms)": 1000 * p(during, 99), "ratio p99 during / before": p(during, 99) / p(before, 99),
            "ingest requests during": float(len(ingest.samples.get("during", [])))}


async def _retention(dsn: str) -> tuple[float, dict]:
    async with create_pool(dsn, max_size=4) as pool:
        await set_retention(pool, "ret", 30)
        started = time.perf_counter()
        rows = await run_retention(pool, max_batches=100_000)
        return time.perf_counter() - started, rows[0]["counts"] if rows else {}


def retention(dsn: str) -> dict[str, float]:
    with psycopg.connect(dsn) as conn:
        expected = conn.execute("SELECT count(*) FROM workflow_logs WHERE client_id = 'ret' AND executed_at <"
                                " date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' - interval '30 days'"
                                ).fetchone()[0]
    took, counts = asyncio.run(_retention(dsn))
    if counts.get("workflow_logs") != expected:
        raise SystemExit(f"FAIL: retention counted {counts} for {expected} expired rows")
    with psycopg.connect(dsn, autocommit=True) as conn:
        started = time.perf_counter()
        deleted = conn.execute("DELETE FROM workflow_logs WHERE client_id = 'ret2' AND executed_at <"
                               " date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' - interval '30 days'"
                               ).rowcount
        plain = time.perf_counter() - started
    if abs(deleted - expected) > expected * 0.2:  # the same spread of random dates: about as many rows
        raise SystemExit(f"FAIL: the baseline DELETE removed {deleted:,} rows, expected about {expected:,}")
    return {f"retention of ret, 30 days ({expected:,} rows) (s)": took,
            f"baseline: one plain DELETE of ret2's {deleted:,} (s)": plain,
            "ratio retention / plain DELETE": took / plain}


def run(dsn: str, logs: int, erase: int, rate: float) -> dict[str, float]:
    prepare(dsn, logs)
    with tempfile.TemporaryDirectory() as data_dir:
        port = 18000 + os.getpid() % 1000
        server = start_server(dsn, port, data_dir)
        try:
            results = erase_during_ingest(dsn, f"http://127.0.0.1:{port}", erase, logs, rate)
        finally:
            server.terminate()
            server.wait(30)
    return {**results, **retention(dsn)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--logs", type=int, default=1_000_000, help="logs of acme, globex and ret together")
    parser.add_argument("--erase", type=int, default=10_000, help="acme tickets erased in one request")
    parser.add_argument("--rate", type=float, default=40.0, help="steady ingest, requests per second")
    parser.add_argument("--smoke", action="store_true", help="30,000 logs, erase 1,000")
    args = parser.parse_args()
    logs, erase = (30_000, 1_000) if args.smoke else (args.logs, args.erase)
    from config.server import ServerSettings
    from flusso_obs.database import database, migrate
    with tempfile.TemporaryDirectory() as tmp:
        with database(ServerSettings(_env_file=None, flusso_data_dir=Path(tmp))) as dsn:
            migrate(dsn)
            results = run(dsn, logs, erase, args.rate)
    print(f"\n{logs:,} logs (+{logs // 4:,} for the baseline), {erase:,} tickets erased, ingest {args.rate:g} req/s")
    print(f"{'measure':<58} {'value':>10}")
    for name, value in results.items():
        print(f"{name:<58} {value:>10.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
