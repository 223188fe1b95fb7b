"""Helpers shared by more than one folder of tests. Each folder keeps the rest in its own
helpers.py; test modules never import each other or a conftest (tests/test_test_layout.py)."""
from __future__ import annotations

import asyncio
import concurrent.futures
import re
import socket
import threading
import time
import urllib.request

# The bridge's pure modules: importable with no side effects (no SDK, thread or provider),
# shared with the collector. Everything else of otel_bridge is the client runtime. The import
# rules (tests/test_import_rules.py) and the import probe (tests/bridge/test_pure_modules.py).
BRIDGE_PURE = ("otel_bridge.assemble", "otel_bridge.sections", "otel_bridge.pii", "otel_bridge.pii_keys",
               "otel_bridge.attributes", "otel_bridge.spanrecord", "otel_bridge.schemas", "otel_bridge.numbers",
               "otel_bridge.spantree", "otel_bridge.policy", "otel_bridge.known", "otel_bridge.schema_check")

OWNER_PASSWORD = "flusso-test-owner"  # the owner role's password (ignored by the embedded server: trust on its socket)


def make_key(dsn: str, client_id: str, scope: str = "ingest") -> str:
    """A new API key of `client_id` (its secret), created through the store as the app does."""
    from collector_api.store.accounts.principals import create_api_key
    from collector_api.store.core.db import create_pool

    async def go():
        async with create_pool(dsn) as pool:
            return (await create_api_key(pool, client_id, scope)).secret
    return run_async(go())


def run_async(coro):
    """Run `coro` on a fresh loop in another thread: safe even where a loop already runs
    (sync Playwright keeps one in the test thread of a worker once a browser test ran)."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(predicate, timeout: float = 20.0, every: float = 0.1) -> bool:
    """Poll `predicate` until it is true (True) or `timeout` seconds have passed (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(every)
    return False


def metric(url: str, name: str, **labels: str) -> float | None:
    """One sample of the server's /metrics (Prometheus text): the value of `name` with exactly
    `labels`, or None while there is no such sample."""
    with urllib.request.urlopen(url + "/metrics", timeout=5) as resp:
        text = resp.read().decode()
    for line in text.splitlines():
        match = re.match(r"^([A-Za-z_:][\w:]*)(?:\{(.*)\})? (\S+)$", line)
        if match and match[1] == name and dict(re.findall(r'(\w+)="([^"]*)"', match[2] or "")) == labels:
            return float(match[3])
    return None


class LiveServer:
    """A real uvicorn server on 127.0.0.1 running the whole app in a background thread."""

    def __init__(self, dsn: str, settings=None, port: int | None = None, *, grpc_port: int | None = None):
        import uvicorn

        from config.server import ServerSettings
        from flusso_obs.server import create_app

        self.settings = settings or ServerSettings(_env_file=None, flusso_session_secret="test-secret-" + "x" * 32)
        self.port = port or free_port()
        self.url, self.dsn = f"http://127.0.0.1:{self.port}", dsn
        self.app = create_app(self.settings, dsn, grpc_port=grpc_port) if grpc_port else create_app(self.settings, dsn)
        config = uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("live server did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)


# The evaluator-score rollups (migration 0024) against a fresh aggregate of what they summarize.
_SCORES_FRESH = ("SELECT client_id, (executed_at AT TIME ZONE 'UTC')::date, evaluator, count(*), sum(score)"
                 " FROM evaluation_scores GROUP BY 1, 2, 3 ORDER BY 1, 2, 3")
_SCORES_ROLLED = "SELECT client_id, day, evaluator, n, score_sum FROM evaluation_score_daily ORDER BY 1, 2, 3"
_VERDICTS_FRESH = (
    "SELECT l.client_id, (l.executed_at AT TIME ZONE 'UTC')::date, l.evaluator, l.score,"
    " count(*) FILTER (WHERE r.verdict = 'correct'), count(*) FILTER (WHERE r.verdict <> 'correct')"
    " FROM (SELECT DISTINCT ON (client_id, log_id, evaluator) * FROM evaluation_scores"
    "  ORDER BY client_id, log_id, evaluator, version DESC) l"
    " JOIN ticket_review_state r ON r.log_id = l.log_id AND r.client_id = l.client_id"
    " GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4")
_VERDICTS_ROLLED = ("SELECT client_id, day, evaluator, score, correct, other FROM evaluation_verdict_daily"
                    " ORDER BY 1, 2, 3, 4")
_VERDICTS_MONTHLY = ("SELECT client_id, month, evaluator, score, correct, other FROM evaluation_verdict_monthly"
                     " ORDER BY 1, 2, 3, 4")
_VERDICTS_BY_MONTH = ("SELECT client_id, date_trunc('month', day)::date, evaluator, score, sum(correct), sum(other)"
                      " FROM evaluation_verdict_daily GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4")


def score_rollups(dsn: str) -> tuple[list[tuple], list[tuple]]:
    """(score rows, verdict rows) of the evaluator rollups, after checking they equal a fresh
    aggregate of evaluation_scores and ticket_review_state (what the triggers keep them at): the
    counts exactly, the sums to 1e-9, and no row left at zero."""
    import psycopg

    with psycopg.connect(dsn) as conn:
        rolled = conn.execute(_SCORES_ROLLED).fetchall()
        fresh = conn.execute(_SCORES_FRESH).fetchall()
        assert [r[:4] for r in rolled] == [r[:4] for r in fresh]
        assert all(abs(a[4] - b[4]) < 1e-9 for a, b in zip(rolled, fresh, strict=True))
        verdicts = conn.execute(_VERDICTS_ROLLED).fetchall()
        assert [(*r[:4], int(r[4]), int(r[5])) for r in verdicts] == [
            (*r[:4], int(r[4]), int(r[5])) for r in conn.execute(_VERDICTS_FRESH).fetchall()]
        assert [(*r[:4], int(r[4]), int(r[5])) for r in conn.execute(_VERDICTS_MONTHLY).fetchall()] == [
            (*r[:4], int(r[4]), int(r[5])) for r in conn.execute(_VERDICTS_BY_MONTH).fetchall()]
        assert all(r[4] or r[5] for r in verdicts)
        return rolled, verdicts


def assert_rollups_tenant_scoped(dsn: str, tables: tuple[str, ...]) -> None:
    """Each rollup table (seeded with acme's and globex's rows) shows a tenant only its own rows
    and the provider both, and refuses the tenant's write (the triggers write, as the owner)."""
    import psycopg
    import pytest

    from collector_api.store.core.db import Scope, create_pool, scoped_transaction

    async def read_as(scope: Scope, query: str) -> list:
        async with create_pool(dsn, max_size=1) as pool, scoped_transaction(pool, scope) as conn:
            return await (await conn.execute(query)).fetchall()

    for table in tables:
        rows = run_async(read_as(Scope.tenant("globex"), f"SELECT DISTINCT client_id FROM {table}"))
        assert [r["client_id"] for r in rows] == ["globex"]
        rows = run_async(read_as(Scope.provider(), f"SELECT DISTINCT client_id FROM {table} ORDER BY 1"))
        assert [r["client_id"] for r in rows] == ["acme", "globex"]
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            run_async(read_as(Scope.tenant("globex"), f"DELETE FROM {table} WHERE client_id = 'acme'"))
