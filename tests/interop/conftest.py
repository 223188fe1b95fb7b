"""Interop harness: instrumentation no one here wrote, each in its own process and environment.

The agents run in `.venv-interop/<name>` (Python, pinned by python/requirements-<name>.txt) or
on node with tests/interop/node/node_modules (package-lock.json); `make interop` (a dependency
of `make test`) builds both. Missing there: skipped locally, a failure under CI=true.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from tests.traces.conftest import EMAIL, NAME, PHONE, acme_ingest, traces_server  # noqa: F401 (fixtures)

from .fake_openai import FakeOpenAI

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


@pytest.fixture()
def fake_openai():
    fake = FakeOpenAI().start()
    yield fake
    fake.stop()


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
