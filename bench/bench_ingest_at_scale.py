"""Ingest into a large store versus an empty one, in the same run: does a full database slow ingest?

    .venv/bin/python bench/bench_viewer.py --logs 10000000 --dsn postgresql://... --load-only
    .venv/bin/python bench/bench_ingest_at_scale.py --dsn postgresql://... [--logs 10000] [--rounds 4]

--dsn is the (superuser) DSN of the database holding the large store. An empty database on the same
server is created and migrated beside it, and dropped at the end. Two collectors (`flusso-obs
serve`, all their jobs running) serve one database each for the whole run. Each round sends --logs
fresh pre-encoded OTLP/HTTP logs (bench_ingest's documents and senders) to one collector and then
the same number to the other, the order alternating between rounds, and measures logs/s and CPU per
log (PostgreSQL's process tree + the collector's). The ratio loaded/empty of each round is printed
with the median. Target: ingest into the large store within 10% of the empty one (ratio >= 0.90).

The two databases differ only in what they store. The logs go to a tenant new in both databases
(`bench-scale-<pid>`): with one fixed tenant, the large store's copy kept every earlier run's logs
(80,000 a run at the defaults) and each run compared a bigger tenant with an empty one; --tenant
names one on purpose (a tenant with history in the large store, new in the empty one). And the
evaluators enabled in the large store for every tenant are created in the empty one too, so both
collectors' evaluation jobs score the new logs alike (else the empty side skips that work). The
first phase waits until the large store's last write is SETTLE_S old: the alert job consumes its
rollups' queue every 60 s (migration 0030; before, it went over a log's tenant and minute for up
to 2 minutes after it was stored), and the daily rollups' refresh consumes its queue every 30 s,
so logs of a run just before would still be worked on during this one's phases.

PostgreSQL's CPU per log is measured two ways. Per phase: the whole server's CPU during the phase,
which also holds whatever the other database's jobs happen to do then (a job runs every 30-60 s, a
phase lasts seconds). Per database: every backend of each database (the collector's connections,
its jobs', autovacuum's), sampled from /proc every 0.5 s from the first phase until TAIL_S after the
last, divided by the logs sent to it: all the work the ingest caused, whenever a job did it.
"""
from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from random import Random

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import bench_ingest as bi  # noqa: E402  (documents, encoder, senders, servers, CPU accounting)
import psycopg  # noqa: E402
from psycopg import sql  # noqa: E402
from psycopg.conninfo import conninfo_to_dict  # noqa: E402
from psycopg.types.json import Jsonb  # noqa: E402

PROBE = "bench-ingest-scale-probe"  # application_name of the bench's own connections: not counted
TAIL_S = 90.0  # after the last phase, the jobs finish its logs (rollups every 30 s, alerts every 60 s)


def probe(dsn: str, text: str):
    with psycopg.connect(dsn, autocommit=True, application_name=PROBE) as conn:
        cur = conn.execute(text)
        return cur.fetchone() if cur.description else None


class DatabaseCpu(threading.Thread):
    """CPU seconds per database of the server behind `dsn` (every backend with a database: client
    connections, parallel and autovacuum workers), from /proc every 0.5 s; the bench's own
    connections (PROBE) are left out. A backend first seen after the start counts from its birth."""

    def __init__(self, dsn: str):
        super().__init__(daemon=True)
        self.dsn, self.seconds, self.done = dsn, Counter(), threading.Event()

    def run(self) -> None:
        tick, last, first = os.sysconf("SC_CLK_TCK"), {}, True
        with psycopg.connect(self.dsn, autocommit=True, application_name=PROBE) as conn:
            while True:
                rows = conn.execute(
                    "SELECT a.pid, a.datname FROM pg_stat_activity a"
                    " LEFT JOIN pg_stat_activity l ON l.pid = a.leader_pid"
                    " WHERE a.datname IS NOT NULL AND a.pid <> pg_backend_pid()"
                    " AND coalesce(l.application_name, a.application_name) <> %s", (PROBE,)).fetchall()
                for pid, db in rows:
                    try:
                        f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                    except OSError:
                        continue
                    cpu = (int(f[11]) + int(f[12])) / tick
                    self.seconds[db] += cpu - last.get(pid, cpu if first else 0.0)
                    last[pid] = cpu
                first = False
                if self.done.wait(0.5):
                    return


