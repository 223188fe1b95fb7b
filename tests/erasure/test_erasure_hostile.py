"""The hard cases: an erasure racing a store of the same ticket, a crash mid-erasure (a killed
process), 10,000 ids in one request."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import psycopg
import pytest
from fastapi.testclient import TestClient

from collector_api.contract.receipts import verify
from flusso_obs.server import create_app
from tests.helpers import LiveServer, make_key, run_async, wait_until

from .helpers import RECEIPT_KEY, bulk_logs, count_logs, erase_settings, request_id

ROOT = Path(__file__).resolve().parents[2]


def test_a_store_in_flight_when_the_erasure_starts_is_waited_for_and_erased(db_dsn):
    """A transaction storing a log of ticket RACE is open (not committed) when the erasure of RACE
    begins: the erasure waits for it (its tombstones' barrier), then finds and erases the log."""
    server = LiveServer(db_dsn, erase_settings()).start()
    eraser = make_key(db_dsn, "acme", "erase")
    result = {}
    try:
        with psycopg.connect(db_dsn) as store:
            store.execute("INSERT INTO workflow_logs (client_id, ticket_id, status, executed_at, trace_id, log_data)"
                          " VALUES ('acme', 'RACE', 'SUCCESS', now(), md5('race'), '{}')")  # not committed yet

            def erase():
                result["r"] = httpx.post(f"{server.url}/api/v1/erasures", headers={"X-API-Key": eraser}, timeout=60,
                                         json={"request_id": "race-1", "ticket_ids": ["RACE"]})
            worker = threading.Thread(target=erase)
            worker.start()
            with psycopg.connect(db_dsn, autocommit=True) as watch:  # the erasure waits on the tenant's lock
                assert wait_until(lambda: watch.execute(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted").fetchone()[0] > 0)
            assert "r" not in result
            store.commit()
        worker.join(60)
    finally:
        server.stop()
    receipt = result["r"].json()
    assert result["r"].status_code == 200 and receipt["counts"]["workflow_logs"] == 1, receipt
    assert count_logs(db_dsn, "acme", "RACE") == 0


def test_ingest_flooding_the_ticket_being_erased_keeps_nothing(db_dsn):
    """Many stores of ticket FLOOD run while it is erased: each is either erased or refused (410)."""
    server = LiveServer(db_dsn, erase_settings()).start()
    ingest, eraser = make_key(db_dsn, "acme"), make_key(db_dsn, "acme", "erase")
    statuses: list[int] = []
    stop = threading.Event()

    def flood():
        from .helpers import customer_log
        with httpx.Client(timeout=30) as client:
            while not stop.is_set():
                r = client.post(f"{server.url}/api/v1/logs", json=customer_log("acme", "FLOOD"),
                                headers={"X-API-Key": ingest})
                statuses.append(r.status_code)
    try:
        workers = [threading.Thread(target=flood) for _ in range(3)]
        for w in workers:
            w.start()
        assert wait_until(lambda: statuses.count(200) >= 20)
        r = httpx.post(f"{server.url}/api/v1/erasures", headers={"X-API-Key": eraser}, timeout=60,
                       json={"request_id": "flood-1", "ticket_ids": ["FLOOD"]})
        assert wait_until(lambda: statuses.count(410) >= 20)
        stop.set()
        for w in workers:
            w.join(30)
    finally:
        stop.set()
        server.stop()
    assert r.status_code == 200 and r.json()["counts"]["workflow_logs"] >= 20
    assert set(statuses) <= {200, 410}, set(statuses)
    assert count_logs(db_dsn, "acme", "FLOOD") == 0  # every store before was erased, every one after refused


def _erase_cli(dsn: str, tickets: int, batch: int, env: dict) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "flusso_obs.cli", "erase", "--client", "acme", "--request-id",
                             "crash-1", "--from", env["ERASE_FILE"], "--batch", str(batch)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_a_crash_mid_erasure_is_finished_by_the_retry_with_exact_counts(db_dsn, tmp_path):
    bulk_logs(db_dsn, "acme", 3000)
    bulk_logs(db_dsn, "globex", 100)
    body = tmp_path / "erase.json"
    body.write_text(json.dumps({"ticket_ids": [f"T-{i}" for i in range(3000)]}))
    env = {**os.environ, "DATABASE_URL": db_dsn, "FLUSSO_RECEIPT_KEY": RECEIPT_KEY, "ERASE_FILE": str(body),
           "PYTHONPATH": str(ROOT)}
    first = _erase_cli(db_dsn, 3000, 5, env)
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        def midway() -> bool:
            row = conn.execute("SELECT (counts->>'workflow_logs')::int FROM erasure_log WHERE request_id = 'crash-1'"
                               ).fetchone()
            return row is not None and row[0] is not None and 100 <= row[0] < 2500
        assert wait_until(midway, timeout=120), first.communicate()[1][-2000:]
    first.send_signal(signal.SIGKILL)  # the process dies between (or inside) batches
    first.wait(30)
    done_before = count_logs(db_dsn, "acme")
    assert 0 < done_before < 3000  # it really stopped half-way
    retry = _erase_cli(db_dsn, 3000, 500, env)
    out, err = retry.communicate(timeout=300)
    assert retry.returncode == 0, err[-2000:]
    receipt = json.loads(out)
    assert verify(receipt, RECEIPT_KEY)
    assert receipt["counts"]["workflow_logs"] == 3000 and receipt["status"] == "done"
    assert count_logs(db_dsn, "acme") == 0 and count_logs(db_dsn, "globex") == 100


@pytest.mark.parametrize("n", [10_000])
def test_ten_thousand_ids_in_one_request(db_dsn, n):
    bulk_logs(db_dsn, "acme", n + 500)
    with TestClient(create_app(erase_settings(), db_dsn)) as client:
        r = client.post("/api/v1/erasures", headers={"X-API-Key": make_key(db_dsn, "acme", "erase")},
                        json={"request_id": request_id(), "ticket_ids": [f"T-{i}" for i in range(n)]})
    assert r.status_code == 200, r.text[:500]
    assert r.json()["counts"]["workflow_logs"] == n and len(r.json()["asked"]["ticket_ids"]) == n
    assert count_logs(db_dsn, "acme") == 500


def test_an_erasure_whose_caller_never_retried_is_finished_by_the_resume_job(db_dsn):
    """A crash after the first batches, and no retry: the erasure-resume job finishes it exactly."""

    from collector_api.contract.receipts import asked_digest
    from collector_api.store.core.db import create_pool
    from collector_api.store.erasure import run as steps

    bulk_logs(db_dsn, "acme", 50)
    asked = {"ticket_ids": [f"T-{i}" for i in range(30)], "trace_ids": [], "tokens": []}

    async def crash_then_resume():
        async with create_pool(db_dsn, max_size=2) as pool:
            row = await steps.begin(pool, "acme", "stalled-1", asked, asked_digest(asked), "key-x")
            await steps.barrier(pool, "acme")
            await steps.resolve(pool, row)
            await steps.erase_batches(pool, row, batch=10, max_batches=1)  # then the process "dies"
            assert await steps.resume_stalled(pool, older_than_s=3600) == []  # not stalled long enough yet
            return await steps.resume_stalled(pool, older_than_s=0)
    [row] = run_async(crash_then_resume())
    assert row["status"] == "done" and row["counts"]["workflow_logs"] == 30
    assert verify(sign_row(row), RECEIPT_KEY)
    assert count_logs(db_dsn, "acme") == 20


def sign_row(row: dict) -> dict:
    from collector_api.contract.receipts import receipt_of, sign

    return sign(receipt_of(row), RECEIPT_KEY)
