"""End-to-end ingest benchmark: OTLP/HTTP -> collector (real uvicorn process) -> PostgreSQL,
versus a raw binary COPY of the same documents into an identical schema, in the same run.

    .venv/bin/python bench/bench_ingest.py               # 20,000 logs, 4 senders, 512 per request
    .venv/bin/python bench/bench_ingest.py --smoke       # small, < 60 s
    .venv/bin/python bench/bench_ingest.py --dsn postgresql://...   # a server of your own

Requests are encoded with the OTel SDK's own encoder (encode_logs + gzip, as OTLPLogExporter
does) before the clock starts; sender processes then only POST bytes. Exit 1 if any request
fails or the stored row count differs from what was sent; targets are reported, not enforced.
"""
from __future__ import annotations

import argparse
import asyncio
import gzip
import http.client
import json
import multiprocessing as mp
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from random import Random
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402
from opentelemetry import trace  # noqa: E402
from opentelemetry._logs import LogRecord, SeverityNumber  # noqa: E402
from opentelemetry.sdk.resources import Resource  # noqa: E402
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags  # noqa: E402
from psycopg import sql  # noqa: E402

from collector_api.store.logs.writes import _COLUMNS, _JSONB, _TYPES, row_values  # noqa: E402  (the collector's columns)

TENANT = "bench"
EVENT_NAME = "flusso.workflow_log"
EXAMPLE = json.loads((ROOT / "docs" / "workflow-log.example.json").read_text())
NODES = ["fetch_ticket", "planner", "react_agent", "vision_search", "text_rag", "evidence_resolution", "draft_response"]
COPY_COLUMNS = _COLUMNS
COPY_TYPES = tuple("jsonb" if c in _JSONB else t for c, t in zip(_COLUMNS, _TYPES, strict=True))
BODIES: list[bytes] = []  # pre-encoded requests, inherited by forked senders
ROWS: list[tuple] = []     # COPY rows, inherited by forked COPY streams


# ---- documents ---------------------------------------------------------------------------------

def make_doc(rng: Random, n: int, month_start: datetime, now: datetime) -> dict:
    """A realistic ~8 KB workflow log: the example, with more spans, iterations and results."""
    doc = json.loads(json.dumps(EXAMPLE))
    doc["trace_id"] = secrets.token_hex(16)
    doc["identification"]["client_id"] = TENANT
    at = month_start + (now - month_start) * rng.random()
    status = rng.choices(["SUCCESS", "PARTIAL", "FAILED"], [85, 10, 5])[0]
    secs = round(rng.uniform(1.5, 12.0), 3)
    doc["ticket_info"].update(ticket_id=f"T-{n:07d}", executed_at=at.isoformat().replace("+00:00", "Z"),
                              execution_time_seconds=secs)
    doc["outcome"].update(status=status, resolution_status=rng.choice(["resolved", "escalated", "pending"]),
                          error=None if status != "FAILED" else "tool timeout after 30s")
    iters = rng.randint(3, 5)
    m = doc["metrics"]
    m.update(react_iterations=iters, overall_confidence=round(rng.random(), 3),
             hallucination_risk=round(rng.random() * 0.4, 3), execution_time_seconds=secs,
             node_durations_ms={k: round(rng.uniform(50, 2500), 1) for k in NODES},
             input_tokens=rng.randint(2000, 9000), output_tokens=rng.randint(300, 1500),
             cost_usd=round(rng.uniform(0.005, 0.06), 4), span_count=0)
    t = doc["trace"]
    t["ticket"]["ticket_id"] = doc["ticket_info"]["ticket_id"]
    t["react"]["iterations"] = [
        {"n": i + 1, "thought": f"Step {i + 1}: check the order history and the shipping status of the customer",
         "action": rng.choice(["order_lookup", "kb_search", "refund_policy", "shipment_track"]),
         "action_input": json.dumps({"order": f"A-{rng.randint(1, 99999)}", "fields": ["status", "eta"]}),
         "observation": "order shipped 2 days ago via DHL, tracking number 00340434161234567890, ETA tomorrow",
         "duration_ms": round(rng.uniform(100, 900), 1)} for i in range(iters)]
    for kind, prefix in (("vision", "img"), ("text", "kb")):
        t["retrieval"][kind]["results"] = [
            {"id": f"{prefix}-{rng.randint(1, 5000)}", "score": round(rng.uniform(0.4, 0.95), 3),
             "title": f"Troubleshooting printer error E{rng.randint(1, 9)}: reset and firmware update steps",
             "snippet": "Hold the reset button for ten seconds, wait for the status light to blink twice."}
            for _ in range(4)]
    t["evidence"]["items"] = [{"source": f"kb-{rng.randint(1, 5000)}", "claim": "hold reset 10s then power cycle",
                               "confidence": round(rng.random(), 2)} for _ in range(5)]
    root = secrets.token_hex(8)
    spans = [{"name": "flusso_ticket", "kind": "workflow", "span_id": root, "parent_span_id": None,
              "start_offset_ms": 0.0, "duration_ms": secs * 1000, "status": "OK", "error": None,
              "attributes": {"gen_ai.operation.name": "invoke_agent"}}]
    for i in range(14):
        llm = i >= 9
        spans.append({"name": "llm_call" if llm else NODES[i % len(NODES)], "kind": "llm" if llm else "node",
                      "span_id": secrets.token_hex(8), "parent_span_id": root,
                      "start_offset_ms": round(i * 300 + rng.uniform(0, 100), 1),
                      "duration_ms": round(rng.uniform(20, 900), 1), "status": "OK", "error": None,
                      "attributes": {"gen_ai.request.model": "gpt-4o-mini",
                                     "gen_ai.usage.input_tokens": rng.randint(100, 900),
                                     "gen_ai.usage.output_tokens": rng.randint(20, 300)} if llm else {}})
    t["spans"], m["span_count"] = spans, len(spans)
    return doc


