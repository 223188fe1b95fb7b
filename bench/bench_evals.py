"""Online evaluations: deterministic evaluators per core, the judge path at a slow fake endpoint,
and ingest latency with and without the evaluation job running.

    .venv/bin/python bench/bench_evals.py              # 20,000 logs; judge 480 calls; ingest 2 x 2 x 20 s
    .venv/bin/python bench/bench_evals.py --smoke      # small and quick (the test suite's smoke run)

1. `deterministic`: the four deterministic evaluators (groundedness, policy, draft_complete,
   language) over realistic log documents (docs/workflow-log.example.json, drafts varied) on ONE
   thread: logs/s per core. Baseline in the same run: decoding the same documents from JSON
   (what reading a log costs anyway).
2. `judge`: the judge path (prompt, HTTP call, strict parsing, cost) against a fake
   OpenAI-compatible server on 127.0.0.1 answering after 200 ms, concurrency 16: logs/s.
   Baseline: the ideal 16 / 0.2 s = 80 logs/s.
3. `ingest p99`: one `flusso-obs serve` on a fresh embedded PostgreSQL, legacy `POST
   /api/v1/logs` at a steady rate; phases alternate: job idle (evaluators disabled), job with
   the four deterministic evaluators, job busy (those and a judge at the 200 ms endpoint, every
   new log; FLUSSO_EVAL_INTERVAL_S=5, the default is 30), each starting from the present
   (steady state). p99 and p50 of each against idle, and the server's CPU per log in each.

Exit 1 when a target is missed at full size: deterministic < 2,000 logs/s, judge < 70 logs/s,
ingest p99 busy / idle > 1.1.
"""
from __future__ import annotations

import argparse
import asyncio
import copy
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import psycopg  # noqa: E402

from collector_api.evals.judge import JudgeConfig, new_client  # noqa: E402
from collector_api.evals.run import _deterministic_pass, evaluate_batch  # noqa: E402
from collector_api.evals.spec import Evaluator  # noqa: E402

# The fake judge runs in a process of its own, as a real endpoint would: in this process its
# threads would compete with the measured code for the GIL.
_JUDGE = ("import sys, time; sys.path.insert(0, sys.argv[1]); from tests.evals.helpers import FakeJudge\n"
          "with FakeJudge(latency_s=float(sys.argv[2])) as j:\n"
          "    print(j.url, flush=True); sys.stdin.read(); print(len(j.requests), flush=True)")


