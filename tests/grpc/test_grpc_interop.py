"""Stock OTLP/gRPC exporters against the collector, and the collector failing under them.

The sender is tests/grpc/stock_agent.py in its own process: the OpenTelemetry SDK with
`opentelemetry-exporter-otlp-proto-grpc` (a dev dependency), unchanged. The collector is a live
server (in-process thread) or a real `flusso-obs serve` subprocess that is SIGKILLed and
restarted, or SIGTERMed, while calls are in flight. What an exporter was told succeeded must be
in PostgreSQL.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import grpc
import psycopg

from tests.cli.test_run import free_port, wait_for
from tests.collector.conftest import make_key
from tests.collector.helpers import make_log, make_record, make_request
from tests.traces.conftest import wait_for_logs

from .conftest import LOGS_METHOD, retry_delay_s

ROOT = Path(__file__).resolve().parents[2]
AGENT = Path(__file__).resolve().parent / "stock_agent.py"
AGENT_TIMEOUT_S = 120


def agent(target: str, key: str, *args: str, timeout_s: float = 10) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env.update(FLUSSO_INGEST_KEY=key, AGENT_EXPORT_TIMEOUT_S=str(timeout_s), PYTHONPATH=str(ROOT),
               NO_PROXY="127.0.0.1,localhost", no_proxy="127.0.0.1,localhost")
    return subprocess.Popen([sys.executable, str(AGENT), "--target", target, *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def results(proc: subprocess.Popen) -> list[dict]:
    out, err = proc.communicate(timeout=AGENT_TIMEOUT_S)
    assert proc.returncode == 0, f"agent failed ({proc.returncode}):\n{out[-2000:]}\n{err[-3000:]}"
    lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert lines and lines[-1] == {"done": True}, out[-2000:]
    return lines[:-1]


def stored_trace_ids(dsn: str) -> set[str]:
    with psycopg.connect(dsn) as conn:
        return {row[0] for row in conn.execute("SELECT trace_id FROM workflow_logs")}


def test_stock_grpc_exporters_logs_and_traces(grpc_server, acme_key, db_dsn):
    """OTLPLogExporter (gzip) and OTLPSpanExporter (Bearer key) -> stored logs and assembled traces."""
    sent = results(agent(grpc_server.target, acme_key, "--logs", "5", "--traces", "2", "--gzip"))
    logs = [r["trace_id"] for r in sent if r["kind"] == "log"]
    traces = {r["trace_id"] for r in sent if r["kind"] == "span"}
    assert len(logs) == 5 and len(traces) == 2 and all(r["ok"] for r in sent), sent
    assert set(logs) <= stored_trace_ids(db_dsn)  # acknowledged after COMMIT: there at once
    rows = wait_for_logs(db_dsn, 7, timeout=30)
    assembled = {r["trace_id"]: r for r in rows if r["log"]["identification"].get("source") == "otlp-traces"}
    assert set(assembled) == traces, [r["trace_id"] for r in rows]
    assert all(r["log"]["metrics"].get("llm_calls") == 1 for r in assembled.values())
    linked = [link for r in assembled.values() for span in r["log"]["trace"]["spans"] for link in span.get("links", ())]
    assert len(linked) == 1 and linked[0]["trace_id"] in traces  # the SDK's Link, kept through gRPC and assembly
    assert linked[0]["attributes"] == {"link.reason": "follow-up of the previous ticket"}


def _serve(db_dsn: str, data_dir: Path, port: int, grpc_port: int, **env) -> subprocess.Popen:
    full = {**os.environ, "DATABASE_URL": db_dsn, "FLUSSO_DATA_DIR": str(data_dir), "FLUSSO_DRAIN_TIMEOUT_S": "15",
            "FLUSSO_DRAIN_GRACE_S": "1", **env}
    return subprocess.Popen([sys.executable, "-m", "flusso_obs.cli", "serve", "--port", str(port), "--grpc-port",
                             str(grpc_port)], env=full, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/readyz", timeout=2) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError):
        return False


def _stop(proc: subprocess.Popen) -> str:
    if proc.poll() is None:
        proc.kill()
    return proc.communicate(timeout=30)[0] or ""


def test_collector_killed_and_restarted_while_a_grpc_exporter_sends(db_dsn, tmp_path):
    """SIGKILL mid-stream, then a new `serve` on the same ports: every log the stock exporter was
    told succeeded is stored (the answer comes after COMMIT), and the exporter's own retries carry
    the stream across the restart."""
    key = make_key(db_dsn, "acme")
    port, grpc_port = free_port(), free_port()
    url = f"http://127.0.0.1:{port}"
    first = _serve(db_dsn, tmp_path, port, grpc_port)
    second = None
    try:
        assert wait_for(lambda: _ready(url), 60), _stop(first)[-3000:]
        sender = agent(f"127.0.0.1:{grpc_port}", key, "--logs", "60", "--pause-s", "0.05", timeout_s=40)
        assert wait_for(lambda: len(stored_trace_ids(db_dsn)) >= 5, 30), "nothing stored before the kill"
        before_kill = len(stored_trace_ids(db_dsn))
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        second = _serve(db_dsn, tmp_path, port, grpc_port)
        sent = results(sender)
        assert wait_for(lambda: _ready(url), 60)
    finally:
        out = _stop(first) + (_stop(second) if second is not None else "")
    acknowledged = [r["trace_id"] for r in sent if r["ok"]]
    stored = stored_trace_ids(db_dsn)
    lost = [t for t in acknowledged if t not in stored]
    assert not lost, f"{len(lost)} acknowledged logs lost; collector output:\n{out[-3000:]}"
    assert before_kill < 60, "the stream had ended before the kill"
    assert len(sent) == 60 and len(acknowledged) >= 55, (len(sent), len(acknowledged))  # retried across it


def _slow_call(target: str, key: str, halfway: threading.Event, finish: threading.Event, out: dict) -> None:
    """A gRPC call admitted before SIGTERM whose message is sent only after it."""
    log = make_log(ticket_id="SLOW-GRPC")
    out["trace_id"] = log["trace_id"]
    message = make_request(make_record(log)).SerializeToString()

    def one_message():
        halfway.set()
        finish.wait(15)
        yield message

    with grpc.insecure_channel(target) as channel:
        call = channel.stream_unary(LOGS_METHOD, request_serializer=None, response_deserializer=None)
        try:
            call(one_message(), metadata=(("x-api-key", key),), timeout=30)
            out["code"] = grpc.StatusCode.OK
        except grpc.RpcError as exc:
            out["code"], out["details"] = exc.code(), exc.details()


def test_sigterm_drains_grpc_calls(db_dsn, tmp_path):
    """A call in progress across SIGTERM finishes and commits; a new one is refused UNAVAILABLE with
    RetryInfo (or finds the port closed once the drain is done); the process exits in time."""
    key = make_key(db_dsn, "acme")
    port, grpc_port = free_port(), free_port()
    target, url = f"127.0.0.1:{grpc_port}", f"http://127.0.0.1:{port}"
    proc = _serve(db_dsn, tmp_path, port, grpc_port, FLUSSO_DRAIN_GRACE_S="3")
    slow: dict = {}
    try:
        assert wait_for(lambda: _ready(url), 60), _stop(proc)[-3000:]
        halfway, finish = threading.Event(), threading.Event()
        thread = threading.Thread(target=_slow_call, args=(target, key, halfway, finish, slow))
        thread.start()
        assert halfway.wait(10)
        assert wait_for(lambda: _in_flight(url) >= 1, 10), "the slow call was not admitted"
        sigterm_at = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        with grpc.insecure_channel(target) as channel:
            call = channel.unary_unary(LOGS_METHOD, request_serializer=None, response_deserializer=None)
            try:
                call(make_request(make_record(make_log())).SerializeToString(), metadata=(("x-api-key", key),),
                     timeout=10)
                refused = None
            except grpc.RpcError as exc:
                refused = exc
        finish.set()
        thread.join(30)
        proc.wait(25)
        exited_after = time.monotonic() - sigterm_at
    finally:
        out = _stop(proc)
    assert slow.get("code") == grpc.StatusCode.OK, (slow, out[-3000:])
    assert slow["trace_id"] in stored_trace_ids(db_dsn)
    assert refused is not None and refused.code() == grpc.StatusCode.UNAVAILABLE, refused
    assert retry_delay_s(refused)[0] is not None, "no RetryInfo while draining"
    assert exited_after < 15 + 2, exited_after


def _in_flight(url: str) -> float:
    """flusso_requests_in_flight of the server (loopback may read /metrics)."""
    with urllib.request.urlopen(url + "/metrics", timeout=5) as resp:
        for line in resp.read().decode().splitlines():
            if line.startswith("flusso_requests_in_flight "):
                return float(line.split()[1])
    return 0.0


def test_serve_with_two_workers_shares_the_grpc_port(db_dsn, tmp_path):
    """`serve --workers 2`: every worker listens on the gRPC port (SO_REUSEPORT) and serves it."""
    key = make_key(db_dsn, "acme")
    port, grpc_port = free_port(), free_port()
    full = {**os.environ, "DATABASE_URL": db_dsn, "FLUSSO_DATA_DIR": str(tmp_path)}
    proc = subprocess.Popen([sys.executable, "-m", "flusso_obs.cli", "serve", "--port", str(port), "--grpc-port",
                             str(grpc_port), "--workers", "2"], env=full, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        assert wait_for(lambda: _ready(f"http://127.0.0.1:{port}"), 60), _stop(proc)[-3000:]
        # /readyz answered by one worker says nothing of the other: wait until both listen for gRPC
        assert wait_for(lambda: len(_listeners(proc.pid, grpc_port)) == 2, 60), _listeners(proc.pid, grpc_port)
        logs = [make_log(ticket_id=f"W-{i}") for i in range(12)]
        for log in logs:  # a fresh channel (connection) each: the kernel spreads them over the workers
            with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
                call = channel.unary_unary(LOGS_METHOD, request_serializer=None, response_deserializer=None)
                call(make_request(make_record(log)).SerializeToString(), metadata=(("x-api-key", key),), timeout=20)
        listening = _listeners(proc.pid, grpc_port)  # still both, after serving
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    finally:
        out = _stop(proc)
    assert {log["trace_id"] for log in logs} <= stored_trace_ids(db_dsn), out[-3000:]
    assert len(listening) == 2 and proc.pid not in listening, listening  # the two workers, not the parent


def _listeners(parent: int, port: int) -> set[int]:
    """Processes of `parent`'s tree holding a socket that listens on `port` (from /proc)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "0A":  # 0A: LISTEN
                inodes.add(fields[9])
    try:
        tasks = Path(f"/proc/{parent}/task").glob("*/children")
        children = [int(c) for task in tasks for c in task.read_text().split()]
    except OSError:
        children = []
    found = set()
    for pid in [parent, *children]:
        try:
            fds = list(Path(f"/proc/{pid}/fd").iterdir())
        except OSError:  # the process ended meanwhile
            continue
        for fd in fds:
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:[") and target[8:-1] in inodes:
                found.add(pid)
    return found