def encode_requests(docs: list[dict], batch: int) -> list[bytes]:
    """OTLP protobuf bodies exactly as OTLPLogExporter builds them (encode_logs, then gzip level 9)."""
    from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
    from opentelemetry.sdk._logs import ReadWriteLogRecord
    from opentelemetry.sdk.util.instrumentation import InstrumentationScope

    resource = Resource.create({"service.name": "flusso-support", "flusso.client_id": TENANT})
    scope = InstrumentationScope("otel_bridge", "0.1.0")
    records = []
    for doc in docs:
        ctx = trace.set_span_in_context(NonRecordingSpan(SpanContext(
            int(doc["trace_id"], 16), int(doc["trace"]["spans"][0]["span_id"], 16), False, TraceFlags(1))))
        now = time.time_ns()
        record = LogRecord(timestamp=now, observed_timestamp=now, context=ctx, severity_number=SeverityNumber.INFO,
                              severity_text="INFO", body=json.dumps(doc, separators=(",", ":")),
                              attributes={"flusso.ticket_id": doc["ticket_info"]["ticket_id"],
                                          "flusso.status": doc["outcome"]["status"], "flusso.client_id": TENANT},
                              event_name=EVENT_NAME)
        records.append(ReadWriteLogRecord(record, resource=resource, instrumentation_scope=scope))
    return [gzip.compress(encode_logs(records[i:i + batch]).SerializeToString(), compresslevel=9)
            for i in range(0, len(records), batch)]


def copy_rows(docs: list[dict]) -> list[tuple]:
    """The collector's own row for each document (same promoted columns, same JSON text)."""
    from collector_api.contract.prepare import prepare_row

    rows = []
    for i, doc in enumerate(docs):
        row = prepare_row(i, json.loads(json.dumps(doc)), TENANT, None)
        assert not hasattr(row, "reason"), row
        rows.append(row_values(row))
    return rows


# ---- workers (forked) ----------------------------------------------------------------------------

def sender(indexes: list[int], port: int, key: str, barrier, out) -> None:
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    headers = {"Content-Type": "application/x-protobuf", "Content-Encoding": "gzip", "X-API-Key": key}
    latencies, retries, error = [], 0, None
    barrier.wait()
    try:
        for i in indexes:
            while True:
                t0 = time.perf_counter()
                conn.request("POST", "/v1/logs", BODIES[i], headers)
                resp = conn.getresponse()
                data = resp.read()
                latencies.append(time.perf_counter() - t0)
                if resp.status in (429, 503):  # what the exporter retries; counted, then sent again
                    retries += 1
                    time.sleep(float(resp.getheader("Retry-After") or 1))
                    continue
                if resp.status != 200:
                    raise RuntimeError(f"request {i}: HTTP {resp.status}: {data[:300]!r}")
                answer = ExportLogsServiceResponse.FromString(data)
                if answer.partial_success.rejected_log_records:
                    raise RuntimeError(f"request {i}: rejected {answer.partial_success}")
                break
    except Exception as exc:  # reported to the parent, which fails loudly
        error = f"{type(exc).__name__}: {exc}"
    out.put(("send", latencies, retries, error))


