"""Interop harness: instrumentation no one here wrote, each in its own process and environment.

The agents run in `.venv-interop/<name>` (Python, pinned by python/requirements-<name>.txt) or
on node with tests/interop/node/node_modules (package-lock.json); `make interop` (a dependency
of `make test`) builds both. Missing there: skipped locally, a failure under CI=true.

The fake OpenAI-compatible server: a real HTTP server on 127.0.0.1, in a thread of the test process.

POST /v1/chat/completions answers a tool_call while the conversation has no tool result yet,
then plain text. Each answer's `usage` differs (per call number) and is recorded, so a test can
compare the stored token totals with what the server actually returned.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from tests.traces.helpers import EMAIL, NAME, PHONE

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
VENVS = ROOT / ".venv-interop"
NODE_DIR = HERE / "node"
AGENT_TIMEOUT_S = 90
# Every spelling of the planted PII that must reach no table (text and bytes).
PLANTED = (NAME, NAME.split()[0], NAME.split()[1], EMAIL, "annalisa.rossetti", PHONE, "347 555 0199")


def _missing(message: str) -> None:
    if os.environ.get("CI"):  # CI builds the environments (make interop): missing there is a failure
        pytest.fail(message)
    pytest.skip(message)


def interop_python(name: str) -> Path:
    python = VENVS / name / "bin" / "python"
    if not (VENVS / name / ".installed").exists() or not python.exists():
        _missing(f"{VENVS / name} is not built: run `make interop`")
    return python


def node_command() -> list[str]:
    node = shutil.which("node")
    if node is None or not (NODE_DIR / "node_modules" / ".installed").exists():
        _missing("node or tests/interop/node/node_modules missing: install nodejs + npm, then `make interop`")
    return [node, str(NODE_DIR / "agent.mjs")]


def run_agent(command: list[str], fake: FakeOpenAI, collector_url: str, key: str, dump: Path | None = None,
              env_extra: dict[str, str] | None = None) -> dict:
    """Run one agent process to its end (bounded); its last stdout line is a JSON summary."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "OPENAI_", "TRACELOOP_"))}
    env.update(OPENAI_BASE_URL=fake.url, FLUSSO_COLLECTOR_URL=collector_url, FLUSSO_INGEST_KEY=key,
               NO_PROXY="127.0.0.1,localhost", no_proxy="127.0.0.1,localhost")
    if dump is not None:
        env["INTEROP_DUMP"] = str(dump)
    env.update(env_extra or {})
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=AGENT_TIMEOUT_S)
    assert result.returncode == 0, f"agent failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
    return json.loads(result.stdout.strip().splitlines()[-1])


def database_contents(dsn: str) -> tuple[list[str], list[bytes]]:
    """Every row of every table of the public schema as text, and every bytea value as bytes."""
    with psycopg.connect(dsn) as conn:
        tables = [r[0] for r in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1").fetchall()]
        byteas = conn.execute("SELECT table_name, column_name FROM information_schema.columns"
                              " WHERE table_schema = 'public' AND data_type = 'bytea'").fetchall()
        texts = [r[0] for t in tables for r in conn.execute(
            sql.SQL("SELECT t::text FROM {} t").format(sql.Identifier(t))).fetchall()]
        blobs = [bytes(r[0]) for table, column in byteas for r in conn.execute(
            sql.SQL("SELECT {} FROM {} WHERE {} IS NOT NULL").format(
                sql.Identifier(column), sql.Identifier(table), sql.Identifier(column))).fetchall()]
    return texts, blobs


def assert_no_planted_pii(dsn: str) -> None:
    texts, blobs = database_contents(dsn)
    assert texts and blobs, "nothing stored to check (no staged span payloads)"
    for value in PLANTED:
        low = value.lower()
        for text in texts:
            at = text.lower().find(low)
            assert at < 0, f"{value!r} stored in clear: ...{text[max(0, at - 300):at + 100]}..."
        for blob in blobs:
            assert low.encode() not in blob.lower(), f"{value!r} stored in clear in a bytea value"


# --- the fake OpenAI-compatible server ----------------------------------------------------------

# (prompt_tokens, completion_tokens) of call 1, 2, ...: distinct, so a missed or doubled call shows.
USAGES = ((431, 27), (517, 64), (601, 80), (733, 95))
MAX_BODY = 1 << 20


class FakeOpenAI:
    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.usages: list[dict] = []
        self._lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def start(self) -> FakeOpenAI:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def totals(self) -> tuple[int, int]:
        with self._lock:
            return (sum(u["prompt_tokens"] for u in self.usages), sum(u["completion_tokens"] for u in self.usages))

    def answer(self, request: dict) -> dict:
        with self._lock:
            self.requests.append(request)
            n = len(self.requests)
            prompt, completion = USAGES[(n - 1) % len(USAGES)]
            usage = {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}
            self.usages.append(usage)
        has_tool_result = any(m.get("role") == "tool" for m in request.get("messages", []))
        if has_tool_result:
            # The customer greeted by first name only: no pattern finds it; the collector must know it from
            # the name-shaped person attribute (enduser.id) of the root span and replace it everywhere.
            message = {"role": "assistant",
                       "content": f"Dear {NAME.split()[0]}, order A-77 shipped; it arrives in two days.",
                       "refusal": None}
            finish = "stop"
        else:
            arguments = json.dumps({"order_id": "A-77", "email": EMAIL})
            message = {"role": "assistant", "content": None, "refusal": None, "tool_calls": [
                {"id": f"call_{n:04d}", "type": "function",
                 "function": {"name": "order_lookup", "arguments": arguments}}]}
            finish = "tool_calls"
        return {"id": f"chatcmpl-fake-{n}", "object": "chat.completion", "created": int(time.time()),
                "model": request.get("model", "gpt-4o-mini"), "system_fingerprint": "fp_fake",
                "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
                "usage": usage}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # quiet
                pass

            def _send(self, status: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                length = int(self.headers.get("Content-Length") or 0)
                if self.path.rstrip("/") != "/v1/chat/completions":
                    self._send(404, {"error": {"message": f"no route {self.path}", "type": "invalid_request_error"}})
                    return
                if not 0 < length <= MAX_BODY:
                    self._send(400, {"error": {"message": "body required", "type": "invalid_request_error"}})
                    return
                try:
                    request = json.loads(self.rfile.read(length))
                except ValueError:
                    self._send(400, {"error": {"message": "invalid JSON", "type": "invalid_request_error"}})
                    return
                if request.get("stream"):
                    self._send(400, {"error": {"message": "streaming is not faked", "type": "invalid_request_error"}})
                    return
                self._send(200, fake.answer(request))

        return Handler
