"""Evaluation tests: a fake OpenAI-compatible judge on 127.0.0.1 (a real HTTP server that
records every request and answers as told), hand-built workflow log documents, and logs
inserted straight into the table."""
from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import psycopg
from psycopg.types.json import Jsonb

Answer = tuple  # ("ok", score, reason) | ("content", text) | ("status", code) | ("sleep", s, then) | ("raw", bytes)


def chat_response(content: str, prompt_tokens: int = 1000, completion_tokens: int = 20) -> bytes:
    return json.dumps({"id": "c1", "object": "chat.completion", "choices": [
        {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens}}).encode()


class _Server(ThreadingHTTPServer):
    # A listen backlog like a real endpoint's (socketserver's default is 5: a client opening its 16
    # connections at once would see SYNs dropped and retried a second later, a stall of this fake).
    request_queue_size = 128


class FakeJudge:
    """`answer(n, request_json)` decides the n-th answer (0-based); default: score 0.8."""

    def __init__(self, answer: Callable[[int, dict], Answer] | None = None, latency_s: float = 0.0):
        self.requests: list[dict] = []
        self.raw: list[bytes] = []
        self.headers: list[dict] = []
        self.answer = answer or (lambda n, req: ("ok", 0.8, "fine"))
        self.latency_s = latency_s
        self.lock = threading.Lock()
        judge = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # TCP_NODELAY, as real endpoints (uvicorn, nginx) set it: http.server writes the headers
            # and the body in two sends, and with Nagle's algorithm the body waits for the client's
            # delayed ACK (~40 ms a call on Linux), a stall of this fake server, not of the client.
            disable_nagle_algorithm = True

            def do_POST(self):  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with judge.lock:
                    n = len(judge.requests)
                    judge.raw.append(body)
                    judge.headers.append(dict(self.headers))
                    judge.requests.append(json.loads(body))
                if judge.latency_s:
                    time.sleep(judge.latency_s)
                self.reply(judge.answer(n, judge.requests[n]))

            def reply(self, action: Answer) -> None:
                kind = action[0]
                if kind == "sleep":
                    time.sleep(action[1])
                    return self.reply(action[2])
                if kind == "status":
                    payload, code = b'{"error": "boom"}', action[1]
                elif kind == "raw":
                    payload, code = action[1], 200
                elif kind == "content":
                    payload, code = chat_response(action[1]), 200
                else:
                    payload, code = chat_response(json.dumps({"score": action[1], "reason": action[2]})), 200
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                try:
                    self.wfile.write(payload)
                except OSError:
                    pass  # the client gave up (its deadline)

            def log_message(self, *args):
                pass

        self.server = _Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.block_on_close = False  # a handler still sleeping (a timeout test) is not waited for
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1/chat/completions"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)

    def __enter__(self) -> FakeJudge:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def prompts(self) -> list[str]:
        return [r["messages"][-1]["content"] for r in self.requests]


def build_log(*, draft: str | None = "Your order A-77 shipped on 2026-11-30.", evidence: dict | None = None,
              retrieval: dict | None = None, ticket: dict | None = None, status: str = "SUCCESS") -> dict:
    """A stored log document as the bridge would have built it (only what evaluators read)."""
    trace: dict = {"output": {"draft": draft} if draft is not None else {},
                   "evidence": evidence if evidence is not None else {"items": [], "conflicts": []},
                   "retrieval": retrieval if retrieval is not None else {},
                   "ticket": ticket if ticket is not None else {"subject": "[text:0123456789ab]"}}
    return {"identification": {"workflow_name": "flusso_ticket", "content": "scrub"},
            "ticket_info": {"ticket_id": "T-1"}, "outcome": {"status": status, "resolution_status": "resolved"},
            "metrics": {}, "trace": trace}


def insert_log(dsn: str, client: str, doc: dict, *, ticket: str = "T-1", status: str = "SUCCESS",
               at: datetime | None = None, trace_id: str | None = None) -> int:
    at = at or datetime.now(UTC) - timedelta(minutes=1)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("INSERT INTO tenants (client_id) VALUES (%s) ON CONFLICT DO NOTHING", (client,))
        row = conn.execute(
            "INSERT INTO workflow_logs (client_id, ticket_id, status, executed_at, trace_id, log_data)"
            " VALUES (%s, %s, %s, %s, %s, %s) RETURNING id",
            (client, ticket, status, at, trace_id or f"{client}-{ticket}-{at.timestamp()}", Jsonb(doc))).fetchone()
    return row[0]


def score_rows(dsn: str) -> list[tuple]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        return conn.execute("SELECT client_id, log_id, evaluator, version, score, reason FROM evaluation_scores"
                            " ORDER BY log_id, evaluator, version").fetchall()


def outcome_rows(dsn: str) -> list[tuple]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        return conn.execute("SELECT log_id, evaluator, version, outcome, detail FROM evaluation_outcomes"
                            " ORDER BY log_id, evaluator").fetchall()