def phase(ctx, bodies: list[bytes], port: int, key: str, procs: int, server_pid: int, postmaster: int | None,
          dsn: str, logs: int) -> tuple[float, float, float]:
    """Send `bodies` with `procs` senders: (logs/s, PostgreSQL CPU ms per log, collector CPU ms per log)."""
    bi.BODIES[:] = bodies  # inherited by the forked senders
    before_rows = probe(dsn, "SELECT count(*) FROM workflow_logs")[0]
    probe(dsn, "CHECKPOINT")
    cpu0 = (bi.tree_cpu_seconds(postmaster) if postmaster else float("nan"), bi.tree_cpu_seconds(server_pid))
    shares = [list(range(p, len(bodies), procs)) for p in range(procs)]
    elapsed, _ = bi.run_workers(ctx, [(bi.sender, (s, port, key)) for s in shares], timeout=1800)
    cpu1 = (bi.tree_cpu_seconds(postmaster) if postmaster else float("nan"), bi.tree_cpu_seconds(server_pid))
    stored = probe(dsn, "SELECT count(*) FROM workflow_logs")[0] - before_rows
    if stored != logs:
        raise SystemExit(f"FAILED: sent {logs} logs, {stored} new rows stored")
    return logs / elapsed, (cpu1[0] - cpu0[0]) * 1000 / logs, (cpu1[1] - cpu0[1]) * 1000 / logs


EVALUATOR_COLUMNS = ("name", "kind", "version", "client_id", "sample_rate", "filter_workflow", "filter_status",
                     "params", "monthly_cost_cap_usd")


def mirror_evaluators(big_dsn: str, empty_dsn: str) -> list[str]:
    """Create in the empty database the evaluators enabled in the large store for every tenant
    (the bench's tenant is new in both); their names."""
    cols = sql.SQL(", ").join(map(sql.Identifier, EVALUATOR_COLUMNS))
    with psycopg.connect(big_dsn) as conn:
        rows = conn.execute(sql.SQL("SELECT {} FROM evaluators WHERE enabled AND deleted_at IS NULL"
                                    " AND client_id IS NULL ORDER BY id").format(cols)).fetchall()
    with psycopg.connect(empty_dsn, autocommit=True) as conn:
        for row in rows:
            conn.execute(sql.SQL("INSERT INTO evaluators ({}) VALUES ({})").format(
                cols, sql.SQL(", ").join(sql.Placeholder() * len(EVALUATOR_COLUMNS))),
                [Jsonb(v) if c == "params" else v for c, v in zip(EVALUATOR_COLUMNS, row, strict=True)])
    return [r[0] for r in rows]


SETTLE_S = 90.0  # the alert job's interval (60 s; the daily rollups' is 30 s) + a run


