"""Two `flusso-obs serve` processes against one PostgreSQL: ingest with 1 vs 2 collector
processes, CPU per log, the single-node ceiling, and proof that every leader-elected job ran
once per interval across both processes.

    .venv/bin/python bench/bench_two_collectors.py                 # 8,000 logs a phase, 3 rounds
    .venv/bin/python bench/bench_two_collectors.py --smoke         # small, ~90 s
    .venv/bin/python bench/bench_two_collectors.py --dsn postgresql://...   # a server of your own

Both servers run the whole time (FLUSSO_GRPC_PORT=0, their own HTTP ports, the same secrets, as
replicas behind a load balancer); a phase sends the same pre-encoded OTLP/HTTP requests
(bench_ingest's documents and encoder) either all to server A or split evenly over A and B, and
the phases alternate (1, 2, 2, 1, 1, 2, ...) so both see the same machine load. Each phase starts
from an empty workflow_logs, and every log sent is counted back in PostgreSQL.

Job proof: a trigger (bench-only DDL, in the bench database) copies every write of `job_runs`
into a history table with the writer's application_name (each server gets its own PGAPPNAME).
For each leader job: its runs by server, the shortest gap between two starts (must be >= the
interval), and whether a run started before the previous one had finished (must not). The job
intervals are shortened (rollups 2 s, alerts 3 s, trace assembly 1 s) so the window sees many.
Exit 1 when a log is missing, a request fails, or a job ran twice in one interval.
"""
from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import secrets
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from random import Random

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_ingest as bi  # noqa: E402  (documents, encoder, senders, process CPU)

JOB_INTERVALS = {"FLUSSO_ROLLUP_REFRESH_SECONDS": "2", "FLUSSO_ALERT_INTERVAL_S": "3",
                 "FLUSSO_TRACE_ASSEMBLY_SECONDS": "1"}
INTERVAL_OF = {"rollup-refresh": 2.0, "alert-evaluate": 3.0, "trace-assembly": 1.0, "derived-backfill": 30.0,
               "session-backfill": 30.0, "excerpt-backfill": 30.0, "evaluate": 30.0, "erasure-resume": 300.0,
               "tenant-retention": 3600.0, "staging-upkeep": 60.0, "partition-upkeep": 3600.0}
# (flusso_obs/jobs.py with the env above)

HISTORY_DDL = """
CREATE TABLE bench_job_history (name text, started timestamptz, finished timestamptz, app text, error text);
CREATE FUNCTION bench_job_history_tg() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO bench_job_history VALUES (NEW.name, NEW.last_run_at, clock_timestamp(),
                                          current_setting('application_name'), NEW.last_error);
    RETURN NEW;
END $$;
CREATE TRIGGER bench_job_history AFTER INSERT OR UPDATE ON job_runs
    FOR EACH ROW EXECUTE FUNCTION bench_job_history_tg();
"""


@dataclass
class Phase:
    servers: int
    rate: float
    seconds: float
    pg_ms: float  # PostgreSQL CPU per log
    collector_ms: float  # CPU of the serve processes per log (both, whichever took load)
    wal_bytes: float  # WAL per log
    retries: int
    p99_ms: float

    @property
    def pg_cores(self) -> float:  # CPU seconds per second of the phase: cores kept busy
        return self.pg_ms * self.rate / 1000

    @property
    def collector_cores(self) -> float:
        return self.collector_ms * self.rate / 1000


