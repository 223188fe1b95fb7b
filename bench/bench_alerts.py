"""Alert evaluation at scale: N logs over 7 days, R rules, one tick timed.

    .venv/bin/python bench/bench_alerts.py                 # 1,000,000 logs, 1,000 rules
    .venv/bin/python bench/bench_alerts.py --smoke         # 20,000 logs, 100 rules, < 60 s

A fresh embedded PostgreSQL (or --dsn, an empty database owned by the app's role), migrated.
Logs are generated in SQL over the last 7 days for 20 tenants; rules cycle through every metric
and the windows 5m, 15m, 1h, 6h, 1d, 7d, half for every tenant and half for one. Timed:

- `tick, steady`: what the `alert-evaluate` job does every interval, less the webhooks: the
  incremental rollup refresh after 1,000 new logs, then every rule judged for every tenant
  (the bulk load is stored with `created_at` = `executed_at`, as if it had arrived over 7 days);
- `tick, first`: the first evaluation, which stores every transition and queues its webhook;
- `baseline: raw-scan`: the same aggregates read straight from workflow_logs (one GROUP BY per
  window), what evaluating without rollups would cost per tick.

Exit 1 if the steady tick exceeds 1 s at full size.
"""
from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402

from collector_api.alerts.admin import create_rule  # noqa: E402
from collector_api.alerts.evaluate import evaluate_rules  # noqa: E402
from collector_api.alerts.rules import METRICS, validate_rule  # noqa: E402
from collector_api.store.alerts.evaluation import window_start  # noqa: E402
from collector_api.store.alerts.rollups import refresh_alert_rollups  # noqa: E402
from collector_api.store.core.db import create_pool  # noqa: E402

WINDOWS = ("5m", "15m", "1h", "6h", "1d", "7d")
TENANTS = 20
THRESHOLDS = {"failure_rate": 0.3, "partial_rate": 0.3, "avg_hallucination_risk": 0.5, "p95_execution_s": 30,
              "cost_usd": 50, "tickets": 5, "rejections": 10, "recontact_rate": 0.2}
_GEN = (
    "INSERT INTO workflow_logs (client_id, ticket_id, status, executed_at, created_at, trace_id, log_data,"
    " execution_time_seconds, cost_usd, hallucination_risk) SELECT 't' || (g %% {t}), 'B-' || g,"
    " (ARRAY['SUCCESS','SUCCESS','SUCCESS','PARTIAL','FAILED'])[1 + g %% 5], t.at, t.at, md5(g::text || %s), '{{}}',"
    " 1 + 60 * random(), 0.01 * random(), random()"
    " FROM generate_series(%s::bigint, %s::bigint) g,"
    " LATERAL (SELECT now() - make_interval(secs => %s * random() + 0 * g) AS at) t")


def load_logs(dsn: str, first: int, count: int, spread_s: float) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("INSERT INTO tenants (client_id) SELECT 't' || g FROM generate_series(0, %s::int) g"
                     " ON CONFLICT DO NOTHING", (TENANTS - 1,))
        for start in range(first, first + count, 200_000):
            stop = min(first + count, start + 200_000) - 1
            conn.execute(_GEN.format(t=TENANTS), (str(first), start, stop, spread_s))
        conn.execute("ANALYZE workflow_logs")


async def make_rules(pool, count: int) -> None:
    for i in range(count):
        metric = METRICS[i % len(METRICS)]
        spec = validate_rule(name=f"rule {i}", metric=metric, op="<" if metric == "tickets" else ">",
                             threshold=THRESHOLDS[metric], window=WINDOWS[(i // len(METRICS)) % len(WINDOWS)],
                             client_id=None if i % 2 else f"t{i % TENANTS}", webhook_url="http://127.0.0.1:9/",
                             min_tickets=3)
        await create_rule(pool, spec, "bench-key")


async def raw_scan(pool) -> None:
    """The baseline: each window's aggregates from raw logs, as an evaluation without rollups would."""
    from datetime import UTC, datetime
    now = datetime.now(UTC)
    async with pool.connection() as conn:
        for window in (300, 900, 3600, 21600, 86400, 604800):
            start = window_start(now, window)[1]
            await (await conn.execute(
                "SELECT client_id, count(*), count(*) FILTER (WHERE status = 'FAILED'), avg(hallucination_risk),"
                " percentile_cont(0.95) WITHIN GROUP (ORDER BY execution_time_seconds), sum(cost_usd)"
                " FROM workflow_logs WHERE executed_at >= %s GROUP BY 1", (start,))).fetchall()


async def timed(fn) -> float:
    started = time.perf_counter()
    await fn()
    return time.perf_counter() - started


async def measure(dsn: str, logs: int, rules: int) -> dict[str, float]:
    async with create_pool(dsn) as pool:
        results = {"rollups, initial build": await timed(lambda: refresh_alert_rollups(pool))}
        await make_rules(pool, rules)
        results["tick, first (stores transitions)"] = await timed(
            lambda: _tick(pool))
        steady = []
        for n in range(3):
            await asyncio.to_thread(load_logs, dsn, logs + 1 + n * 1000, 1000, 600)
            steady.append(await timed(lambda: _tick(pool)))
        results["tick, steady (median of 3)"] = sorted(steady)[1]
        results["baseline: raw-scan aggregates"] = await timed(lambda: raw_scan(pool))
    return results


async def _tick(pool) -> None:
    await refresh_alert_rollups(pool)
    await evaluate_rules(pool)


def run(dsn: str, logs: int, rules: int) -> dict[str, float]:
    started = time.perf_counter()
    load_logs(dsn, 0, logs, 7 * 86400)
    print(f"loaded {logs:,} logs for {TENANTS} tenants in {time.perf_counter() - started:.1f} s", flush=True)
    return asyncio.run(measure(dsn, logs, rules))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--logs", type=int, default=1_000_000)
    parser.add_argument("--rules", type=int, default=1_000)
    parser.add_argument("--smoke", action="store_true", help="20,000 logs, 100 rules")
    parser.add_argument("--dsn", default=None, help="an empty database (default: a fresh embedded one)")
    args = parser.parse_args()
    logs, rules = (20_000, 100) if args.smoke else (args.logs, args.rules)
    if args.dsn:
        from collector_api.store.core.migrate import apply_migrations
        apply_migrations(args.dsn)
        results = run(args.dsn, logs, rules)
    else:
        from config.server import ServerSettings
        from flusso_obs.database import database, migrate
        with tempfile.TemporaryDirectory() as tmp:
            with database(ServerSettings(_env_file=None, flusso_data_dir=Path(tmp))) as dsn:
                migrate(dsn)
                results = run(dsn, logs, rules)
    baseline = results["baseline: raw-scan aggregates"]
    print(f"\n{logs:,} logs, {rules:,} rules, {TENANTS} tenants")
    print(f"{'measure':<36} {'seconds':>9} {'vs raw scan':>12}")
    for name, seconds in results.items():
        print(f"{name:<36} {seconds:>9.3f} {seconds / baseline:>11.2f}x")
    steady = results["tick, steady (median of 3)"]
    if not args.smoke and logs >= 1_000_000 and rules >= 1_000 and steady > 1.0:
        print(f"FAIL: a steady tick took {steady:.2f} s (> 1 s)")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