def copier(chunks: list[tuple[int, int]], dsn: str, barrier, out) -> None:
    from psycopg.types.json import set_json_dumps

    error = None
    with psycopg.connect(dsn) as conn:
        set_json_dumps(lambda text: text, context=conn)  # rows carry JSON text already
        stmt = sql.SQL("COPY workflow_logs ({}) FROM STDIN (FORMAT BINARY)").format(
            sql.SQL(", ").join(map(sql.Identifier, COPY_COLUMNS)))
        barrier.wait()
        try:
            for start, stop in chunks:  # one transaction per batch, like one request of the collector
                with conn.transaction(), conn.cursor() as cur, cur.copy(stmt) as copy:
                    copy.set_types(COPY_TYPES)
                    for row in ROWS[start:stop]:
                        copy.write_row(row)
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
    out.put(("copy", [], 0, error))


def live_exporter(n: int, seed: int, port: int, key: str, batch: int, barrier, out) -> None:
    """A real OTLPLogExporter behind LoggerProvider + BatchLogRecordProcessor, emitting n logs."""
    from opentelemetry.exporter.otlp.proto.http import Compression
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor, LogRecordExportResult

    failed = [0]

    class CountingExporter(OTLPLogExporter):
        def export(self, batch_):
            result = super().export(batch_)
            if result is not LogRecordExportResult.SUCCESS:
                failed[0] += len(batch_)
            return result

    now = datetime.now(UTC)
    docs = [make_doc(Random(seed + i), 10_000_000 + seed + i, now.replace(day=1, hour=0, minute=0, second=0,
                                                                           microsecond=0), now) for i in range(n)]
    items = [(int(d["trace_id"], 16), int(d["trace"]["spans"][0]["span_id"], 16), json.dumps(d, separators=(",", ":")),
              d["ticket_info"]["ticket_id"], d["outcome"]["status"]) for d in docs]
    exporter = CountingExporter(endpoint=f"http://127.0.0.1:{port}/v1/logs", headers={"x-api-key": key},
                                timeout=120, compression=Compression.Gzip)
    provider = LoggerProvider(resource=Resource.create({"service.name": "flusso-support"}), shutdown_on_exit=False)
    # queue sized to the whole run: the SDK drops the OLDEST record when its queue is full
    processor = BatchLogRecordProcessor(exporter, max_queue_size=max(2048, n), max_export_batch_size=batch)
    provider.add_log_record_processor(processor)
    logger = provider.get_logger("otel_bridge", "0.1.0")
    barrier.wait()
    for trace_id, span_id, body, ticket, status in items:
        ctx = trace.set_span_in_context(NonRecordingSpan(SpanContext(trace_id, span_id, False, TraceFlags(1))))
        logger.emit(timestamp=time.time_ns(), context=ctx, severity_number=SeverityNumber.INFO, severity_text="INFO",
                    body=body, attributes={"flusso.ticket_id": ticket, "flusso.status": status}, event_name=EVENT_NAME)
    flushed = processor.force_flush(timeout_millis=600_000)
    provider.shutdown()
    out.put(("live", [], 0, None if flushed and not failed[0] else f"flushed={flushed} failed={failed[0]}"))


def run_workers(ctx, targets: list[tuple], timeout: float, cpus: set[int] | None = None) -> tuple[float, list]:
    """Start forked workers (confined to `cpus` if given), release them together, time until the
    last one reports."""
    barrier, out = ctx.Barrier(len(targets) + 1), ctx.Queue()
    procs = [ctx.Process(target=fn, args=(*args, barrier, out)) for fn, args in targets]
    for p in procs:
        p.start()
        if cpus:
            os.sched_setaffinity(p.pid, cpus)
    barrier.wait(timeout=300)
    t0 = time.perf_counter()
    results = [out.get(timeout=timeout) for _ in procs]
    elapsed = time.perf_counter() - t0
    for p in procs:
        p.join(timeout=30)
    errors = [r[3] for r in results if r[3]]
    if errors:
        raise SystemExit(f"FAILED: {len(errors)} worker(s) failed: {errors[0]}")
    return elapsed, results


