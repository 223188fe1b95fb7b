"""Alert tests: a real webhook receiver on loopback, logs inserted straight into the table, and
the alert job's own bookkeeping (job_runs) to wait on."""
from __future__ import annotations

import hashlib
import hmac
import json
import socket
import threading
import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import psycopg

from collector_api.alerts.admin import create_rule
from collector_api.alerts.job import AlertConfig, alert_tick
from collector_api.alerts.rules import validate_rule
from collector_api.alerts.targets import parse_allow_list
from collector_api.store.core.db import create_pool
from tests.helpers import run_async


class Receiver:
    def __init__(self, codes: list[int] | None = None, location: str | None = None):
        self.requests: list[dict] = []
        self.codes = list(codes or [])
        self.location = location
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
                code = receiver.codes.pop(0) if receiver.codes else 200
                self.send_response(code)
                if 300 <= code < 400 and receiver.location:
                    self.send_header("Location", receiver.location)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def payloads(self) -> list[dict]:
        return [json.loads(r["body"]) for r in self.requests]


def verify(secret: str, headers: dict, body: bytes) -> bool:
    """What a receiver does (docs/alerts.md): recompute the HMAC over t + "." + body."""
    parts = dict(item.split("=", 1) for item in headers["X-Flusso-Signature"].split(","))
    expected = hmac.new(secret.encode(), parts["t"].encode() + b"." + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, parts["v1"])


def insert_logs(dsn, client, statuses, *, at=None, duration=1.0):
    at = at or datetime.now(UTC)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("INSERT INTO tenants (client_id) VALUES (%s) ON CONFLICT DO NOTHING", (client,))
        for i, status in enumerate(statuses):
            conn.execute(
                "INSERT INTO workflow_logs (client_id, ticket_id, status, executed_at, trace_id, log_data,"
                " execution_time_seconds, cost_usd, hallucination_risk)"
                " VALUES (%s, %s, %s, %s, %s, '{}', %s, 0.01, 0.2)",
                (client, f"T-{i}", status, at - timedelta(seconds=i % 30), f"{client}-{status}-{i}-{at.timestamp()}",
                 duration))


def wait_for_alert_ticks(dsn: str, ticks: int = 2, timeout: float = 20.0) -> bool:
    """Wait until the `alert-evaluate` job has run `ticks` more times from now, each run started
    after the one seen before (job_runs.last_run_at is a run's start, written once the run,
    webhook deliveries included, has finished). A positive sign that the job looked again and
    had nothing new to send, instead of a sleep of a few intervals."""
    deadline = time.monotonic() + timeout
    with psycopg.connect(dsn, autocommit=True) as conn:
        mark = conn.execute("SELECT now()").fetchone()[0]
        seen = 0
        while seen < ticks:
            row = conn.execute("SELECT last_run_at FROM job_runs WHERE name = 'alert-evaluate'").fetchone()
            if row and row[0] > mark:
                mark, seen = row[0], seen + 1
            elif time.monotonic() > deadline:
                return False
            else:
                time.sleep(0.05)
    return True


KEY = "test-master-key-" + "m" * 32


def run(dsn, fn):
    async def go():
        async with create_pool(dsn) as pool:
            return await fn(pool)
    return run_async(go())


def make_rule(dsn, url, **kw):
    spec = validate_rule(**{"name": "failures", "metric": "failure_rate", "op": ">", "threshold": 0.5,
                            "window": "15m", "client_id": None, "webhook_url": url, **kw})
    return run(dsn, lambda pool: create_rule(pool, spec, KEY))


def tick(dsn, allow):
    return run(dsn, lambda pool: alert_tick(pool, AlertConfig(master_key=KEY, allow=parse_allow_list(allow),
                                                              public_url="https://obs.example.com")))


# A webhook receiver on loopback that reads the whole request, then answers ONE BYTE every
# `every_s` seconds: each read of its client gets a byte well within any per-read timeout, so only
# a total deadline ends the attempt. `fast = True` makes it answer at once (for the retry).
HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\nConnection: close\r\n\r\n"


class Dripper:
    def __init__(self, every_s: float = 2.0, *, drip_body: bool = False, body_size: int = 64):
        self.every_s, self.drip_body, self.body = every_s, drip_body, b"k" * body_size
        self.fast = False
        self.accepted: list[float] = []  # monotonic time of each connection
        self.requests: list[bytes] = []
        self._stop = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self.port = self._listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self._thread = threading.Thread(target=self._accept, daemon=True)

    def __enter__(self) -> Dripper:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self._listener.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.accepted.append(time.monotonic())
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _read_request(self, conn: socket.socket) -> bytes:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                return data
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                       if line.lower().startswith(b"content-length:")), 0)
        while len(body) < length:
            chunk = conn.recv(65536)
            if not chunk:
                break
            body += chunk
        return head + b"\r\n\r\n" + body

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(30)
            try:
                self.requests.append(self._read_request(conn))
                answer = HEAD % len(self.body) + self.body
                if self.fast:
                    conn.sendall(answer)
                    return
                start = len(HEAD % len(self.body)) if self.drip_body else 0
                conn.sendall(answer[:start])
                for i in range(start, len(answer)):
                    conn.sendall(answer[i:i + 1])
                    if self._stop.wait(self.every_s):
                        return
            except OSError:
                return  # the client gave up (its deadline): what the test expects
