"""Alert tests: a real webhook receiver on loopback, logs inserted straight into the table, and
the alert job's own bookkeeping (job_runs) to wait on."""
from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import psycopg


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
