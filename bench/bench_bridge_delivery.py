"""Delay from a ticket's end to its row in PostgreSQL (through the real collector), and, as
the same-run baseline, to its arrival at a bare OTLP/HTTP receiver (no database).

Tickets end at a steady rate; the delay of each is (row created_at | arrival time) minus the
wall-clock time at which the @workflow call returned. The collector runs in this process
(uvicorn thread) over an embedded PostgreSQL started in a temporary directory.

    .venv/bin/python bench/bench_bridge_delivery.py [--smoke] [--rate 20] [--seconds 30]
Target: p99 < 2 s.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import socket
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import otel_bridge  # noqa: E402
from config.bridge import BridgeSettings  # noqa: E402
from otel_bridge import node, record, workflow  # noqa: E402

_end_times: dict[str, float] = {}


@node("planner", kind="planner")
def planner():
    record.decision("route", "react_agent", "needs lookups", 0.9)


@node("tool", kind="tool")
def tool(i):
    return f"result {i}"


@workflow("flusso_ticket")
def ticket(t):
    record.ticket(t["ticket_id"], subject="Printer error", requester_email="ann@example.com",
                  requester_name="Ann Lee", channel="email", priority="high")
    planner()
    for i in range(3):
        record.react_iteration(thought="look up", action="tool", action_input={"i": i}, observation=tool(i))
    record.draft("Hello Ann Lee, please hold the reset button.")
    record.outcome("SUCCESS", "resolved", overall_confidence=0.8)


def pct(values, p):
    if not values:
        return float("nan")
    v = sorted(values)
    return v[min(len(v) - 1, int(round(p / 100 * (len(v) - 1))))]


def send(n: int, rate: float, prefix: str) -> None:
    period, next_t = 1.0 / rate, time.perf_counter()
    for i in range(n):
        tid = f"{prefix}-{i}"
        ticket({"ticket_id": tid})
        _end_times[tid] = time.time()
        next_t += period
        delay = next_t - time.perf_counter()
        if delay > 0:
            time.sleep(delay)


def run_baseline(n: int, rate: float) -> list[float]:
    import gzip

    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

    arrivals: dict[str, float] = {}

    class H(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self):  # noqa: N802
            raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            now = time.time()
            msg = ExportLogsServiceRequest()
            msg.ParseFromString(gzip.decompress(raw))
            for rl in msg.resource_logs:
                for sl in rl.scope_logs:
                    for lr in sl.log_records:
                        for kv in lr.attributes:
                            if kv.key == "flusso.ticket_id":
                                arrivals[kv.value.string_value] = now
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *a):
            pass

    srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    otel_bridge.configure(BridgeSettings(_env_file=None, environment="test", pii_hash_key="bench"),
                          endpoint=f"http://127.0.0.1:{srv.server_address[1]}", api_key="unused")
    send(n, rate, "B")
    otel_bridge.flush(10)
    srv.shutdown()
    return [arrivals[t] - _end_times[t] for t in arrivals if t in _end_times]


def run_collector(n: int, rate: float) -> tuple[list[float], int]:
    import psycopg
    import uvicorn

    from collector_api.store.accounts.principals import create_api_key
    from collector_api.store.core.db import create_pool
    from collector_api.store.core.migrate import apply_migrations
    from config.server import ServerSettings
    from flusso_obs.embedded import embedded_dsn, start_embedded
    from flusso_obs.server import create_app

    tmp = Path(tempfile.mkdtemp(prefix="flusso-bench-pg-"))
    handle = start_embedded(tmp)
    try:
        dsn = embedded_dsn(handle)
        apply_migrations(dsn)

        async def make_key():
            pool = create_pool(dsn)
            await pool.open()
            try:
                return (await create_api_key(pool, "bench")).secret
            finally:
                await pool.close()

        secret = asyncio.run(make_key())
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        settings = ServerSettings(_env_file=None, flusso_session_secret="bench-" + "x" * 40)
        server = uvicorn.Server(uvicorn.Config(create_app(settings, dsn), host="127.0.0.1", port=port,
                                               log_level="warning", lifespan="on"))
        th = threading.Thread(target=server.run, daemon=True)
        th.start()
        deadline = time.monotonic() + 20
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        otel_bridge.configure(BridgeSettings(_env_file=None, environment="test", pii_hash_key="bench"),
                              endpoint=f"http://127.0.0.1:{port}", api_key=secret)
        send(n, rate, "C")
        otel_bridge.flush(10)
        rows = {}
        deadline = time.monotonic() + 10
        with psycopg.connect(dsn) as conn:
            while time.monotonic() < deadline:
                cur = conn.execute("SELECT ticket_id, extract(epoch FROM created_at) FROM workflow_logs"
                                   " WHERE ticket_id LIKE 'C-%%'")
                rows = {t: float(ts) for t, ts in cur.fetchall()}
                conn.commit()
                if len(rows) >= n:
                    break
                time.sleep(0.1)
        server.should_exit = True
        th.join(10)
        return [rows[t] - _end_times[t] for t in rows if t in _end_times], len(rows)
    finally:
        otel_bridge.shutdown(2)
        handle.cleanup()
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--rate", type=float, default=20.0)
    ap.add_argument("--seconds", type=float, default=None)
    args = ap.parse_args()
    n = max(10, int((args.seconds or (2.0 if args.smoke else 30.0)) * args.rate))

    base = run_baseline(n, args.rate)
    try:
        coll, stored = run_collector(n, args.rate)
        note = ""
    except Exception as exc:  # the provider side may be unavailable where this runs
        coll, stored, note = [], 0, f"collector run unavailable: {type(exc).__name__}: {exc}"

    print(f"delivery delay, {n} tickets at {args.rate:g}/s (seconds from ticket end)")
    print(f"{'path':<40}{'delivered':>10}{'p50':>8}{'p99':>8}{'max':>8}")
    print(f"{'baseline: bare OTLP receiver (arrival)':<40}{len(base):>10}{pct(base, 50):>8.3f}{pct(base, 99):>8.3f}"
          f"{max(base, default=float('nan')):>8.3f}")
    if coll:
        print(f"{'collector -> PostgreSQL row':<40}{stored:>10}{pct(coll, 50):>8.3f}{pct(coll, 99):>8.3f}"
              f"{max(coll):>8.3f}")
        print(f"target p99 < 2 s: {'met' if pct(coll, 99) < 2 else 'NOT met'}")
    else:
        print(note or "collector stored no rows")
    return 0


if __name__ == "__main__":
    sys.exit(main())
