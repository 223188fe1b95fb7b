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