# ---- database and server -------------------------------------------------------------------------

def with_database(dsn: str, name: str) -> str:
    return urlunsplit(urlsplit(dsn)._replace(path="/" + name))


def fresh_database(admin_dsn: str, name: str) -> str:
    from collector_api.store.core.migrate import apply_migrations
    from flusso_obs.server import maintain_partitions

    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    dsn = with_database(admin_dsn, name)
    apply_migrations(dsn)
    maintain_partitions(dsn)
    return dsn


def query(dsn: str, text: str):
    with psycopg.connect(dsn, autocommit=True) as conn:
        cur = conn.execute(text)
        return cur.fetchone() if cur.description else None


async def new_key(dsn: str) -> str:
    from collector_api.store.accounts.principals import create_api_key
    from collector_api.store.core.db import create_pool

    async with create_pool(dsn) as pool:
        return (await create_api_key(pool, TENANT)).secret


def start_server(dsn: str, workdir: Path, workers: int = 1, extra_env: dict[str, str] | None = None,
                 log_name: str = "server.log") -> tuple[subprocess.Popen, int]:
    """`flusso-obs serve` on a free port of 127.0.0.1 against `dsn`; (process, port) once /readyz is 200."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, DATABASE_URL=dsn, FLUSSO_DATA_DIR=str(workdir / "data"),
               FLUSSO_SESSION_SECRET="bench-" + "x" * 40, PYTHONPATH=str(ROOT),
               FLUSSO_GRPC_PORT=os.environ.get("FLUSSO_GRPC_PORT", "0"))  # HTTP only: 4317 may be taken
    env.update(extra_env or {})
    log = workdir / log_name
    proc = subprocess.Popen([sys.executable, "-m", "flusso_obs.cli", "serve", "--host", "127.0.0.1",
                             "--port", str(port),
                             "--workers", str(workers)],
                            cwd=workdir, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"FAILED: server exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as resp:
                if resp.status == 200:
                    return proc, port
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("FAILED: server not ready within 60 s")


def stop_server(server: subprocess.Popen) -> None:
    server.send_signal(signal.SIGTERM)
    try:
        server.wait(timeout=20)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


# What makes a commit durable: WAL flushed to disk before COMMIT returns (any synchronous_commit
# but "off" flushes locally), and fsync really flushing.
DURABLE_SETTINGS = "SELECT current_setting('fsync'), current_setting('synchronous_commit')"


def verify_after_run(dsn: str, sent: int) -> str:
    """Count the rows once the collector has stopped, and read the server's durability settings.
    Says "durable, verified" only when every log sent is there once and commits were flushed."""
    rows, distinct = query(dsn, "SELECT count(*), count(DISTINCT trace_id) FROM workflow_logs")
    if (rows, distinct) != (sent, sent):
        raise SystemExit(f"FAILED: after the run {sent} logs sent, {rows} rows stored ({distinct} distinct ids)")
    fsync, sync_commit = query(dsn, DURABLE_SETTINGS)
    settings = f"fsync={fsync}, synchronous_commit={sync_commit}"
    if fsync == "on" and sync_commit != "off":
        return f"{sent} = {rows}, each once; {settings}: durable, verified"
    return f"{sent} = {rows}, each once; {settings}: durability NOT verified (commits may not be on disk)"


def _tree(pid: int) -> list[int]:
    """The process and its descendants (uvicorn workers when --workers > 1)."""
    pids = [pid]
    try:  # a process or thread may exit while it is read: it then has no children to count
        children = [c for task in Path(f"/proc/{pid}/task").glob("*/children") for c in _read(task).split()]
    except OSError:
        return pids
    for child in children:
        pids += _tree(int(child))
    return pids


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def vm_kib(pid: int, field: str) -> int:
    """`field` of /proc/PID/status summed over the process tree."""
    total = 0
    for member in _tree(pid):
        try:
            lines = Path(f"/proc/{member}/status").read_text().splitlines()
        except OSError:
            continue
        total += next((int(line.split()[1]) for line in lines if line.startswith(field + ":")), 0)
    return total


def postgres_pids(dsn: str) -> list[int]:
    """The postmaster of the server behind `dsn` and all its processes; [] unless it runs here."""
    with psycopg.connect(dsn, autocommit=True) as conn:  # the backend lives as long as its connection
        if conn.info.host and not conn.info.host.startswith("/") and conn.info.host not in ("localhost", "127.0.0.1"):
            return []
        backend = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
        try:
            status = Path(f"/proc/{backend}/status").read_text()
        except OSError:
            return []
    if "postgres" not in status.splitlines()[0]:  # "Name:" of a backend process
        return []
    postmaster = int(next(line.split()[1] for line in status.splitlines() if line.startswith("PPid:")))
    return _tree(postmaster)


def tree_cpu_seconds(root: int) -> float:
    """CPU time (user + system) of `root`'s process tree, including children it has reaped
    (PostgreSQL backends that ended count through the postmaster's cutime/cstime)."""
    tick, total = os.sysconf("SC_CLK_TCK"), 0
    for pid in _tree(root):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12]) + (int(fields[13]) + int(fields[14]) if pid == root else 0)
    return total / tick


