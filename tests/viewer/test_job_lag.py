"""Each background job's lag (now - its last success) on the provider's /ingest page, its JSON,
/metrics and /readyz detail; a job late by more than 3 intervals is flagged in each. The lag comes
from job_runs through the running server's own job runner."""
from __future__ import annotations

import time

import httpx
import psycopg
from fastapi.testclient import TestClient

from config.server import ServerSettings
from flusso_obs.server import create_app
from tests.helpers import LiveServer

from .helpers import create_accounts, provider_cookie

HOURS_4 = 4 * 3600


def plant_stale_partition_upkeep(dsn: str) -> None:
    """Ran a minute ago (not due for an hour) but last SUCCEEDED 4 hours ago: 4 intervals of 1 h."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("INSERT INTO job_runs (name, last_run_at, last_ok_at, last_error) VALUES"
                     " ('partition-upkeep', now() - interval '1 minute', now() - interval '4 hours',"
                     " 'OperationalError: disk full')")


def readyz(url: str, **headers: str) -> dict:
    return httpx.get(url + "/readyz", headers=headers, timeout=5).json()


def test_a_late_job_is_flagged_on_ingest_metrics_and_readyz(db_dsn):
    create_accounts(db_dsn)
    plant_stale_partition_upkeep(db_dsn)
    settings = ServerSettings(_env_file=None, flusso_session_secret="test-secret-" + "x" * 32,
                              flusso_rollup_refresh_seconds=0.5)
    server = LiveServer(db_dsn, settings).start()
    try:
        deadline = time.monotonic() + 15
        while (detail := readyz(server.url)).get("late_jobs") != ["partition-upkeep"]:
            assert time.monotonic() < deadline, detail
            time.sleep(0.1)
        jobs = {j["name"]: j for j in detail["jobs"]}
        assert HOURS_4 - 30 < jobs["partition-upkeep"]["lag_s"] < HOURS_4 + 30
        assert jobs["partition-upkeep"]["last_error"] == "OperationalError: disk full"
        assert not jobs["ingest-counters"]["late"] and jobs["ingest-counters"]["interval_s"] == 5.0
        # Through a proxy (forwarding headers) the caller is not the provider: no detail.
        assert readyz(server.url, **{"X-Forwarded-For": "203.0.113.9"}) == {"status": "ready"}

        metrics = httpx.get(server.url + "/metrics", timeout=5).text
        assert 'flusso_job_late{job="partition-upkeep"} 1.0' in metrics
        assert 'flusso_job_late{job="rollup-refresh"} 0.0' in metrics

        cookie = provider_cookie(server.url)
        data = httpx.get(server.url + "/api/v1/ingest-health", headers={"Cookie": cookie}, timeout=5).json()
        api_jobs = {j["name"]: j for j in data["jobs"]}
        assert api_jobs["partition-upkeep"]["late"] and data["late_factor"] == 3.0
        assert not api_jobs["rollup-refresh"]["late"]
        page = httpx.get(server.url + "/ingest", headers={"Cookie": cookie}, timeout=5).text
        row = page.split('data-job="partition-upkeep"', 1)[1].split("</tr>", 1)[0]
        assert ">late<" in row and "disk full" in row
        other = page.split('data-job="derived-backfill"', 1)[1].split("</tr>", 1)[0]
        assert ">late<" not in other
    finally:
        server.stop()


def test_readyz_detail_needs_the_metrics_token_when_one_is_set(db_dsn):
    token = "metrics-token-" + "t" * 32
    app = create_app(ServerSettings(_env_file=None, flusso_session_secret="r" * 40, flusso_metrics_token=token),
                     db_dsn)
    with TestClient(app) as client:
        assert client.get("/readyz").json() == {"status": "ready"}
        assert client.get("/readyz", headers={"Authorization": "Bearer wrong"}).json() == {"status": "ready"}
        detailed = client.get("/readyz", headers={"Authorization": f"Bearer {token}"}).json()
    assert detailed["status"] == "ready" and "late_jobs" in detailed
    assert {j["name"] for j in detailed["jobs"]} >= {"partition-upkeep", "ingest-counters", "derived-backfill"}