class JudgeProcess:
    """The fake judge endpoint in a process of its own. It stands for a remote service: niced, so
    that on this machine's two cores its own CPU (an HTTP server answering ~80 calls/s) does not
    compete with the collector's ingest, which a remote endpoint's would not."""

    def __init__(self, latency_s: float):
        self.proc = subprocess.Popen([sys.executable, "-c", _JUDGE, str(ROOT), str(latency_s)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, preexec_fn=lambda: os.nice(10))
        self.url = self.proc.stdout.readline().strip()
        self.requests = 0

    def __enter__(self) -> JudgeProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.proc.stdin.close()
        self.requests = int(self.proc.stdout.readline().strip() or 0)
        self.proc.wait(timeout=30)

EXAMPLE = json.loads((ROOT / "docs" / "workflow-log.example.json").read_text())
DRAFTS = ("Hello [name:d8f3e1a9c7b2], please hold the reset button for 10s (kb-7). The E4 error clears after it.",
          "Your order A-77 shipped on 2026-11-30 and costs 45.90 EUR. We guarantee a full refund if it is late.",
          "Grazie per averci scritto, il suo ordine è stato spedito e arriverà presto.",
          "We are looking into it and will")
DETERMINISTIC = [Evaluator(name=k, kind=k, id=i, params={"patterns": ["guarantee * refund", "legal action"]}
                           if k == "policy" else {}) for i, k in
                 enumerate(("groundedness", "policy", "draft_complete", "language"), 1)]


def make_docs(n: int) -> list[dict]:
    docs = []
    for i in range(n):
        doc = copy.deepcopy(EXAMPLE)
        doc["trace_id"] = uuid.uuid4().hex
        doc["trace"]["output"]["draft"] = DRAFTS[i % len(DRAFTS)] + f" Ref R-{i}."
        docs.append(doc)
    return docs


def bench_deterministic(n: int) -> tuple[float, float]:
    docs = make_docs(n)
    texts = [json.dumps(d) for d in docs]
    started = time.process_time()
    for t in texts:
        json.loads(t)
    decode_s = time.process_time() - started
    logs = [{"id": i, "client_id": "acme", "status": "SUCCESS", "workflow": "flusso_ticket", "executed_at": None,
             "doc": d} for i, d in enumerate(docs)]
    from collector_api.evals.run import BatchResult
    result = BatchResult()
    started = time.process_time()  # CPU time of this thread's process: per core, whatever else runs
    _deterministic_pass(logs, DETERMINISTIC, set(), result)
    eval_s = time.process_time() - started
    assert len(result.scores) + len(result.outcomes) == 4 * n
    return n / eval_s, n / decode_s


def bench_judge(n: int, latency_s: float, concurrency: int) -> float:
    judge_ev = Evaluator(name="judge", kind="judge", id=9, monthly_cost_cap_usd=1e6)
    logs = [{"id": i, "client_id": "acme", "status": "SUCCESS", "workflow": "flusso_ticket", "executed_at": None,
             "doc": d} for i, d in enumerate(make_docs(n))]
    with JudgeProcess(latency_s) as judge:
        config = JudgeConfig(url=judge.url, model="m", timeout_s=10, concurrency=concurrency)

        async def go() -> float:
            async with new_client(config) as client:
                started = time.perf_counter()
                result = await evaluate_batch(logs, [judge_ev], set(), judge=config, client=client, spent={})
                elapsed = time.perf_counter() - started
            assert len(result.scores) == n, result.outcomes[:3]
            return n / elapsed

        return asyncio.run(go())


# --- ingest latency with the job idle and busy ------------------------------------------------

def start_server(dsn: str, workdir: Path, judge_url: str) -> tuple[subprocess.Popen, int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, DATABASE_URL=dsn, FLUSSO_DATA_DIR=str(workdir / "data"), PYTHONPATH=str(ROOT),
               FLUSSO_SESSION_SECRET="bench-" + "x" * 40, FLUSSO_GRPC_PORT="0", FLUSSO_EVAL_INTERVAL_S=EVAL_INTERVAL_S,
               FLUSSO_JUDGE_URL=judge_url, FLUSSO_JUDGE_CONCURRENCY="16")
    proc = subprocess.Popen([sys.executable, "-m", "flusso_obs.cli", "serve", "--host", "127.0.0.1", "--port",
                             str(port)], cwd=workdir, env=env, stdout=(workdir / "server.log").open("wb"),
                            stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"FAILED: server exited:\n{(workdir / 'server.log').read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as resp:
                if resp.status == 200:
                    return proc, port
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("FAILED: server not ready within 60 s")


EVAL_INTERVAL_S = "5"  # a few ticks in every phase (the default, 30 s, spreads a tick's fixed cost wider)
REFUSED = [0]  # 429/503 answers of the current phase (the tenant's in-flight bound on a saturated machine)


def send_at_rate(port: int, key: str, rate: float, seconds: float) -> list[float]:
    """Open loop: one legacy log every 1/rate s (each on its own thread), latency of each."""
    latencies: list[float] = []
    refused: list[int] = []
    failed: list[str] = []
    lock = threading.Lock()
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30,
                          limits=httpx.Limits(max_connections=64))

    def one(doc: bytes) -> None:
        started = time.perf_counter()
        r = client.post("/api/v1/logs", content=doc, headers={"X-API-Key": key, "Content-Type": "application/json"})
        elapsed = time.perf_counter() - started
        with lock:
            if r.status_code in (200, 201, 202):
                latencies.append(elapsed)
            elif r.status_code in (429, 503):  # refused for now (the in-flight bound): counted, not a failure
                refused.append(r.status_code)
            else:
                failed.append(f"{r.status_code} {r.text[:200]}")

    threads = []
    start = time.perf_counter()
    for i in range(int(rate * seconds)):
        doc = copy.deepcopy(EXAMPLE)
        doc["trace_id"] = uuid.uuid4().hex
        doc["trace"]["output"]["draft"] = DRAFTS[i % len(DRAFTS)]
        body = json.dumps(doc).encode()
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        t = threading.Thread(target=one, args=(body,))
        t.start()
        threads.append(t)
    for t in threads:
        t.join()
    client.close()
    if failed:
        raise SystemExit(f"FAILED: {len(failed)} log(s) failed: {sorted(set(failed))[:3]}")
    REFUSED[0] += len(refused)
    return latencies


def cpu_seconds(pid: int) -> float:
    """User + system CPU of process `pid` (Linux /proc), seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def p50(values: list[float]) -> float:
    return sorted(values)[len(values) // 2]


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]


def wait_for_scores(dsn: str, timeout: float) -> int:
    """The scores stored, once the evaluate job has caught up with the last phase's logs (its cursor
    at the newest log) or `timeout` seconds have passed: on busy cores the job runs late, not never."""
    deadline = time.monotonic() + timeout
    with psycopg.connect(dsn, autocommit=True) as conn:
        while True:
            caught_up = conn.execute(
                "SELECT (SELECT (watermark, last_id) FROM evaluation_state WHERE id = 1) >="
                " (SELECT (created_at, id) FROM workflow_logs ORDER BY created_at DESC, id DESC LIMIT 1)").fetchone()[0]
            if caught_up or time.monotonic() > deadline:
                return conn.execute("SELECT count(*) FROM evaluation_scores").fetchone()[0]
            time.sleep(0.5)


def bench_ingest(dsn: str, workdir: Path, rate: float, seconds: float, rounds: int) -> dict[str, float]:
    from collector_api.store.accounts.principals import create_api_key
    from collector_api.store.core.db import create_pool

    async def key() -> str:
        async with create_pool(dsn) as pool:
            return (await create_api_key(pool, "acme")).secret

    secret = asyncio.run(key())
    with psycopg.connect(dsn, autocommit=True) as conn:
        for k in ("groundedness", "policy", "draft_complete", "language"):
            conn.execute("INSERT INTO evaluators (name, kind, params, enabled) VALUES (%s, %s, %s, false)",
                         (k, k, json.dumps({"patterns": ["guarantee * refund"]} if k == "policy" else {})))
        conn.execute("INSERT INTO evaluators (name, kind, monthly_cost_cap_usd, enabled) VALUES"
                     " ('judge', 'judge', 1000, false)")
    phases: dict[str, list[float]] = {"idle": [], "deterministic": [], "busy": []}
    refused = dict.fromkeys(phases, 0)
    cpu = dict.fromkeys(phases, 0.0)  # the server process's CPU seconds in each phase
    enabled = {"idle": "false", "deterministic": "kind <> 'judge'", "busy": "true"}
    with JudgeProcess(0.2) as judge:
        server, port = start_server(dsn, workdir, judge.url)
        try:
            send_at_rate(port, secret, rate, 3)  # warm-up
            for _ in range(rounds):
                for phase, into in phases.items():
                    with psycopg.connect(dsn, autocommit=True) as conn:
                        conn.execute(f"UPDATE evaluators SET enabled = {enabled[phase]}")
                        # Steady state: the job starts from the present, as when it keeps up
                        # (not with the backlog of the phase before, when nothing was enabled).
                        conn.execute("UPDATE evaluation_state SET (watermark, last_id) = (SELECT created_at, id"
                                     " FROM workflow_logs ORDER BY created_at DESC, id DESC LIMIT 1)")
                    REFUSED[0] = 0
                    before = cpu_seconds(server.pid)
                    into += send_at_rate(port, secret, rate, seconds)
                    cpu[phase] += cpu_seconds(server.pid) - before
                    refused[phase] += REFUSED[0]
            scores = wait_for_scores(dsn, 60.0)
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=30)
    per_log = {k: cpu[k] * 1000 / max(1, len(v)) for k, v in phases.items()}
    return {"idle": p99(phases["idle"]), "deterministic": p99(phases["deterministic"]), "busy": p99(phases["busy"]),
            "p50": {k: p50(v) for k, v in phases.items()}, "cpu_ms": per_log,
            "n": len(phases["busy"]), "scores": scores, "judged": judge.requests,
            "refused": " ".join(f"{k} {v}" for k, v in refused.items())}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--smoke", action="store_true", help="small sizes (seconds, not minutes)")
    parser.add_argument("--rate", type=float, default=10.0, help="ingest requests per second (default 10)")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of the three ingest phases (default 2)")
    parser.add_argument("--seconds", type=float, default=20.0, help="seconds of each phase (default 20)")
    parser.add_argument("--dsn", default=None, help="an empty database (default: a fresh embedded one)")
    args = parser.parse_args()
    n_det, n_judge, seconds, rounds = (2_000, 64, 3.0, 1) if args.smoke else (20_000, 480, args.seconds, args.rounds)
    det, decode = bench_deterministic(n_det)
    judge = bench_judge(n_judge, 0.2, 16)
    if args.dsn:
        from collector_api.store.core.migrate import apply_migrations
        apply_migrations(args.dsn)
        ingest = bench_ingest(args.dsn, Path(tempfile.mkdtemp()), args.rate, seconds, rounds)
    else:
        from config.server import ServerSettings
        from flusso_obs.database import database, migrate
        with tempfile.TemporaryDirectory() as tmp, database(ServerSettings(_env_file=None,
                                                                            flusso_data_dir=Path(tmp))) as dsn:
            migrate(dsn)
            ingest = bench_ingest(dsn, Path(tmp), args.rate, seconds, rounds)
    ratio = ingest["busy"] / ingest["idle"]
    det_ratio = ingest["deterministic"] / ingest["idle"]
    print(f"\n{'measure':<52} {'value':>10} {'baseline':>10} {'ratio':>7}")
    print(f"{'deterministic logs/s per core (4 evaluators)':<52} {det:>10.0f} {decode:>10.0f} {det / decode:>6.2f}x"
          "   baseline: JSON decoding of the same logs")
    print(f"{'judge logs/s (200 ms endpoint, concurrency 16)':<52} {judge:>10.1f} {80.0:>10.1f} {judge / 80:>6.2f}x"
          "   baseline: 16 / 0.2 s")
    print(f"{'ingest p99 ms, job deterministic only vs idle':<52} {ingest['deterministic'] * 1000:>10.1f}"
          f" {ingest['idle'] * 1000:>10.1f} {det_ratio:>6.2f}x   {ingest['n']} requests a phase at {args.rate:g}/s")
    print(f"{'ingest p99 ms, job busy vs idle':<52} {ingest['busy'] * 1000:>10.1f} {ingest['idle'] * 1000:>10.1f}"
          f" {ratio:>6.2f}x   deterministic + judge on every log; {ingest['scores']} scores,"
          f" {ingest['judged']} judge calls in all; refused (503, in flight) {ingest['refused']}")
    p50s, cpu = ingest["p50"], ingest["cpu_ms"]
    print(f"{'ingest p50 ms: idle / deterministic / busy':<52} " + " / ".join(f"{p50s[k] * 1000:.1f}" for k in p50s))
    print(f"{'server CPU ms per log: idle / deterministic / busy':<52} " + " / ".join(f"{cpu[k]:.2f}" for k in cpu))
    print(f"load average (1, 5, 15 min) at the end: {' '.join(f'{x:.1f}' for x in os.getloadavg())}"
          f" on {os.cpu_count()} cores")
    if not args.smoke and (det < 2000 or judge < 70 or ratio > 1.1):
        print("FAIL: a target was missed (deterministic >= 2,000 logs/s, judge >= 70 logs/s, p99 <= 1.1x)")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
