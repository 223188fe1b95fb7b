"""OTLP/gRPC vs OTLP/HTTP protobuf: the same logs and the same traces into one `flusso-obs serve`
process (HTTP and gRPC ports), in one run.

    .venv/bin/python bench/bench_grpc.py              # 8,000 logs and 1,500 17-span traces per transport
    .venv/bin/python bench/bench_grpc.py --smoke      # small, < 60 s
    .venv/bin/python bench/bench_grpc.py --no-gzip    # bodies and messages uncompressed

For each signal and each transport: a fresh database, a fresh `serve` (both ports), the same
pre-encoded export requests (logs: the OTel SDK's encoder, bench_ingest; traces: bench_traces'
17-span GenAI traces), sent by `--senders` threads, one connection or channel each (with gzip,
each sender compresses a request as it sends it, at zlib level 6 for both); timed until
the last answer (every answer comes after COMMIT). Reported: items/s, collector CPU ms per item
(the serve process tree), PostgreSQL CPU ms per item; then per signal the gRPC/HTTP ratios of
each round (both transports back to back; the order alternates), their median and how many rounds
gRPC won. Target: gRPC at least as fast per item as HTTP/protobuf. Exit 1 if a request fails or a
row is missing.
"""
from __future__ import annotations

import argparse
import asyncio
import gzip
import http.client
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from random import Random

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import bench_ingest as bi  # noqa: E402
import bench_traces as bt  # noqa: E402
import grpc  # noqa: E402

METHODS = {"logs": "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
           "traces": "/opentelemetry.proto.collector.trace.v1.TraceService/Export"}
