"""End-to-end tests: waiting for what the whole path stored."""
from __future__ import annotations

import time

import psycopg


def poll_rows(dsn: str, expected: int, timeout_s: float = 10.0) -> list:
    deadline = time.monotonic() + timeout_s
    while True:
        with psycopg.connect(dsn) as conn:
            rows = conn.execute(
                "SELECT client_id, ticket_id, status, trace_id, log_data FROM workflow_logs ORDER BY id").fetchall()
        if len(rows) >= expected or time.monotonic() > deadline:
            return rows
        time.sleep(0.1)