def set_cpus(pids: list[int], cpus: set[int]) -> None:
    """Confine every thread of `pids` to `cpus`; processes and threads they start later inherit it."""
    for pid in pids:
        try:  # a process (a PostgreSQL backend) may exit while its threads are listed
            tasks = [int(task.name) for task in Path(f"/proc/{pid}/task").glob("*")]
        except OSError:
            continue
        for task in tasks:
            try:
                os.sched_setaffinity(task, cpus)
            except (ProcessLookupError, PermissionError):
                pass


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))] if ordered else float("nan")


# ---- main ----------------------------------------------------------------------------------------

def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--logs", type=int, default=20_000, help="logs sent as pre-encoded requests")
    ap.add_argument("--procs", type=int, default=4, help="sender processes, one connection each")
    ap.add_argument("--batch", type=int, default=512, help="log records per request (the exporter sends up to 512)")
    ap.add_argument("--copy-streams", type=int, default=2, help="parallel COPY streams of the baseline")
    ap.add_argument("--live-logs", type=int, default=None, help="logs sent through live exporters (default logs/4)")
    ap.add_argument("--workers", type=int, default=1, help="collector worker processes (serve --workers)")
    ap.add_argument("--dsn", help="PostgreSQL maintenance DSN (default: embedded server in a temp dir)")
    ap.add_argument("--no-split", dest="split", action="store_false",
                    help="skip the second run with PostgreSQL and the collector on separate cores")
    ap.add_argument("--smoke", action="store_true", help="small run that finishes in < 60 s")
    args = ap.parse_args()
    if args.smoke:
        args.logs, args.procs, args.batch, args.copy_streams = 600, 2, 100, 2
        args.live_logs = 200 if args.live_logs is None else args.live_logs
    live_logs = args.logs // 4 if args.live_logs is None else args.live_logs
    ctx = mp.get_context("fork")
    workdir = Path(tempfile.mkdtemp(prefix="flusso-bench-ingest-"))
    handle, server, ok = None, None, False
    try:
        if args.dsn:
            admin = args.dsn
        else:
            from flusso_obs.embedded import start_embedded
            handle = start_embedded(workdir)
            admin = handle.get_uri("postgres")
        pg_version = query(admin, "SHOW server_version")[0]
        tag = f"bench_ingest_{os.getpid()}"
        collector_dsn, copy_dsn = fresh_database(admin, tag + "_c"), fresh_database(admin, tag + "_copy")
        key = asyncio.run(new_key(collector_dsn))
        t = time.perf_counter()
        now = datetime.now(UTC)
        month = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        rng = Random(42)
        docs = [make_doc(rng, i, month, now) for i in range(args.logs)]
        BODIES[:] = encode_requests(docs, args.batch)
        ROWS[:] = copy_rows(docs)
        doc_kb = sum(len(r[_COLUMNS.index("log_data")]) for r in ROWS) / len(ROWS) / 1024
        wire_mb = sum(map(len, BODIES)) / 2**20
        del docs
        print(f"prepared {args.logs} logs (~{doc_kb:.1f} KB each) in {len(BODIES)} requests "
              f"({wire_mb:.1f} MiB gzipped) in {time.perf_counter() - t:.1f} s", flush=True)

        server, port = start_server(collector_dsn, workdir, args.workers)
        base_rss = vm_kib(server.pid, "VmRSS") / 1024
        bounds = [(i, min(i + args.batch, len(ROWS))) for i in range(0, len(ROWS), args.batch)]

        postmaster = (postgres_pids(admin) or [None])[0]
        cpu_per_log: dict[str, float] = {}  # ms of CPU per log, by phase and process
        counted: list[int] = []  # rows counted in PostgreSQL after each pre-encoded phase

        def cpu_mark() -> tuple[float, float]:
            return (tree_cpu_seconds(postmaster) if postmaster else float("nan"), tree_cpu_seconds(server.pid))

        def cpu_note(phase: str, before: tuple[float, float]) -> None:
            after = cpu_mark()
            cpu_per_log[phase + " pg"] = (after[0] - before[0]) * 1000 / args.logs
            cpu_per_log[phase + " collector"] = (after[1] - before[1]) * 1000 / args.logs

        def collector_phase(cpus: set[int] | None) -> tuple[float, float, list, int]:
            query(admin, "CHECKPOINT")
            shares = [list(range(p, len(BODIES), args.procs)) for p in range(args.procs)]
            before = cpu_mark()
            elapsed, results = run_workers(ctx, [(sender, (s, port, key)) for s in shares], timeout=1800, cpus=cpus)
            cpu_note("collector" if cpus is None else "split collector", before)
            stored = query(collector_dsn, "SELECT count(*), count(DISTINCT trace_id) FROM workflow_logs")
            if tuple(stored) != (args.logs, args.logs):
                raise SystemExit(f"FAILED: sent {args.logs} logs, stored {stored[0]} rows ({stored[1]} distinct ids)")
            counted.append(stored[0])
            return (args.logs / elapsed, elapsed, [x for r in results for x in r[1]], sum(r[2] for r in results))

        def copy_phase(cpus: set[int] | None) -> tuple[float, float]:
            query(admin, "CHECKPOINT")
            before = cpu_mark()
            copy_elapsed, _ = run_workers(ctx, [(copier, (bounds[s::args.copy_streams], copy_dsn))
                                                for s in range(args.copy_streams)], timeout=1800, cpus=cpus)
            cpu_note("copy" if cpus is None else "split copy", before)
            copied = query(copy_dsn, "SELECT count(*) FROM workflow_logs")[0]
            if copied != args.logs:
                raise SystemExit(f"FAILED: COPY baseline stored {copied} of {args.logs} rows")
            return args.logs / copy_elapsed, copy_elapsed

        # 1. Shared: PostgreSQL, the collector and the senders share every core (one small box).
        rate, elapsed, latencies, retries = collector_phase(None)
        hwm = vm_kib(server.pid, "VmHWM") / 1024
        copy_rate, copy_elapsed = copy_phase(None)
        ratio = rate / copy_rate
        # 2. Split: PostgreSQL gets the same cores in both runs (half the machine); the collector
        #    and the load generators run on the other half, as on separate hosts. This isolates
        #    the cost the collector adds on the database from the CPU it needs itself.
        split = None
        cores = sorted(os.sched_getaffinity(0))
        pg_pids = postgres_pids(admin) if args.split and len(cores) >= 2 else []
        if pg_pids:
            db_cpus, app_cpus = set(cores[:len(cores) // 2]), set(cores[len(cores) // 2:])
            for dsn in (collector_dsn, copy_dsn):
                query(dsn, "TRUNCATE workflow_logs")
            set_cpus(pg_pids, db_cpus)
            set_cpus(_tree(server.pid), app_cpus)
            try:
                split_rate, _, split_lat, _ = collector_phase(app_cpus)
                split_copy, _ = copy_phase(app_cpus)
            finally:
                set_cpus(postgres_pids(admin), set(cores))
                set_cpus(_tree(server.pid), set(cores))
            split = (split_rate, split_copy, split_rate / split_copy, pct(split_lat, .5), pct(split_lat, .99),
                     len(db_cpus), len(app_cpus))
        live_rate = float("nan")
        if live_logs:
            query(admin, "CHECKPOINT")
            per = [live_logs // args.procs + (p < live_logs % args.procs) for p in range(args.procs)]
            live_elapsed, _ = run_workers(ctx, [(live_exporter, (n, 1_000_000 * (p + 1), port, key, args.batch))
                                                for p, n in enumerate(per) if n], timeout=1800)
            total = query(collector_dsn, "SELECT count(*) FROM workflow_logs")[0]
            if total != args.logs + live_logs:
                raise SystemExit(f"FAILED: live exporters sent {live_logs}, stored {total - args.logs}")
            live_rate = live_logs / live_elapsed
        hwm_all = vm_kib(server.pid, "VmHWM") / 1024
        stop_server(server)  # every acknowledged log must be in PostgreSQL now, none in the collector
        server = None
        after_run = verify_after_run(collector_dsn, args.logs + live_logs)

        lines = [
            ("logs sent = rows stored (pre-encoded phase)",
             f"{args.logs} = {counted[-1]}  (counted in PostgreSQL after the phase)" if counted else
             f"{args.logs} sent; rows not counted"),
            ("rows after the run (collector stopped)", after_run),
            ("document size / request", f"~{doc_kb:.1f} KB JSON, {args.batch} logs/request, gzip"),
            (f"collector, {args.procs} sender procs", f"{rate:,.0f} logs/s  ({rate / args.batch:,.1f} req/s, "
                                                       f"{elapsed:.1f} s, {retries} retried 503/429)"),
            ("request latency p50 / p99",
             f"{pct(latencies, .5) * 1000:,.0f} ms / {pct(latencies, .99) * 1000:,.0f} ms"),
            (f"raw binary COPY, {args.copy_streams} streams", f"{copy_rate:,.0f} logs/s  ({copy_elapsed:.1f} s, "
                                                             f"txn per {args.batch} rows)"),
            ("ratio collector / COPY (shared cores)", f"{ratio:.2f}x  (target >= 0.7x: "
                                                      f"{'PASS' if ratio >= 0.7 else 'MISS'})"),
            ("CPU per log (shared run)", f"PostgreSQL {cpu_per_log['collector pg']:.3f} ms + collector "
                                         f"{cpu_per_log['collector collector']:.3f} ms; COPY run: PostgreSQL "
                                         f"{cpu_per_log['copy pg']:.3f} ms"),
            ("collector peak RSS (VmHWM)", f"{hwm:.0f} MB  (idle {base_rss:.0f} MB; target <= 200 MB: "
                                           f"{'PASS' if hwm <= 200 else 'MISS'})"),
            *([("ratio collector / COPY (split cores)", "skipped (--no-split, fewer than 2 cores, "
                                                         "or a server on another machine)")] if split is None else [
                (f"split: PostgreSQL on {split[5]} core(s), rest on {split[6]}",
                 f"collector {split[0]:,.0f} logs/s (p50 {split[3] * 1000:,.0f} ms, p99 {split[4] * 1000:,.0f} ms), "
                 f"COPY {split[1]:,.0f} logs/s"),
                ("ratio collector / COPY (split cores)", f"{split[2]:.2f}x  (target >= 0.7x: "
                                                         f"{'PASS' if split[2] >= 0.7 else 'MISS'})")]),
            (f"live OTLPLogExporter x {args.procs} procs", f"{live_rate:,.0f} logs/s  ({live_logs} logs, "
                                                           f"peak RSS after {hwm_all:.0f} MB)"),
            ("PostgreSQL / Python / cores", f"{pg_version} / {sys.version.split()[0]} / {os.cpu_count()}"),
        ]
        width = max(len(a) for a, _ in lines)
        print("\n" + "=" * (width + 60))
        print(f"{'ingest benchmark':<{width}}  result")
        print("-" * (width + 60))
        for a, b in lines:
            print(f"{a:<{width}}  {b}")
        print("=" * (width + 60), flush=True)
        ok = True
        return 0
    finally:
        if server is not None:
            stop_server(server)
        if not ok and (workdir / "server.log").exists():
            print("server log tail:\n" + (workdir / "server.log").read_text()[-2000:], file=sys.stderr)
        if args.dsn:
            with psycopg.connect(args.dsn, autocommit=True) as conn:
                for name in (f"bench_ingest_{os.getpid()}_c", f"bench_ingest_{os.getpid()}_copy"):
                    conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        if handle is not None:
            handle.cleanup()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