PATHS = {"logs": "/v1/logs", "traces": "/v1/traces"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_serve(dsn: str, workdir: Path) -> tuple[subprocess.Popen, int, int]:
    """`flusso-obs serve` with both ports, ready (/readyz 200)."""
    port, grpc_port = free_port(), free_port()
    env = dict(os.environ, DATABASE_URL=dsn, FLUSSO_DATA_DIR=str(workdir / "data"), PYTHONPATH=str(ROOT),
               FLUSSO_SESSION_SECRET="bench-" + "x" * 40, FLUSSO_PII_HASH_KEY="bench-pii-" + "k" * 40,
               FLUSSO_TRACE_QUIET_SECONDS="3600", FLUSSO_TRACE_MAX_AGE_SECONDS="3600")  # staging only: no assembly
    log = workdir / f"serve-{port}.log"
    proc = subprocess.Popen([sys.executable, "-m", "flusso_obs.cli", "serve", "--host", "127.0.0.1", "--port",
                             str(port), "--grpc-port", str(grpc_port)], cwd=workdir, env=env, stdout=log.open("wb"),
                            stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"FAILED: serve exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as resp:
                if resp.status == 200:
                    return proc, port, grpc_port
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("FAILED: serve not ready within 60 s")


def send_http(port: int, key: str, path: str, bodies: list[bytes], senders: int, gzipped: bool) -> None:
    headers = {"Content-Type": "application/x-protobuf", "X-API-Key": key}
    if gzipped:
        headers["Content-Encoding"] = "gzip"

    def send(share: list[bytes]) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        for body in share:
            if gzipped:  # at send time, as exporters do, and at zlib's default level, as gRPC core's gzip
                body = gzip.compress(body, compresslevel=6)
            conn.request("POST", path, body, headers)
            resp = conn.getresponse()
            data = resp.read()
            if resp.status != 200:
                raise SystemExit(f"FAILED: {path} answered {resp.status}: {data[:300]!r}")
        conn.close()

    with ThreadPoolExecutor(senders) as pool:
        list(pool.map(send, [bodies[i::senders] for i in range(senders)]))


def send_grpc(port: int, key: str, method: str, messages: list[bytes], senders: int, gzipped: bool) -> None:
    compression = grpc.Compression.Gzip if gzipped else grpc.Compression.NoCompression

    def send(share: list[bytes]) -> None:
        with grpc.insecure_channel(f"127.0.0.1:{port}", options=[("grpc.max_send_message_length", -1)]) as channel:
            call = channel.unary_unary(method, request_serializer=None, response_deserializer=None)
            for message in share:
                try:
                    call(message, metadata=(("x-api-key", key),), timeout=120, compression=compression)
                except grpc.RpcError as exc:
                    raise SystemExit(f"FAILED: {method} answered {exc.code()}: {exc.details()}") from None

    with ThreadPoolExecutor(senders) as pool:
        list(pool.map(send, [messages[i::senders] for i in range(senders)]))


def run_one(admin: str, tag: str, signal: str, transport: str, payloads: dict, args, workdir: Path) -> dict:
    """One transport x signal on a fresh database and a fresh serve: throughput and CPU per item."""
    dsn = bi.fresh_database(admin, tag)
    key = asyncio.run(bi.new_key(dsn))
    proc, port, grpc_port = start_serve(dsn, workdir)
    items = payloads["items"]
    try:
        postmaster = (bi.postgres_pids(admin) or [None])[0]
        pg0 = bi.tree_cpu_seconds(postmaster) if postmaster else float("nan")
        cpu0, t0 = bi.tree_cpu_seconds(proc.pid), time.perf_counter()
        if transport == "HTTP/protobuf":
            send_http(port, key, PATHS[signal], payloads["http"], args.senders, args.gzip)
        else:
            send_grpc(grpc_port, key, METHODS[signal], payloads["grpc"], args.senders, args.gzip)
        wall = time.perf_counter() - t0
        cpu = bi.tree_cpu_seconds(proc.pid) - cpu0
        pg = (bi.tree_cpu_seconds(postmaster) - pg0) if postmaster else float("nan")
        table = "workflow_logs" if signal == "logs" else "trace_spans"
        stored = bi.query(dsn, f"SELECT count(*) FROM {table}")[0]
    finally:
        proc.terminate()
        proc.wait(30)
    if stored != items:
        raise SystemExit(f"FAILED: {signal} over {transport}: {stored} of {items} stored")
    return {"items/s": items / wall, "collector CPU ms/item": cpu * 1000 / items,
            "PostgreSQL CPU ms/item": pg * 1000 / items, "wall s": wall}


def prepare(args) -> dict[str, dict]:
    now = datetime.now(UTC)
    month = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    docs = [bi.make_doc(Random(42), i, month, now) for i in range(args.logs)]
    log_raw = [gzip.decompress(b) for b in bi.encode_requests(docs, args.batch)]  # the SDK's encoder
    traces = [bt.make_trace(Random(7), i, time.time_ns()) for i in range(args.traces)]
    trace_raw = [gzip.decompress(b) for b in bt.encode(traces, args.per_request)]
    # The same serialized export requests for both transports; with gzip each sender compresses
    # as it sends (HTTP: gzip.compress, gRPC: the channel's grpc-encoding gzip).
    return {"logs": {"items": args.logs, "http": log_raw, "grpc": log_raw},
            "traces": {"items": args.traces * len(bt.SHAPE), "http": trace_raw, "grpc": trace_raw}}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--logs", type=int, default=8000)
    ap.add_argument("--batch", type=int, default=512, help="log records per request")
    ap.add_argument("--traces", type=int, default=1500)
    ap.add_argument("--per-request", type=int, default=30, help="traces per request (30 x 17 = 510 spans)")
    ap.add_argument("--senders", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=1, help="rounds, transports alternating their order")
    ap.add_argument("--no-gzip", dest="gzip", action="store_false")
    ap.add_argument("--smoke", action="store_true")
    args = ap.parse_args()
    if args.smoke:
        args.logs, args.batch, args.traces, args.per_request, args.senders, args.rounds = 400, 100, 60, 10, 2, 1
    payloads = prepare(args)
    workdir = Path(tempfile.mkdtemp(prefix="flusso-bench-grpc-"))
    from flusso_obs.embedded import start_embedded

    handle = start_embedded(workdir)
    results: dict[tuple[str, str], list[dict]] = {}
    try:
        admin = handle.get_uri("postgres")
        for r in range(args.rounds):
            for signal in ("logs", "traces"):
                order = ("HTTP/protobuf", "gRPC") if r % 2 == 0 else ("gRPC", "HTTP/protobuf")
                for transport in order:
                    tag = f"bench_grpc_{os.getpid()}_{r}_{signal}_{'g' if transport == 'gRPC' else 'h'}"
                    results.setdefault((signal, transport), []).append(
                        run_one(admin, tag, signal, transport, payloads[signal], args, workdir))
    finally:
        handle.cleanup()
    print_table(results, args)
    return 0


def print_table(results: dict[tuple[str, str], list[dict]], args) -> None:
    print(f"\n{args.logs} logs ({args.batch} per request), {args.traces} traces x {len(bt.SHAPE)} spans "
          f"({args.per_request} traces per request), {args.senders} senders, gzip {'on' if args.gzip else 'off'}, "
          f"{args.rounds} round(s): median")
    measures = ["items/s", "collector CPU ms/item", "PostgreSQL CPU ms/item"]
    print(f"| signal | transport | {' | '.join(measures)} | items/s min-max |")
    print("|---|---|" + "---|" * (len(measures) + 1))
    for (signal, transport), runs in results.items():
        cells = [bi.pct([run[m] for run in runs], 0.5) for m in measures]
        rates = [run["items/s"] for run in runs]
        unit = "logs" if signal == "logs" else "spans"
        print(f"| {signal} ({unit}) | {transport} | {cells[0]:,.0f} | {cells[1]:.4f} | {cells[2]:.4f} |"
              f" {min(rates):,.0f}-{max(rates):,.0f} |")
    for signal in ("logs", "traces"):
        print(paired_ratios(signal, results[(signal, "gRPC")], results[(signal, "HTTP/protobuf")]))


def paired_ratios(signal: str, grpc_runs: list[dict], http_runs: list[dict]) -> str:
    """gRPC/HTTP per round (the two runs of a round are back to back, so a busy spell of the
    machine touches both): the median of the rounds' ratios, and in how many rounds gRPC did at
    least as well, for items/s and for collector CPU per item (lower is better)."""
    rate = [g["items/s"] / h["items/s"] for g, h in zip(grpc_runs, http_runs, strict=True)]
    cpu = [g["collector CPU ms/item"] / h["collector CPU ms/item"] for g, h in zip(grpc_runs, http_runs, strict=True)]
    return (f"{signal}: gRPC/HTTP items/s {bi.pct(rate, 0.5):.2f}x (gRPC >= HTTP in {sum(r >= 1 for r in rate)} "
            f"of {len(rate)} rounds), collector CPU per item {bi.pct(cpu, 0.5):.2f}x (gRPC <= HTTP in "
            f"{sum(c <= 1 for c in cpu)} of {len(cpu)}); target: items/s >= 1.0x")


if __name__ == "__main__":
    sys.exit(main())