def settle(dsn: str) -> None:
    """Wait until the newest log of `dsn` is SETTLE_S old (an earlier run's, say)."""
    age = bi.query(dsn, "SELECT extract(epoch FROM now() - max(created_at))::float8 FROM workflow_logs")[0]
    if age is not None and age < SETTLE_S:
        print(f"the large store was written {age:.0f} s ago: waiting {SETTLE_S - age:.0f} s for its jobs", flush=True)
        time.sleep(SETTLE_S - age)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dsn", required=True, help="superuser DSN of the database holding the large store")
    ap.add_argument("--logs", type=int, default=10_000, help="logs per phase (one phase per database per round)")
    ap.add_argument("--rounds", type=int, default=4, help="an even number: each database goes first as often")
    ap.add_argument("--procs", type=int, default=4, help="sender processes, one connection each")
    ap.add_argument("--batch", type=int, default=512, help="log records per request")
    ap.add_argument("--live", action="store_true",
                    help="logs executed in the last 5 minutes (live traffic) instead of spread over the month")
    ap.add_argument("--tenant", help="the tenant the logs go to (default: bench-scale-<pid>, new in both databases);"
                    " an existing tenant of the large store measures ingest into a tenant with history")
    args = ap.parse_args()
    bi.TENANT = args.tenant or f"bench-scale-{os.getpid()}"  # read by bench_ingest's documents and new_key
    ctx = mp.get_context("fork")
    workdir = Path(tempfile.mkdtemp(prefix="flusso-bench-ingest-scale-"))
    empty_name = f"bench_ingest_scale_{os.getpid()}"
    servers = []
    try:
        big = bi.query(args.dsn, "SELECT count(*), pg_database_size(current_database()) FROM workflow_logs")
        empty_dsn = bi.fresh_database(args.dsn, empty_name)
        targets = {"loaded": args.dsn, "empty": empty_dsn}
        keys = {name: asyncio.run(bi.new_key(dsn)) for name, dsn in targets.items()}
        mirrored = mirror_evaluators(args.dsn, empty_dsn)
        print(f"evaluators enabled in both databases: {', '.join(mirrored) or 'none'}", flush=True)
        for name, dsn in targets.items():
            (workdir / name).mkdir()
            servers.append((name, *bi.start_server(dsn, workdir / name)))
        now = datetime.now(UTC)
        # --live: tickets that finished in the last 5 minutes, as live traffic arrives (the time-keyed
        # indexes grow at their right edge); default: spread over the month so far, a backfill's shape.
        month = now - timedelta(minutes=5) if args.live else now.replace(day=1, hour=0, minute=0, second=0,
                                                                         microsecond=0)
        rng, seq = Random(11), 20_000_000
        t0 = time.perf_counter()
        bodies = []
        for _ in range(args.rounds * 2):
            docs = [bi.make_doc(rng, seq + i, month, now) for i in range(args.logs)]
            seq += args.logs
            bodies.append(bi.encode_requests(docs, args.batch))
        print(f"prepared {args.rounds * 2} x {args.logs:,} logs in {time.perf_counter() - t0:.1f} s; large store:"
              f" {big[0]:,} logs, {big[1] / 1e9:.1f} GB", flush=True)
        postmaster = (bi.postgres_pids(args.dsn) or [None])[0]
        settle(args.dsn)
        results: dict[str, list[tuple[float, float, float]]] = {"loaded": [], "empty": []}
        per_db = DatabaseCpu(args.dsn)
        per_db.start()
        for r in range(args.rounds):
            order = servers if r % 2 == 0 else servers[::-1]
            for name, proc, port in order:
                results[name].append(phase(ctx, bodies.pop(), port, keys[name], args.procs, proc.pid, postmaster,
                                           targets[name], args.logs))
            print(f"round {r + 1}: loaded {results['loaded'][-1][0]:,.0f} logs/s, empty"
                  f" {results['empty'][-1][0]:,.0f} logs/s", flush=True)
        print(f"sampling each database's CPU {TAIL_S:.0f} s more while the jobs finish", flush=True)
        time.sleep(TAIL_S)
        per_db.done.set()
        per_db.join()
        dbnames = {"loaded": conninfo_to_dict(args.dsn).get("dbname") or "postgres",
                   "empty": empty_name}
        report(results, big[0], args, {k: per_db.seconds[v] * 1000 / (args.rounds * args.logs)
                                       for k, v in dbnames.items()})
        return 0
    finally:
        for _, proc, _ in servers:
            bi.stop_server(proc)
        with psycopg.connect(args.dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(empty_name)))
        shutil.rmtree(workdir, ignore_errors=True)


def report(results: dict, big: int, args, per_log: dict[str, float]) -> None:
    ratios = [a[0] / b[0] for a, b in zip(results["loaded"], results["empty"], strict=True)]
    print(f"\ningest into {big:,} stored logs vs an empty database, {args.rounds} rounds of {args.logs:,} logs"
          f" each, {args.procs} senders, {args.batch} logs per request (gzip), executed "
          + ("in the last 5 minutes (--live)" if args.live else "over the month so far"))
    print(f"{'database':<10} {'logs/s median':>14} {'PG CPU ms/log':>14} {'collector CPU ms/log':>21}"
          f" {'its PG CPU ms/log':>18}")
    for name in ("empty", "loaded"):
        rows = results[name]
        print(f"{name:<10} {statistics.median(r[0] for r in rows):14,.0f}"
              f" {statistics.median(r[1] for r in rows):14.3f} {statistics.median(r[2] for r in rows):21.3f}"
              f" {per_log[name]:18.3f}")
    print(f"(PG CPU: the whole server's during the phases; its PG CPU: the database's own backends over the run,"
          f" jobs included; loaded/empty {per_log['loaded'] / per_log['empty']:.2f})")
    median, geo = statistics.median(ratios), statistics.geometric_mean(ratios)
    print(f"loaded/empty logs/s per round: {', '.join(f'{x:.2f}' for x in ratios)}; median {median:.2f},"
          f" geometric mean {geo:.2f} (target >= 0.90: {'PASS' if min(median, geo) >= 0.90 else 'MISS'})")
    print("(the phase sent first in a round tends to be the faster: use an even --rounds, so each database"
          " goes first equally often)")


if __name__ == "__main__":
    sys.exit(main())
