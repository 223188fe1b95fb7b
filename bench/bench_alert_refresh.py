"""The alert rollups' refresh with history: the additive refresh (migration 0030) against the refresh
it replaced (recompute every touched bucket whole), same database, same new logs, same run.

    .venv/bin/python bench/bench_alert_refresh.py            # 1,000 logs/hour over 8 days, 5,000 new
    .venv/bin/python bench/bench_alert_refresh.py --smoke    # 40 logs/hour, 500 new, < 60 s

A fresh embedded PostgreSQL (or --dsn, an empty database owned by the app's role), migrated. One
tenant (`hist`) has --per-hour logs in every hour of the last 8 days, nine others a tenth of that
(stored with created_at = executed_at, as if they had arrived over those days), and the rollups
are built. Then, per scenario and round, --new logs are stored in one transaction, and both
refreshes bring the rollups up to date over them:

- `spread`: the new logs' executed_at spread over the 8 days (a backfill, or an agent's late logs);
- `current hour`: all of them in the current hour (steady ingest);
- `busy hour`: the same after --busy more logs were stored (and rolled up) in the current hour,
  as a tenant ingesting many logs a second holds by mid-hour (1,000/s: 1.8 M).

`old` is the refresh before 0030, loaded from git (`--old-ref`, default the commit before it) into
a module of this script: it recomputes the buckets of logs stored since its created_at cursor (set
to just before the new logs, as its previous run would have left it). `new` consumes the queue the
triggers filled. Each is timed, with the rows and 8 KB blocks (shared hits + reads) it read from
workflow_logs (its partitions and their indexes), and all blocks it touched, from
pg_stat/pg_statio (its own connection, closed to flush its counters). The median of --rounds.

Then ingest: PostgreSQL backend CPU per 1,000 logs stored in 500-row INSERT statements with ~2 KB
documents, with the alert queue's insert trigger enabled and disabled (the bench toggles it; the
product never does), alternating, the median of --rounds each.
"""
from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402

from collector_api.store.alerts import rollups as new_rollups  # noqa: E402
from collector_api.store.core.db import create_pool  # noqa: E402

OLD_REF = "435d0f7"  # main before migration 0030: the recomputing refresh
OTHERS = 9
_GEN = (
    "INSERT INTO workflow_logs (client_id, ticket_id, status, executed_at, created_at, trace_id, log_data,"
    " execution_time_seconds, cost_usd, hallucination_risk)"
    " SELECT %(client)s, %(prefix)s || g, (ARRAY['SUCCESS','SUCCESS','SUCCESS','PARTIAL','FAILED'])[1 + g %% 5],"
    " t.at, {created}, md5(%(prefix)s || g), '{{}}', 1 + 60 * random(), 0.01 * random(), random()"
    " FROM generate_series(1, %(n)s) g,"
    " LATERAL (SELECT now() - make_interval(secs => %(ago)s + %(span)s * random() + 0 * g) AS at) t")


