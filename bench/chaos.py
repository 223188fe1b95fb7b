"""Chaos suite: nothing lost on the client.

A real client process sends demo tickets with unique ids through the bridge (with a spool)
to a real `flusso-obs serve` on a real (embedded) PostgreSQL, while one fault is injected at a
time, then all combined:

  collector_kill   the collector SIGKILLed, restarted 5 s later (short: 2 s)
  pg_restart       PostgreSQL stopped immediately (SIGQUIT) and restarted
  outage           the collector down 60 s (short: 6 s)
  blackhole        the collector's port accepts connections and never answers, 30 s (short: 6 s)
  client_kill      the collector down; the client SIGKILLed mid-outage; a new client on the same
                   spool while it is still down; the collector back; that client SIGKILLed as soon
                   as the replay lands; a third client finishes (the replay path must run:
                   the collector counts duplicate logs)
  combined         collector kill + PostgreSQL restart + client kill in one run

A ticket counts as sent when its workflow returned at least FLUSSO_SPOOL_FSYNC_MS + 100 ms
before the client was killed. Per fault: sent, stored (distinct ticket ids), lost, stored
twice, the collector's duplicate count, seconds until all stored after the fault ended,
client peak RSS; then the bridge's CPU per ticket (bridge threads only) and the spool's
cost per ticket (CPU and bytes), each against a run without a spool (the baseline).

    .venv/bin/python bench/chaos.py --short          # CI: a few hundred tickets, short faults
    .venv/bin/python bench/chaos.py                  # full: >= 3,000 tickets at >= 50/s
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
FSYNC_MS = 200


# ----------------------------------------------------------------------------- client process
def client_main(a: argparse.Namespace) -> None:
    from flusso_obs.examples import support_workflow

    import otel_bridge

    support_workflow.SPEED = 0
    otel_bridge.configure(endpoint=a.url, api_key=a.key, environment="demo", pii_hash_key="k" * 32,
                          spool_dir=a.spool or None, spool_fsync_ms=FSYNC_MS)
    tickets = support_workflow.generate_tickets(a.n, seed=a.seed)
    out = open(a.out, "a", buffering=1)
    cpu_start = time.process_time()
    wf_cpu = 0.0
    period, next_t = 1.0 / a.rate, time.perf_counter()
    for i, t in enumerate(tickets):
        t["ticket_id"] = f"{a.prefix}-{i}"
        c0 = time.thread_time()
        try:
            asyncio.run(support_workflow.handle_ticket(t))
        except Exception:
            pass  # the demo's deliberate failures: the log says FAILED
        wf_cpu += time.thread_time() - c0
        out.write(f"{t['ticket_id']} {time.time():.3f}\n")
        next_t += period
        if (d := next_t - time.perf_counter()) > 0:
            time.sleep(d)
    deadline = time.monotonic() + a.drain_s
    ok = False
    while not ok and time.monotonic() < deadline:
        ok = otel_bridge.flush(5.0)
    stats = otel_bridge.stats()
    cpu = time.process_time() - cpu_start
    print(json.dumps({"delivered": ok, "stats": stats, "cpu_bridge": cpu - wf_cpu, "cpu_workflow": wf_cpu,
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}), flush=True)
    otel_bridge.shutdown(2.0)


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        return next(int(x.split()[1]) / 1024 for x in f if x.startswith("VmRSS:"))


def demo_main(a: argparse.Namespace) -> None:
    """`flusso-obs demo` in this process (run_demo itself), its memory growth measured from
    the RSS once everything is imported."""
    import tqdm  # noqa: F401
    from flusso_obs.examples import support_workflow  # noqa: F401

    import otel_bridge  # noqa: F401
    from flusso_obs.demo import run_demo

    base, peak, done = _rss_mb(), [0.0], threading.Event()

    def watch() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], _rss_mb())
            time.sleep(0.02)
    threading.Thread(target=watch, daemon=True).start()
    summary = run_demo(collector=a.url, api_key=a.key, tickets=a.n, progress=False, speed=0.0,
                       concurrency=a.concurrency)
    done.set()
    print(json.dumps({"summary": str(summary), "delivered": summary.delivered, "problems": summary.problems,
                      "base_rss_mb": round(base, 1), "peak_rss_mb": round(peak[0], 1),
                      "growth_mb": round(peak[0] - base, 1)}), flush=True)


# ----------------------------------------------------------------------------- harness
class Stack:
    """Embedded PostgreSQL + `flusso-obs serve` on a fixed port, each killable."""

    def __init__(self, tmp: Path) -> None:
        from flusso_obs.embedded import embedded_dsn, start_embedded

        self.tmp = tmp
        self.handle = start_embedded(tmp, stop_on_exit=False)
        self.dsn = embedded_dsn(self.handle)
        from collector_api.store.core.migrate import apply_migrations

        apply_migrations(self.dsn)
        self.key = _make_key(self.dsn, "acme")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None
        self.hole: socket.socket | None = None
        self.starts = 0  # collector processes started (its duplicate counter starts at 0 with each)

    def start_collector(self) -> None:
        env = dict(os.environ, DATABASE_URL=self.dsn, FLUSSO_SESSION_SECRET="chaos-" + "x" * 40,
                   FLUSSO_GRPC_PORT=os.environ.get("FLUSSO_GRPC_PORT", "0"))  # HTTP only: 4317 may be taken
        self.starts += 1
        self.proc = subprocess.Popen([sys.executable, "-m", "flusso_obs.cli", "serve", "--port", str(self.port)],
                                     cwd=str(ROOT), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(self.url + "/readyz", timeout=1)
                return
            except Exception:
                time.sleep(0.1)
        raise RuntimeError("collector did not start")

    def kill_collector(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
            self.proc = None

    def blackhole(self, on: bool) -> None:
        if on:
            self.hole = socket.socket()
            self.hole.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self.hole.bind(("127.0.0.1", self.port))
            self.hole.listen(1024)  # connections complete in the backlog; nothing ever answers
        elif self.hole is not None:
            self.hole.close()
            self.hole = None

    def restart_postgres(self) -> None:
        pgdata = self.tmp / "pg"
        pid = int((pgdata / "postmaster.pid").read_text().split()[0])
        os.kill(pid, signal.SIGQUIT)  # immediate shutdown
        for _ in range(200):
            if not (pgdata / "postmaster.pid").exists():
                break
            time.sleep(0.05)
        time.sleep(1.0)
        self.handle.ensure_postgres_running()  # the same handle starts it again

    def stored(self, prefix: str) -> tuple[set[str], int]:
        import psycopg

        with psycopg.connect(self.dsn) as conn:
            rows = conn.execute("SELECT ticket_id, count(*) FROM workflow_logs WHERE ticket_id LIKE %s "
                                "GROUP BY ticket_id", (prefix + "-%",)).fetchall()
        return {r[0] for r in rows}, sum(1 for r in rows if r[1] > 1)

    def duplicates(self) -> int:
        try:
            text = urllib.request.urlopen(self.url + "/metrics", timeout=5).read().decode()
        except Exception:
            return 0
        return int(sum(float(line.split()[-1]) for line in text.splitlines()
                       if line.startswith("flusso_logs_duplicate_total")))

    def close(self) -> None:
        self.kill_collector()
        self.blackhole(False)
        try:
            pid = int((self.tmp / "pg" / "postmaster.pid").read_text().split()[0])
            os.kill(pid, signal.SIGINT)
        except Exception:
            pass


class DelayProxy:
    """A TCP proxy on 127.0.0.1 in front of the collector that can hold the collector's answers
    back for ``delay_s``: the collector has stored a batch, the client has not heard so yet;
    a client killed in that window leaves acknowledged rows in its spool (the replay path)."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.delay_s = 0.0
        self.srv = socket.socket()
        self.srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.srv.bind(("127.0.0.1", 0))
        self.srv.listen(256)
        self.url = f"http://127.0.0.1:{self.srv.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                down, _ = self.srv.accept()
            except OSError:
                return
            try:
                up = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=5)
                up.settimeout(None)
            except OSError:
                down.close()
                continue
            threading.Thread(target=self._pump, args=(down, up, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(up, down, True), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, answers: bool) -> None:
        try:
            while data := src.recv(65536):
                if answers and self.delay_s:
                    time.sleep(self.delay_s)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                sock.close()


def _make_key(dsn: str, client: str) -> str:
    from collector_api.store.accounts.principals import create_api_key
    from collector_api.store.core.db import create_pool

    async def go() -> str:
        async with create_pool(dsn) as pool:
            return (await create_api_key(pool, client, "ingest")).secret
    return asyncio.run(go())


class Client:
    def __init__(self, stack: Stack, prefix: str, n: int, rate: float, spool: str | None, seed: int,
                 out: Path, drain_s: float, url: str | None = None) -> None:
        self.out = out
        args = [sys.executable, __file__, "--client", "--url", url or stack.url, "--key", stack.key, "--prefix", prefix,
                "--n", str(n), "--rate", str(rate), "--seed", str(seed), "--out", str(out),
                "--drain-s", str(drain_s)]
        if spool:
            args += ["--spool", spool]
        self.err = open(out.with_suffix(".err"), "w")  # the bridge's warnings, for a post-mortem
        self.proc = subprocess.Popen(args, cwd=str(ROOT), stdout=subprocess.PIPE, stderr=self.err)
        self.peak_rss = 0.0
        self.report: dict = {}
        threading.Thread(target=self._watch_rss, daemon=True).start()

    def _watch_rss(self) -> None:
        while self.proc.poll() is None:
            try:
                with open(f"/proc/{self.proc.pid}/status") as f:
                    for line in f:
                        if line.startswith("VmRSS:"):
                            self.peak_rss = max(self.peak_rss, int(line.split()[1]) / 1024)
            except OSError:
                pass
            time.sleep(0.1)

    def kill(self) -> float:
        t = time.time()
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        return t

    def wait(self, timeout: float) -> dict:
        out, _ = self.proc.communicate(timeout=timeout)
        lines = [x for x in out.decode().splitlines() if x.startswith("{")]
        self.report = json.loads(lines[-1]) if lines else {}
        return self.report

    def returned(self) -> list[tuple[str, float]]:
        if not self.out.exists():
            return []
        return [(p[0], float(p[1])) for p in (ln.split() for ln in self.out.read_text().splitlines()) if len(p) == 2]


# ----------------------------------------------------------------------------- scenarios
class Run:
    def __init__(self, stack: Stack, tmp: Path, n: int, rate: float, short: bool) -> None:
        self.stack, self.tmp, self.n, self.rate, self.short = stack, tmp, n, rate, short
        self.down_s = {"collector_kill": 2.0 if short else 5.0, "outage": 6.0 if short else 60.0,
                       "blackhole": 6.0 if short else 30.0}

    def client(self, prefix: str, n: int, spool: str | None, tag: str, url: str | None = None) -> Client:
        return Client(self.stack, prefix, n, self.rate, spool, seed=abs(hash(prefix)) % 1000,
                      out=self.tmp / f"{prefix}.{tag}.sent", drain_s=240.0, url=url)

    def wait_returned(self, c: Client, k: int, timeout: float = 300.0) -> None:
        deadline = time.monotonic() + timeout
        while len(c.returned()) < k and c.proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)

    def fault(self, name: str) -> None:
        st = self.stack
        if name == "pg_restart":
            st.restart_postgres()
            return
        st.kill_collector()
        if name == "blackhole":
            st.blackhole(True)
        time.sleep(self.down_s.get(name, 2.0))
        st.blackhole(False)
        st.start_collector()

    def mark(self) -> None:
        """Where the collector's duplicate counter stands when a scenario starts."""
        self.dup_mark = (self.stack.starts, self.stack.duplicates())

    def dup_delta(self) -> int:
        now = self.stack.duplicates()
        starts, before = self.dup_mark
        return now if self.stack.starts != starts else now - before

    def simple(self, name: str) -> dict:
        self.mark()
        prefix = f"{name}{int(time.time())}"
        c = self.client(prefix, self.n, str(self.tmp / f"spool-{prefix}"), "a")
        self.wait_returned(c, self.n // 3)
        self.fault(name)
        t_end = time.time()
        c.wait(600)
        sent = {t for t, _ in c.returned()}
        return self.tally(name, prefix, sent, t_end, [c])

    def client_kill(self, name: str, with_pg: bool = False) -> dict:
        self.mark()
        st, prefix = self.stack, f"{name}{int(time.time())}"
        spool = str(self.tmp / f"spool-{prefix}")
        proxy = DelayProxy(st.port)
        c1 = self.client(prefix + "-a", self.n // 2, spool, "a", proxy.url)
        self.wait_returned(c1, self.n // 6)
        st.kill_collector()
        if with_pg:
            st.restart_postgres()
        self.wait_returned(c1, self.n // 3)
        killed = c1.kill()
        sent = {t for t, at in c1.returned() if at <= killed - (FSYNC_MS + 100) / 1000}
        c2 = self.client(prefix + "-b", self.n // 2, spool, "b", proxy.url)
        self.wait_returned(c2, self.n // 4)
        before = len(st.stored(prefix)[0])
        proxy.delay_s = 3.0  # the collector's first answers are held back
        st.start_collector()
        t_end = time.time()
        deadline = time.monotonic() + 120
        while len(st.stored(prefix)[0]) <= before and time.monotonic() < deadline:
            time.sleep(0.01)
        killed = c2.kill()  # the replay landed, its answer is held back: those rows stay spooled
        proxy.delay_s = 0.0
        sent |= {t for t, at in c2.returned() if at <= killed - (FSYNC_MS + 100) / 1000}
        c3 = self.client(prefix + "-c", 0, spool, "c", proxy.url)
        c3.wait(600)
        return self.tally(name, prefix, sent, t_end, [c1, c2, c3])

    def tally(self, name: str, prefix: str, sent: set[str], t_end: float, clients: list[Client]) -> dict:
        deadline = time.monotonic() + 300
        stored, twice = self.stack.stored(prefix)
        while not sent <= stored and time.monotonic() < deadline:
            time.sleep(0.2)
            stored, twice = self.stack.stored(prefix)
        all_stored_s = time.time() - t_end
        return {"fault": name, "sent": len(sent), "stored": len(stored & sent), "lost": len(sent - stored),
                "stored_twice": twice, "collector_dups": self.dup_delta(), "all_stored_s": round(all_stored_s, 1),
                "peak_rss_mb": round(max(c.peak_rss for c in clients), 1),
                "report": next((c.report for c in reversed(clients) if c.report), {})}

    def cost(self, spool: bool) -> dict:
        prefix = f"cost{'s' if spool else 'm'}{int(time.time())}"
        c = self.client(prefix, self.n, str(self.tmp / f"spool-{prefix}") if spool else None, "a")
        rep = c.wait(600)
        n = max(1, self.n)
        st = rep.get("stats", {})
        return {"spool": spool, "bridge_cpu_ms_per_ticket": 1000 * rep.get("cpu_bridge", 0) / n,
                "spool_bytes_per_ticket": st.get("spool_bytes_written", 0) / n, "peak_rss_mb": round(c.peak_rss, 1),
                "delivered": rep.get("delivered")}


def burst(stack: Stack, tmp: Path, tickets: int, concurrency: int) -> dict:
    """The demo with its defaults as a new user would send: N tickets, C at once, no waits."""
    t0 = time.time()
    out = subprocess.run([sys.executable, __file__, "--demo", "--url", stack.url, "--key", stack.key,
                          "--n", str(tickets), "--concurrency", str(concurrency)], cwd=str(ROOT),
                         capture_output=True, text=True, timeout=900)
    lines = [x for x in out.stdout.splitlines() if x.startswith("{")]
    report = json.loads(lines[-1]) if lines else {"error": out.stderr[-2000:]}
    import psycopg

    with psycopg.connect(stack.dsn) as conn:
        row = conn.execute("SELECT count(*) FILTER (WHERE (log_data->'outcome'->>'complete')::boolean), count(*) "
                           "FROM workflow_logs WHERE created_at >= to_timestamp(%s)", (t0,)).fetchone()
    report.update(tickets=tickets, concurrency=concurrency, stored=row[1], complete=row[0])
    return report


def print_table(rows: list[dict]) -> None:
    cols = ["fault", "sent", "stored", "lost", "stored_twice", "collector_dups", "all_stored_s", "peak_rss_mb"]
    print(" | ".join(cols))
    for r in rows:
        print(" | ".join(str(r[c]) for c in cols))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--short", action="store_true", help="CI mode: a few hundred tickets, short faults")
    p.add_argument("--client", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--demo", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--concurrency", type=int, default=64, help=argparse.SUPPRESS)
    for name, kind, default in (("url", str, ""), ("key", str, ""), ("prefix", str, "t"), ("spool", str, ""),
                                ("out", str, ""), ("n", int, 0), ("rate", float, 50.0), ("seed", int, 1),
                                ("drain-s", float, 120.0)):
        p.add_argument(f"--{name}", type=kind, default=default, help=argparse.SUPPRESS)
    p.add_argument("--faults", default="collector_kill,pg_restart,outage,blackhole,client_kill,combined")
    p.add_argument("--burst", type=int, default=None, help="tickets of the burst check (default 2000; short 300)")
    a = p.parse_args()
    if a.client:
        client_main(a)
        return 0
    if a.demo:
        demo_main(a)
        return 0
    n = 160 if a.short else 3000
    rate = 40.0 if a.short else 50.0
    tmp = Path(tempfile.mkdtemp(prefix="flusso-chaos-"))
    stack = Stack(tmp)
    try:
        stack.start_collector()
        run = Run(stack, tmp, n, rate, a.short)
        rows = []
        for fault in a.faults.split(","):
            if fault == "client_kill":
                rows.append(run.client_kill(fault))
            elif fault == "combined":
                rows.append(run.client_kill(fault, with_pg=True))
            else:
                rows.append(run.simple(fault))
            print_table(rows[-1:])
            sys.stdout.flush()
        print(f"\nchaos ({'short' if a.short else 'full'}: {n} tickets per fault at {rate}/s)")
        print_table(rows)
        costs = [run.cost(False), run.cost(True)]
        print("\nbridge cost per ticket, no fault (bridge threads' CPU, the workflow's own thread excluded)")
        print("mode | bridge CPU ms/ticket | ratio vs memory | spool bytes/ticket | peak RSS MB | delivered")
        base = costs[0]["bridge_cpu_ms_per_ticket"] or 1e-9
        for c in costs:
            print(f"{'spool' if c['spool'] else 'memory (baseline)'} | {c['bridge_cpu_ms_per_ticket']:.2f} | "
                  f"{c['bridge_cpu_ms_per_ticket'] / base:.2f}x | {c['spool_bytes_per_ticket']:.0f} | "
                  f"{c['peak_rss_mb']} | {c['delivered']}")
        b = burst(stack, tmp, a.burst or (300 if a.short else 2000), 64)
        print("\nburst:", json.dumps(b))
        bad = [r["fault"] for r in rows if r["lost"] or r["stored_twice"]]
        if b.get("stored") != b["tickets"] or b.get("complete") != b["tickets"] or not b.get("delivered"):
            bad.append("burst")
        # The replay path must really run in the kill scenarios (acknowledged rows re-sent).
        bad += [f"{r['fault']} (no replay)" for r in rows
                if r["fault"] in ("client_kill", "combined") and r["collector_dups"] == 0]
        print("RESULT:", "OK" if not bad else f"LOST OR DOUBLED in {bad}")
        return 1 if bad else 0
    finally:
        stack.close()


if __name__ == "__main__":
    sys.exit(main())