@dataclass
class JobCheck:
    name: str
    interval: float
    window: float
    runs: dict[str, int] = field(default_factory=dict)
    min_gap: float = float("inf")
    overlaps: int = 0
    errors: int = 0

    @property
    def ok(self) -> bool:
        most = int(self.window // self.interval) + 1  # a first run at once, then one per interval
        return self.min_gap >= self.interval - 0.001 and not self.overlaps and 1 <= sum(self.runs.values()) <= most


def wal_lsn(dsn: str) -> int:
    return int(bi.query(dsn, "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint")[0])


def run_phase(ctx, n_servers: int, servers: list[tuple], dsn: str, admin: str, key: str, procs: int,
              logs: int, postmaster: int | None, cpus: set[int] | None = None) -> Phase:
    """Send every pre-encoded request once, sender p to server p % n_servers; verify the count."""
    bi.query(dsn, "TRUNCATE workflow_logs")
    bi.query(admin, "CHECKPOINT")
    shares = [list(range(p, len(bi.BODIES), procs)) for p in range(procs)]
    targets = [(bi.sender, (share, servers[p % n_servers][1], key)) for p, share in enumerate(shares)]
    cpu0 = [bi.tree_cpu_seconds(s[0].pid) for s in servers]
    pg0, wal0 = bi.tree_cpu_seconds(postmaster) if postmaster else float("nan"), wal_lsn(dsn)
    elapsed, results = bi.run_workers(ctx, targets, timeout=1800, cpus=cpus)
    cpu1 = [bi.tree_cpu_seconds(s[0].pid) for s in servers]
    pg1, wal1 = bi.tree_cpu_seconds(postmaster) if postmaster else float("nan"), wal_lsn(dsn)
    stored = bi.query(dsn, "SELECT count(*), count(DISTINCT trace_id) FROM workflow_logs")
    if tuple(stored) != (logs, logs):
        raise SystemExit(f"FAILED: sent {logs} logs to {n_servers} server(s), stored {stored[0]}"
                         f" ({stored[1]} distinct)")
    latencies = [x for r in results for x in r[1]]
    return Phase(n_servers, logs / elapsed, elapsed, (pg1 - pg0) * 1000 / logs,
                 sum(b - a for a, b in zip(cpu0, cpu1, strict=True)) * 1000 / logs, (wal1 - wal0) / logs,
                 sum(r[2] for r in results), bi.pct(latencies, .99) * 1000)


def job_checks(dsn: str, window: float) -> list[JobCheck]:
    """Every recorded run of every leader job, checked against its interval."""
    rows = bi_rows(dsn, "SELECT name, app, extract(epoch FROM started)::float8, extract(epoch FROM finished)::float8,"
                        " error FROM bench_job_history ORDER BY name, started")
    checks: dict[str, JobCheck] = {}
    last: dict[str, tuple[float, float]] = {}
    for name, app, started, finished, error in rows:
        if name not in INTERVAL_OF:
            raise SystemExit(f"FAILED: job {name!r} ran but its interval is not in INTERVAL_OF (flusso_obs/jobs.py)")
        check = checks.setdefault(name, JobCheck(name, INTERVAL_OF[name], window))
        check.runs[app] = check.runs.get(app, 0) + 1
        check.errors += error is not None
        if name in last:
            check.min_gap = min(check.min_gap, started - last[name][0])
            check.overlaps += started < last[name][1]
        last[name] = (started, finished)
    return list(checks.values())


def bi_rows(dsn: str, text: str) -> list[tuple]:
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        return conn.execute(text).fetchall()


def stored_bytes_per_log(dsn: str) -> float:
    """Table + TOAST + indexes of workflow_logs (every partition) per row stored."""
    size, rows = bi.query(dsn, "SELECT (SELECT sum(pg_total_relation_size(relid)) FROM"
                               " pg_partition_tree('workflow_logs')), (SELECT count(*) FROM workflow_logs)")
    return float(size) / max(rows, 1)


def pin(admin: str, servers: list[tuple]) -> set[int]:
    """PostgreSQL on the first half of this process's cores, both servers (and the senders,
    through run_workers) on the rest; the cores of the collectors and senders."""
    cores = sorted(os.sched_getaffinity(0))
    pg_pids = bi.postgres_pids(admin)
    if len(cores) < 2 or not pg_pids:
        raise SystemExit("--pin needs 2+ cores and a PostgreSQL server running on this machine")
    db_cpus, app_cpus = set(cores[:len(cores) // 2]), set(cores[len(cores) // 2:])
    bi.set_cpus(pg_pids, db_cpus)
    for proc, _, _ in servers:
        bi.set_cpus(bi._tree(proc.pid), app_cpus)
    print(f"pinned: PostgreSQL on cores {sorted(db_cpus)}, collectors and senders on {sorted(app_cpus)}", flush=True)
    return app_cpus


def start_pair(dsn: str, workdir: Path) -> list[tuple]:
    """Servers A and B: same database and secrets, their own ports, data dirs and application_name."""
    shared = {"FLUSSO_PII_HASH_KEY": secrets.token_urlsafe(32), "FLUSSO_ALERT_SECRET_KEY": secrets.token_urlsafe(32),
              **JOB_INTERVALS}
    servers = []
    for name in ("A", "B"):
        env = dict(shared, PGAPPNAME=f"serve-{name}", FLUSSO_DATA_DIR=str(workdir / f"data-{name}"))
        servers.append((*bi.start_server(dsn, workdir, 1, env, f"server-{name}.log"), name))
    return servers


def print_table(phases: list[Phase], checks: list[JobCheck], window: float, bytes_per_log: float,
                args: argparse.Namespace, pg_version: str) -> None:
    def median(values: list[float]) -> float:
        ordered = sorted(values)
        return ordered[len(ordered) // 2]

    by = {n: [p for p in phases if p.servers == n] for n in (1, 2)}
    pairs = [b.rate / a.rate for a, b in zip(by[1], by[2], strict=False)]
    print(f"\ningest, {args.logs:,} logs a phase (~8 KB each, {args.batch}/request, gzip), {args.procs} senders; "
          f"phases alternate; {len(by[1])} per configuration")
    print(f"{'collectors':<11} {'logs/s (each phase)':<34} {'median':>8} {'p99 ms':>7} {'PG ms/log':>10} "
          f"{'serve ms/log':>13} {'WAL KB/log':>11} {'PG cores':>9} {'serve cores':>12}")
    for n in (1, 2):
        rates = " ".join(f"{p.rate:,.0f}" for p in by[n])
        print(f"{n:<11} {rates:<34} {median([p.rate for p in by[n]]):8,.0f} "
              f"{median([p.p99_ms for p in by[n]]):7,.0f} {median([p.pg_ms for p in by[n]]):10.3f} "
              f"{median([p.collector_ms for p in by[n]]):13.3f} {median([p.wal_bytes for p in by[n]]) / 1024:11.1f}"
              f" {median([p.pg_cores for p in by[n]]):9.2f} {median([p.collector_cores for p in by[n]]):12.2f}")
    print(f"2 vs 1 collectors, paired by round: {' '.join(f'{r:.2f}x' for r in pairs)}  "
          f"(median {median(pairs):.2f}x); retried 503/429: {sum(p.retries for p in phases)}")
    pg_ms = median([p.pg_ms for p in phases])
    ceiling = 1000 / pg_ms
    print(f"PostgreSQL CPU per log {pg_ms:.3f} ms -> {ceiling:,.0f} logs/s per PostgreSQL core "
          f"(collectors on other machines); stored {bytes_per_log / 1024:.1f} KB/log (table+TOAST+indexes) -> "
          f"{ceiling * bytes_per_log * 86400 / 1e9:,.0f} GB/day per PostgreSQL core at that rate")
    both = pg_ms + median([p.collector_ms for p in phases])
    print(f"PostgreSQL + collectors {both:.3f} ms CPU per log -> {os.cpu_count() * 1000 / both:,.0f} logs/s on these"
          f" {os.cpu_count()} cores if nothing else ran ({os.cpu_count() * 1000 / both * 86400 / 1e6:,.0f} M logs/day,"
          f" {os.cpu_count() * 1000 / both * bytes_per_log * 86400 / 1e9:,.0f} GB/day stored)")
    print(f"\nleader-elected jobs over {window:.0f} s, both servers looping (intervals shortened by env)")
    print(f"{'job':<18} {'interval s':>10} {'runs A':>7} {'runs B':>7} {'min gap s':>10} {'overlaps':>9} "
          f"{'errors':>7}  once per interval")
    for c in sorted(checks, key=lambda c: c.interval):
        gap = "-" if c.min_gap == float("inf") else f"{c.min_gap:.2f}"
        print(f"{c.name:<18} {c.interval:10.0f} {c.runs.get('serve-A', 0):7} {c.runs.get('serve-B', 0):7} "
              f"{gap:>10} {c.overlaps:9} {c.errors:7}  {'PASS' if c.ok else 'FAIL'}")
    print(f"PostgreSQL {pg_version} / Python {sys.version.split()[0]} / {os.cpu_count()} cores, "
          f"load average at the end {os.getloadavg()[0]:.1f}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--logs", type=int, default=8_000, help="logs per phase (pre-encoded requests)")
    ap.add_argument("--rounds", type=int, default=3, help="rounds; each has one 1-server and one 2-server phase")
    ap.add_argument("--procs", type=int, default=4, help="sender processes, one connection each")
    ap.add_argument("--batch", type=int, default=256, help="log records per request")
    ap.add_argument("--window", type=float, default=70.0, help="least seconds both servers loop (job proof)")
    ap.add_argument("--pin", action="store_true", help="PostgreSQL on the first half of the cores, the collectors"
                    " and senders on the other half (PostgreSQL on its own cores; needs a local server)")
    ap.add_argument("--dsn", help="PostgreSQL maintenance DSN (default: embedded server in a temp dir)")
    ap.add_argument("--smoke", action="store_true", help="small: 1 round of 1,000 logs, 35 s window")
    args = ap.parse_args()
    if args.smoke:
        args.logs, args.rounds, args.batch, args.window = 1_000, 1, 100, 35.0
    ctx = mp.get_context("fork")
    workdir = Path(tempfile.mkdtemp(prefix="flusso-bench-two-"))
    handle, servers = None, []
    try:
        if args.dsn:
            admin = args.dsn
        else:
            from flusso_obs.embedded import start_embedded
            handle = start_embedded(workdir)
            admin = handle.get_uri("postgres")
        pg_version = bi.query(admin, "SHOW server_version")[0]
        dsn = bi.fresh_database(admin, f"bench_two_{os.getpid()}")
        bi.query(dsn, HISTORY_DDL)
        key = asyncio.run(bi.new_key(dsn))
        now = datetime.now(UTC)
        month, rng = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0), Random(31)
        bi.BODIES[:] = bi.encode_requests([bi.make_doc(rng, i, month, now) for i in range(args.logs)], args.batch)
        print(f"prepared {args.logs} logs in {len(bi.BODIES)} requests", flush=True)
        t0 = time.monotonic()
        servers = start_pair(dsn, workdir)
        postmaster = (bi.postgres_pids(admin) or [None])[0]
        app_cpus = pin(admin, servers) if args.pin else None
        phases = []
        for r in range(args.rounds):
            for n in ((1, 2) if r % 2 == 0 else (2, 1)):
                phases.append(run_phase(ctx, n, servers, dsn, admin, key, args.procs, args.logs, postmaster,
                                        app_cpus))
                print(f"round {r + 1}: {n} collector(s) {phases[-1].rate:,.0f} logs/s", flush=True)
        bytes_per_log = stored_bytes_per_log(dsn)
        time.sleep(max(0.0, args.window - (time.monotonic() - t0)))
        for proc, _, _ in servers:
            bi.stop_server(proc)
        window, servers = time.monotonic() - t0, []
        checks = job_checks(dsn, window)
        print_table(phases, checks, window, bytes_per_log, args, pg_version)
        return 0 if all(c.ok for c in checks) else 1
    finally:
        for proc, _, _ in servers:
            bi.stop_server(proc)
        if args.dsn:
            bi.query(args.dsn, f"DROP DATABASE IF EXISTS bench_two_{os.getpid()} WITH (FORCE)")
        if handle is not None:
            handle.cleanup()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
