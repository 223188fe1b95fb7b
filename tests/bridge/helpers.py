"""Bridge tests: settings for a test bridge, a small decorated workflow to send tickets through,
and a fresh interpreter to run code in (process-level behaviour)."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from config.bridge import BridgeSettings
from otel_bridge import node, record, workflow

ROOT = Path(__file__).resolve().parents[2]


def settings(**kw) -> BridgeSettings:
    base = dict(environment="test", pii_hash_key="test-key-0123456789", export_timeout_seconds=1.0,
                log_batch_delay_millis=20, client_id="acme", workflow_version="2.3.0")
    base.update(kw)
    return BridgeSettings(_env_file=None, **base)


@node("step", kind="tool")
def step(i):
    record.react_iteration(thought=f"step {i}", action="lookup", observation="ok")


@workflow("flusso_ticket")
def ticket(tid, steps=3):
    record.ticket(tid, requester_email="jane@example.com", subject="help")
    for i in range(steps):
        step(i)
    record.outcome("SUCCESS", "resolved")
    return tid


def send(prefix, n, **kw):
    return [ticket(f"{prefix}-{i}", **kw) for i in range(n)]


def run(code: str, *args: str, timeout: float = 30.0) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "LOG_COLLECTOR"))}
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code), *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


COMMON = """
import sys, json, os, time
import otel_bridge
from otel_bridge import workflow, node, record
from config.bridge import BridgeSettings
S = dict(_env_file=None, environment="test", pii_hash_key="k", log_batch_delay_millis=20, export_timeout_seconds=1)
"""


class DatasetServer:
    """A real HTTP server on 127.0.0.1 answering GET /api/v1/datasets/{name}/items in keyset pages
    of `page` items, as the collector does; records the API keys it was sent."""

    def __init__(self, name: str, items: list[dict], *, page: int = 2, key: str = "read-key"):
        import json
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
        from urllib.parse import parse_qs, urlparse

        served = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                url = urlparse(self.path)
                served.keys.append(self.headers.get("X-API-Key"))
                if url.path != f"/api/v1/datasets/{name}/items" or self.headers.get("X-API-Key") != key:
                    status, body = 404, {"detail": "no such dataset (or it belongs to another client)"}
                else:
                    after = int(parse_qs(url.query).get("after", ["0"])[0])
                    rest = [i for i in items if i["id"] > after]
                    status, body = 200, {"dataset": {"id": 7, "name": name}, "items": rest[:page],
                                         "next_after": rest[page - 1]["id"] if len(rest) > page else None}
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.keys: list[str | None] = []
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
