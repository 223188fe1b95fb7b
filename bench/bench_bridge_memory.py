"""Memory growth over many tickets with the collector down (connection refused, and
black-holed), each scenario in a fresh interpreter. Baseline, same run: the same tickets with
the bridge not configured (the decorators run the functions without telemetry).

RSS is read from /proc/self/statm after a gc, before and after the tickets.

    .venv/bin/python bench/bench_bridge_memory.py [--smoke] [--tickets 10000]
Target: growth <= 50 MB over 10,000 tickets.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def child(scenario: str, tickets: int) -> dict:
    from flusso_obs.examples import support_workflow as wf

    import otel_bridge
    from config.bridge import BridgeSettings

    wf.SPEED = 0.0
    hole = None
    if scenario != "baseline":
        if scenario == "refused":
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            url = f"http://127.0.0.1:{s.getsockname()[1]}"
            s.close()
        else:
            hole = socket.socket()
            hole.bind(("127.0.0.1", 0))
            hole.listen(1024)
            url = f"http://127.0.0.1:{hole.getsockname()[1]}"
        otel_bridge.configure(BridgeSettings(_env_file=None, environment="test", pii_hash_key="bench",
                                             export_timeout_seconds=10), endpoint=url)
    else:
        import logging
        logging.getLogger("otel_bridge").setLevel(logging.ERROR)
    batch = wf.generate_tickets(200, seed=7)

    async def run(n):
        for i in range(n):
            t = dict(batch[i % len(batch)])
            t["ticket_id"] = f"T-{i}"
            try:
                await wf.handle_ticket(t)
            except RuntimeError:
                pass

    asyncio.run(run(200))  # warm-up: imports, caches, first allocations
    if scenario != "baseline":
        otel_bridge.flush(0.5)
    gc.collect()
    before = rss_mb()
    t0 = time.perf_counter()
    asyncio.run(run(tickets))
    elapsed = time.perf_counter() - t0
    if scenario != "baseline":
        time.sleep(1.0)  # let the worker drain its queue into the (stuck) exporter
    gc.collect()
    after = rss_mb()
    stats = otel_bridge.stats() if scenario != "baseline" else {}
    return {"scenario": scenario, "tickets": tickets, "rss_before_mb": before, "rss_after_mb": after,
            "growth_mb": after - before, "seconds": elapsed, "stats": stats}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--tickets", type=int, default=None)
    ap.add_argument("--child", default=None)
    args = ap.parse_args()
    tickets = args.tickets or (1000 if args.smoke else 10000)
    if args.child:
        print(json.dumps(child(args.child, tickets)))
        os._exit(0)  # skip the exit hook: a black-holed export would only delay the exit

    results = []
    for scenario in ("baseline", "refused", "blackhole"):
        out = subprocess.run([sys.executable, __file__, "--child", scenario, "--tickets", str(tickets)],
                             capture_output=True, text=True, timeout=900, cwd=ROOT)
        if out.returncode != 0:
            print(out.stderr[-2000:], file=sys.stderr)
            return 1
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))

    print(f"memory growth over {tickets} tickets (example workflow, speed 0), fresh process per scenario")
    print(f"{'scenario':<28}{'RSS before':>12}{'after':>10}{'growth MB':>11}{'tickets/s':>11}  drops")
    base = results[0]["growth_mb"]
    for r in results:
        drops = {k: v for k, v in r["stats"].items() if k.startswith("dropped") and v}
        print(f"{r['scenario']:<28}{r['rss_before_mb']:>12.1f}{r['rss_after_mb']:>10.1f}{r['growth_mb']:>11.1f}"
              f"{r['tickets'] / r['seconds']:>11.0f}  {drops or '-'}")
    worst = max(r["growth_mb"] for r in results[1:])
    print(f"bridge growth beyond baseline: {worst - base:.1f} MB (target <= 50 MB over 10,000 tickets)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