def load_old(ref: str):
    """The refresh of `ref` as a module of its own (it reads alert_rollup_state.watermark, which 0030 kept)."""
    source = subprocess.run(["git", "-C", str(ROOT), "show", f"{ref}:collector_api/store/alerts/rollups.py"],
                            check=True, capture_output=True, text=True).stdout
    path = Path(tempfile.mkdtemp()) / "old_alert_rollups.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("old_alert_rollups", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_history(dsn: str, per_hour: int) -> int:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("INSERT INTO tenants (client_id) SELECT unnest(%s::text[]) ON CONFLICT DO NOTHING",
                     (["hist"] + [f"other{i}" for i in range(OTHERS)],))
        for i, (client, n) in enumerate([("hist", per_hour)] + [(f"other{i}", max(1, per_hour // 10))
                                                               for i in range(OTHERS)]):
            for day in range(8):  # one statement per day: the transition tables stay small
                conn.execute(_GEN.format(created="t.at"), {
                    "client": client, "prefix": f"H{i}-{day}-", "n": n * 24,
                    "ago": day * 86400.0, "span": 86400.0})
        conn.execute("ANALYZE workflow_logs")
        return conn.execute("SELECT count(*) FROM workflow_logs").fetchone()[0]


def store_new(dsn: str, count: int, scenario: str, tag: str) -> None:
    span = 8 * 86400.0 - 600 if scenario == "spread" else None  # else the current hour
    with psycopg.connect(dsn, autocommit=True) as conn:
        if span is None:  # the current hour, up to now
            span = conn.execute("SELECT extract(epoch FROM now() - date_trunc('hour', now()))").fetchone()[0]
        conn.execute(_GEN.format(created="now()"), {"client": "hist", "prefix": f"N{tag}-", "n": count,
                                                    "ago": 0.0, "span": float(span)})


_BLOCKS = ("coalesce(io.heap_blks_hit, 0) + coalesce(io.heap_blks_read, 0) + coalesce(io.idx_blks_hit, 0)"
           " + coalesce(io.idx_blks_read, 0)")
_LOGS = "FILTER (WHERE s.relname LIKE 'workflow_logs%')"
_READS = (f"SELECT coalesce(sum(s.seq_tup_read + coalesce(s.idx_tup_fetch, 0)) {_LOGS}, 0) AS rows,"
          f" coalesce(sum({_BLOCKS}) {_LOGS}, 0) AS log_blocks, coalesce(sum({_BLOCKS}), 0) AS blocks"
          " FROM pg_stat_user_tables s JOIN pg_statio_user_tables io USING (relid)")


def counters(dsn: str) -> dict:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SELECT pg_stat_clear_snapshot()")
        return dict(zip(("rows", "log_blocks", "blocks"), conn.execute(_READS).fetchone(), strict=True))


def measure(dsn: str, refresh) -> dict:
    """One refresh on a pool of its own, closed before the counters are read (it flushes them)."""
    before = counters(dsn)

    async def run() -> float:
        async with create_pool(dsn, max_size=2) as pool:
            started = time.perf_counter()
            changed = await refresh(pool)
            return time.perf_counter() - started, changed
    seconds, changed = asyncio.run(run())
    time.sleep(0.6)  # the closed backends' statistics reach the shared counters
    after = counters(dsn)
    return {"ms": seconds * 1000, "buckets": changed, **{k: after[k] - before[k] for k in before}}


def old_cursor(dsn: str, mark) -> None:
    """The old refresh's cursor as its previous run would have left it: `mark`, read just before the
    new logs were stored, without its 2-minute overlap (LATE_COMMIT_SLACK) reaching the previous
    round's logs: only the new logs count. Set right before it runs: a new refresh finding a
    watermark other than RETIRED_WATERMARK would recompute the queued logs' buckets (an older
    collector ran), not add them."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("UPDATE alert_rollup_state SET watermark = %s::timestamptz + interval '2 minutes' WHERE id = 1",
                     (mark,))


def retire_cursor(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("UPDATE alert_rollup_state SET watermark = %s WHERE id = 1", (new_rollups.RETIRED_WATERMARK,))


def scenario(dsn: str, old, name: str, count: int, rounds: int) -> dict[str, list[dict]]:
    got: dict[str, list[dict]] = {"old": [], "new": []}
    for r in range(rounds):
        with psycopg.connect(dsn, autocommit=True) as conn:
            mark = conn.execute("SELECT now()").fetchone()[0]
        store_new(dsn, count, name, f"{name[:1]}{r}")
        for which in (("new", "old") if r % 2 == 0 else ("old", "new")):  # both over the same new logs
            if which == "old":
                old_cursor(dsn, mark)
                got["old"].append(measure(dsn, old.refresh_alert_rollups))
                retire_cursor(dsn)
            else:
                got["new"].append(measure(dsn, new_rollups.refresh_alert_rollups))
    return got


def backend_cpu_s(conn) -> float:
    pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def ingest_cpu(dsn: str, logs: int, rounds: int) -> dict[str, float]:
    """Backend CPU ms per 1,000 logs, the alert queue's insert trigger on and off, alternating."""
    gen = ("INSERT INTO workflow_logs (client_id, ticket_id, status, executed_at, trace_id, log_data,"
           " execution_time_seconds, cost_usd, hallucination_risk)"
           " SELECT 'hist', %s || g, 'SUCCESS', now() - make_interval(secs => g), %s || g,"
           " jsonb_build_object('text', repeat(md5(g::text), 64)), 2.5, 0.01, 0.1 FROM generate_series(1, 500) g")
    got: dict[str, list[float]] = {"trigger on": [], "trigger off": []}
    with psycopg.connect(dsn, autocommit=True) as conn:
        for r in range(rounds):
            for state in (("on", "off") if r % 2 == 0 else ("off", "on")):
                conn.execute(f"ALTER TABLE workflow_logs {'ENABLE' if state == 'on' else 'DISABLE'}"
                             " TRIGGER alert_rollup_pending_insert")
                started = backend_cpu_s(conn)
                for b in range(logs // 500):
                    conn.execute(gen, (f"I{r}{state}{b}-", f"i{r}{state}{b}-"))
                got[f"trigger {state}"].append((backend_cpu_s(conn) - started) * 1000 / logs * 1000)
        conn.execute("ALTER TABLE workflow_logs ENABLE TRIGGER alert_rollup_pending_insert")
        conn.execute("DELETE FROM alert_rollup_pending")
    return {k: statistics.median(v) for k, v in got.items()}


def run(dsn: str, args) -> None:
    old = load_old(args.old_ref)
    started = time.perf_counter()
    stored = load_history(dsn, args.per_hour)
    print(f"history: {stored:,} logs ({args.per_hour:,}/hour for `hist`, {OTHERS} others at a tenth) in"
          f" {time.perf_counter() - started:.1f} s", flush=True)
    build = measure(dsn, new_rollups.refresh_alert_rollups)
    print(f"initial build (new refresh, {stored:,} queued logs): {build['ms']:.0f} ms", flush=True)
    print(f"\n{args.new:,} new logs of `hist`, median of {args.rounds} rounds (old = {args.old_ref}'s refresh)")
    print(f"{'scenario':<14} {'refresh':<7} {'buckets':>8} {'ms':>9} {'log rows read':>14} {'log blocks':>11}"
          f" {'all blocks':>11} {'ms new/old':>11}")
    for name in ("spread", "current hour", "busy hour"):
        if name == "busy hour":
            store_new(dsn, args.busy, "current hour", "busy")
            measure(dsn, new_rollups.refresh_alert_rollups)
        got = scenario(dsn, old, name, args.new, args.rounds)
        med = {w: {k: statistics.median(m[k] for m in got[w]) for k in got[w][0]} for w in got}
        for which in ("old", "new"):
            m = med[which]
            ratio = f"{med['new']['ms'] / med['old']['ms']:.2f}x" if which == "new" else ""
            print(f"{name:<14} {which:<7} {m['buckets']:>8,.0f} {m['ms']:>9.1f} {m['rows']:>14,.0f}"
                  f" {m['log_blocks']:>11,.0f} {m['blocks']:>11,.0f} {ratio:>11}", flush=True)
    cpu = ingest_cpu(dsn, args.ingest_logs, args.rounds)
    on, off = cpu["trigger on"], cpu["trigger off"]
    print(f"\ningest, {args.ingest_logs:,} logs per round in 500-row INSERTs (~2 KB documents), backend CPU:")
    print(f"  alert queue trigger off {off:.1f} ms per 1,000 logs, on {on:.1f} ms: {on / off:.3f}x")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--per-hour", type=int, default=1000, help="logs per hour of `hist` over 8 days")
    parser.add_argument("--new", type=int, default=5000, help="new logs per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--busy", type=int, default=100_000, help="logs stored in the current hour before `busy hour`")
    parser.add_argument("--ingest-logs", type=int, default=20_000, help="logs per round of the ingest measure")
    parser.add_argument("--old-ref", default=OLD_REF, help="the git revision whose refresh is `old`")
    parser.add_argument("--smoke", action="store_true", help="40 logs/hour, 500 new, 2,000 ingest logs")
    parser.add_argument("--dsn", default=None, help="an empty database (default: a fresh embedded one)")
    args = parser.parse_args()
    if args.smoke:
        args.per_hour, args.new, args.ingest_logs, args.busy = 40, 500, 2000, 5000
    if args.dsn:
        from collector_api.store.core.migrate import apply_migrations
        apply_migrations(args.dsn)
        run(args.dsn, args)
        return 0
    from config.server import ServerSettings
    from flusso_obs.database import database, migrate
    with tempfile.TemporaryDirectory() as tmp:
        with database(ServerSettings(_env_file=None, flusso_data_dir=Path(tmp))) as dsn:
            migrate(dsn)
            run(dsn, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
