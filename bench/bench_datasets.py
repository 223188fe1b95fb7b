"""Datasets and experiments at scale: creating a dataset of 10,000 items, and the experiment pages
on a large logs table.

Loads logs with bench_viewer's COPY loader (several tenants, 90 days, reviews), then:
  1. creates datasets of --items items of the largest tenant (store.datasets.writes.create_dataset:
     one INSERT ... SELECT), each timed; baseline in the same run: the bare SELECT of the same
     rows' copied columns (what any copy has to read);
  2. stores two experiments' logs (one per item each, tagged, drafts that differ) by COPY;
  3. times the experiment page (HTML and JSON, random item pages) and the comparison page over
     HTTP against the real app; baseline in the same run: the ticket search page, same client.

    .venv/bin/python bench/bench_datasets.py [--logs 300000] [--items 10000] [--dsn ...] [--smoke]
    .venv/bin/python bench/bench_datasets.py --no-load --dsn ...   # on a store loaded by bench_viewer --load-only

Targets: creation of 10,000 items <= 5 s; experiment page p95 <= 150 ms at 1,000,000 logs.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import bench_viewer as bv  # noqa: E402  (the loader, the server, the timing helpers)
import httpx  # noqa: E402
import orjson  # noqa: E402
import psycopg  # noqa: E402

TENANT = "client-00"  # the largest tenant of bench_viewer's Zipf-like volumes
WORDS = ("hello", "your", "order", "ships", "today", "tomorrow", "please", "refund", "the", "reset", "button",
         "hold", "we", "are", "sorry", "for", "delay", "tracking", "number", "is", "attached")


def _draft(rng: random.Random) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(25, 60))) + "."


def time_creation(dsn: str, items: int, repeat: int) -> tuple[list[float], list[float], int]:
    """(seconds per create_dataset, seconds per baseline SELECT, items per dataset)."""
    from collector_api.store.core.db import create_pool
    from collector_api.store.datasets.writes import Selection, create_dataset
    from collector_api.store.logs.reads import TicketFilters

    made, base, count = [], [], 0

    async def run() -> None:
        nonlocal count
        async with create_pool(dsn, max_size=2) as pool:
            for k in range(repeat):
                t0 = time.perf_counter()
                row = await create_dataset(pool, TENANT, f"bench-{k}-{uuid.uuid4().hex[:6]}",
                                           Selection("search", filters=TicketFilters(), limit=items), "bench")
                made.append(time.perf_counter() - t0)
                count = row["item_count"]
                async with pool.connection() as conn:
                    t0 = time.perf_counter()
                    await (await conn.execute(
                        "SELECT id, ticket_id, executed_at, status, log_data #> '{trace,ticket}',"
                        " log_data #>> '{trace,output,draft}' FROM workflow_logs WHERE client_id = %s"
                        " ORDER BY executed_at DESC, id DESC LIMIT %s", [TENANT, items])).fetchall()
                    base.append(time.perf_counter() - t0)

    asyncio.run(run())
    return made, base, count


def load_experiments(dsn: str, seed: int = 3) -> list[str]:
    """Two experiments on the first dataset: one tagged log per item each (COPY), drafts differing."""
    rng = random.Random(seed)
    now = datetime.now(UTC)
    with psycopg.connect(dsn, autocommit=True) as conn:
        dataset = conn.execute("SELECT id, name FROM datasets WHERE client_id = %s ORDER BY id LIMIT 1",
                               [TENANT]).fetchone()
        items = [r[0] for r in conn.execute("SELECT id FROM dataset_items WHERE dataset_id = %s ORDER BY id",
                                            [dataset[0]]).fetchall()]
        ids = []
        for name in ("prompt-v6", "prompt-v7"):
            exp = uuid.uuid4().hex
            ids.append(exp)
            conn.execute("INSERT INTO experiments (client_id, id, name, dataset_id, dataset_name)"
                         " VALUES (%s, %s, %s, %s, %s)", [TENANT, exp, name, dataset[0], dataset[1]])
            with conn.transaction():
                conn.execute("ALTER TABLE workflow_logs NO FORCE ROW LEVEL SECURITY")
                columns = [c for c in bv.COLUMNS if c != "id"] + ["experiment_id", "dataset_item_id"]
                with conn.cursor() as cur, cur.copy(f"COPY workflow_logs ({', '.join(columns)}) FROM STDIN") as cp:
                    for seq, item in enumerate(items):
                        executed = now - timedelta(seconds=rng.random() * 3600)
                        row = list(bv.make_document(rng, TENANT, 9_000_000 + seq, executed))
                        doc = orjson.loads(row[columns.index("log_data")])
                        doc["trace"]["output"]["draft"] = _draft(rng)
                        doc["identification"]["experiment"] = {"id": exp, "name": name, "item_id": item}
                        row[columns.index("log_data")] = orjson.dumps(doc).decode()
                        cp.write_row((*row, exp, item))
                conn.execute("ALTER TABLE workflow_logs FORCE ROW LEVEL SECURITY")
        # Steady state: autovacuum has visited the new rows (visibility map: index-only scans).
        conn.execute("VACUUM ANALYZE workflow_logs")
        conn.execute("VACUUM ANALYZE dataset_items")
    return ids


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--logs", type=int, default=None, help="logs to load (default 300,000; smoke 3,000)")
    ap.add_argument("--items", type=int, default=None, help="items per dataset (default 10,000; smoke 300)")
    ap.add_argument("--repeat", type=int, default=None, help="datasets created and timed (default 5; smoke 2)")
    ap.add_argument("--requests", type=int, default=None, help="timed requests per row (default 40; smoke 6)")
    ap.add_argument("--dsn", help="PostgreSQL DSN of an EMPTY database (default: embedded, temporary)")
    ap.add_argument("--no-load", action="store_true",
                    help="use the logs already in --dsn (e.g. bench_viewer.py --load-only); datasets are added")
    ap.add_argument("--smoke", action="store_true", help="small and fast: for CI")
    ap.add_argument("--serve", nargs=2, metavar=("DSN", "PORT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        bv.serve(args.serve[0], int(args.serve[1]))
        return 0
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    logs = args.logs or (3_000 if args.smoke else 300_000)
    items = args.items or (300 if args.smoke else 10_000)
    repeat = args.repeat or (2 if args.smoke else 5)
    requests = args.requests or (6 if args.smoke else 40)
    handle, tmp, server, dsn = None, None, None, args.dsn
    if dsn is None:
        from flusso_obs.embedded import start_embedded

        tmp = Path(tempfile.mkdtemp(prefix="flusso-bench-datasets-"))
        bv.check_disk(str(tmp), logs)
        handle = start_embedded(tmp)
        dsn = handle.get_uri("postgres")
    try:
        server = run_bench(dsn, 0 if args.no_load else logs, items, repeat, requests)
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=10)
        if handle is not None:
            handle.cleanup()
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


def run_bench(dsn: str, logs: int, items: int, repeat: int, requests: int) -> subprocess.Popen:
    from collector_api.store.core.migrate import apply_migrations

    apply_migrations(dsn)
    if logs:
        t0 = time.perf_counter()
        bv.load(dsn, logs, 8, 90)
        bv.load_reviews(dsn, logs // 10)
        print(f"loaded {logs:,} logs and ~{logs // 10:,} reviews in {time.perf_counter() - t0:.1f} s")
    made, base, count = time_creation(dsn, items, repeat)
    exps = load_experiments(dsn)
    asyncio.run(bv._users(dsn))
    with psycopg.connect(dsn) as conn:
        total = conn.execute("SELECT count(*) FROM workflow_logs").fetchone()[0]
    port = 19000 + os.getpid() % 1000
    server = bv.start_app(__file__, dsn, port)
    base_url = f"http://127.0.0.1:{port}"
    rng = random.Random(5)
    with psycopg.connect(dsn) as conn:
        item_ids = [r[0] for r in conn.execute("SELECT i.id FROM dataset_items i JOIN experiments e"
                                               " ON e.dataset_id = i.dataset_id WHERE e.id = %s", [exps[0]])]
    afters = [0] + [rng.choice(item_ids) for _ in range(requests)]
    rows = []
    with httpx.Client(base_url=base_url, timeout=60) as client:
        bv.login(client, "client@bench")
        plan = [
            ("baseline: ticket search page (own tenant)", ["/tickets"]),
            ("experiment page (HTML, 50 items + totals)", [f"/experiments/{exps[1]}?after={a}" for a in afters]),
            ("GET /api/v1/experiments/{id}", [f"/api/v1/experiments/{exps[1]}?after={a}" for a in afters]),
            ("compare two experiments (HTML)", [f"/experiments/compare?a={exps[0]}&b={exps[1]}&after={a}"
                                                for a in afters]),
            ("experiments list", ["/experiments"]),
            ("dataset page (100 items)", [f"/datasets/{name}" for name in _dataset_names(dsn)]),
        ]
        for label, urls in plan:
            urls = [rng.choice(urls) if len(urls) > 1 else urls[0] for _ in range(requests)]
            rows.append((label, *bv.measure(client, urls)))
    print(f"\ndataset creation, {count:,} items of {TENANT} (one INSERT ... SELECT), {repeat} runs, s")
    print(f"{'what':<52} {'median':>8} {'max':>8}")
    print(f"{'create_dataset':<52} {statistics.median(made):8.2f} {max(made):8.2f}")
    print(f"{'baseline: SELECT of the same rows to the client':<52} {statistics.median(base):8.2f} {max(base):8.2f}")
    print(f"\nexperiment pages, {total:,} logs ({2 * count:,} of them experiment runs), {requests} sequential"
          " requests per row, ms; server = Server-Timing, client = over HTTP on loopback")
    print(f"{'request':<52} {'server p50':>10} {'server p95':>10} {'client p95':>10} {'max':>8}")
    for label, server_ms, wall_ms in rows:
        print(f"{label:<52} {statistics.median(server_ms):10.1f} {bv.pct(server_ms, 0.95):10.1f}"
              f" {bv.pct(wall_ms, 0.95):10.1f} {max(wall_ms):8.1f}")
    return server


def _dataset_names(dsn: str) -> list[str]:
    with psycopg.connect(dsn) as conn:
        return [r[0] for r in conn.execute("SELECT name FROM datasets WHERE client_id = %s", [TENANT])]


if __name__ == "__main__":
    sys.exit(main())
