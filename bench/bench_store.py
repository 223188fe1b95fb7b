"""The database side of ingest alone: the collector's write path versus a raw binary COPY.

    .venv/bin/python bench/bench_store.py              # 12,288 logs, 1 and 2 streams
    .venv/bin/python bench/bench_store.py --smoke      # small, < 30 s

No HTTP and no decoding: rows are prepared before the clock (`collector_api.contract.prepare.prepare_row`,
as the collector builds them). Each stream is a forked process writing transactions of 512 rows,
one path at a time into a fresh database with the collector's schema:

- `collector`: `collector_api.store.logs.writes.insert_workflow_logs` (RLS role, INSERT ... SELECT
  FROM unnest(binary arrays) ON CONFLICT DO NOTHING RETURNING, one transaction per batch);
- `COPY`: `COPY workflow_logs (...) FROM STDIN (FORMAT BINARY)` as the owner.

Besides rows/s it prints CPU per row: the whole machine's busy time and the writing processes'
own share, so what PostgreSQL spends is the difference. Exit 1 if a row count is wrong.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import resource
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from random import Random

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import multiprocessing as mp  # noqa: E402

import bench_ingest as ingest  # noqa: E402  (documents, schema set-up, COPY column types)
import psycopg  # noqa: E402
from psycopg import sql  # noqa: E402

from collector_api.store.logs.writes import LogRow, row_values  # noqa: E402

BATCH = 512
ROWS: list[LogRow] = []  # inherited by the forked writers


def write_copy(dsn: str, chunks: list[tuple[int, int]]) -> None:
    from psycopg.types.json import set_json_dumps

    with psycopg.connect(dsn) as conn:
        set_json_dumps(lambda text: text, context=conn)
        stmt = sql.SQL("COPY workflow_logs ({}) FROM STDIN (FORMAT BINARY)").format(
            sql.SQL(", ").join(map(sql.Identifier, ingest.COPY_COLUMNS)))
        for start, stop in chunks:
            with conn.transaction(), conn.cursor() as cur, cur.copy(stmt) as copy:
                copy.set_types(ingest.COPY_TYPES)
                for row in ROWS[start:stop]:
                    copy.write_row(row_values(row))


def write_collector(dsn: str, chunks: list[tuple[int, int]]) -> None:
    from collector_api.store.core.db import create_pool
    from collector_api.store.logs.writes import insert_workflow_logs

    async def go():
        async with create_pool(dsn, max_size=1) as pool:
            for start, stop in chunks:
                await insert_workflow_logs(pool, ingest.TENANT, ROWS[start:stop])
    asyncio.run(go())


PATHS = {"collector": write_collector, "COPY": write_copy}


def writer(path: str, dsn: str, chunks, barrier, out) -> None:
    error = None
    barrier.wait()
    before = resource.getrusage(resource.RUSAGE_SELF)
    try:
        PATHS[path](dsn, chunks)
    except Exception as exc:  # reported to the parent, which fails loudly
        error = f"{type(exc).__name__}: {exc}"
    after = resource.getrusage(resource.RUSAGE_SELF)
    out.put((after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime, error))


def busy_ticks() -> tuple[int, int]:
    values = list(map(int, Path("/proc/stat").read_text().splitlines()[0].split()[1:]))
    return sum(values) - values[3] - values[4], sum(values)


def run(ctx, admin: str, path: str, streams: int, n: int) -> tuple[float, float, float]:
    """rows/s, machine CPU ms per row, writer-process CPU ms per row."""
    dsn = ingest.fresh_database(admin, f"bench_store_{os.getpid()}")
    ingest.query(admin, "CHECKPOINT")
    bounds = [(i, min(i + BATCH, n)) for i in range(0, n, BATCH)]
    barrier, out = ctx.Barrier(streams + 1), ctx.Queue()
    procs = [ctx.Process(target=writer, args=(path, dsn, bounds[s::streams], barrier, out)) for s in range(streams)]
    for p in procs:
        p.start()
    barrier.wait(timeout=120)
    busy0, all0 = busy_ticks()
    started = time.perf_counter()
    results = [out.get(timeout=1800) for _ in procs]
    elapsed = time.perf_counter() - started
    busy1, all1 = busy_ticks()
    for p in procs:
        p.join(timeout=30)
    errors = [e for _, e in results if e]
    if errors:
        raise SystemExit(f"FAILED: {path}: {errors[0]}")
    stored = ingest.query(dsn, "SELECT count(*) FROM workflow_logs")[0]
    if stored != n:
        raise SystemExit(f"FAILED: {path} stored {stored} of {n} rows")
    cores_busy = (busy1 - busy0) / max(1, all1 - all0) * os.cpu_count()
    return n / elapsed, cores_busy * elapsed * 1000 / n, sum(c for c, _ in results) * 1000 / n


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--logs", type=int, default=12_288)
    ap.add_argument("--streams", default="1,2", help="comma-separated stream counts")
    ap.add_argument("--smoke", action="store_true", help="1,024 logs, < 30 s")
    args = ap.parse_args()
    if args.smoke:
        args.logs = 1024
    streams = [int(s) for s in args.streams.split(",")]
    now = datetime.now(UTC)
    month = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    rng = Random(7)
    from collector_api.contract.prepare import prepare_row

    ROWS[:] = [prepare_row(i, ingest.make_doc(rng, i, month, now), ingest.TENANT, None) for i in range(args.logs)]
    from flusso_obs.embedded import start_embedded

    workdir = Path(tempfile.mkdtemp(prefix="flusso-bench-store-"))
    handle = start_embedded(workdir)
    try:
        admin = handle.get_uri("postgres")
        ctx = mp.get_context("fork")
        lines = []
        for n_streams in streams:
            results = {path: run(ctx, admin, path, n_streams, args.logs) for path in ("COPY", "collector")}
            for path, (rate, machine, own) in results.items():
                lines.append((f"{path}, {n_streams} stream(s)", f"{rate:8,.0f} rows/s   CPU/row {machine:.3f} ms "
                                                                f"(writer process {own:.3f} ms)"))
            lines.append((f"ratio collector / COPY, {n_streams} stream(s)",
                           f"{results['collector'][0] / results['COPY'][0]:.2f}x"))
        width = max(len(a) for a, _ in lines)
        print(f"\n{args.logs} logs of ~8.3 KB, {BATCH} rows per transaction, "
              f"PostgreSQL {ingest.query(admin, 'SHOW server_version')[0]}, {os.cpu_count()} cores")
        print("=" * (width + 62))
        for a, b in lines:
            print(f"{a:<{width}}  {b}")
        print("=" * (width + 62), flush=True)
        return 0
    finally:
        handle.cleanup()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
