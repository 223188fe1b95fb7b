"""Test data for the viewer: workflow logs stored through the collector's real write path."""
from __future__ import annotations

import copy
import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from collector_api.contract.prepare import Rejected, prepare_row
from collector_api.store.accounts.principals import create_api_key, create_user
from collector_api.store.core.db import create_pool
from collector_api.store.logs.writes import insert_workflow_logs
from tests.helpers import make_key, run_async  # noqa: F401 - also imported from here by the viewer tests
from viewer.auth import hash_password

EXAMPLE = json.loads((Path(__file__).resolve().parents[2] / "docs" / "workflow-log.example.json").read_text())
PASSWORD = "correct horse battery staple"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"  # screenshots of the browser tests
NOW = datetime.now(UTC).replace(microsecond=0)


def make_log(client_id: str, ticket_id: str, *, days_ago: float = 1.0, status: str = "SUCCESS",
             confidence: float = 0.8, duration_s: float = 4.0, resolution: str = "resolved",
             environment: str = "production", version: str = "2.3.0", cost: float = 0.02) -> dict:
    doc = copy.deepcopy(EXAMPLE)
    doc["trace_id"] = uuid.uuid4().hex
    doc["identification"].update(client_id=client_id, environment=environment, workflow_version=version)
    executed = NOW - timedelta(days=days_ago)
    doc["ticket_info"].update(ticket_id=ticket_id, executed_at=executed.isoformat().replace("+00:00", "Z"),
                              execution_time_seconds=duration_s)
    doc["outcome"].update(status=status, resolution_status=resolution)
    doc["metrics"].update(overall_confidence=confidence, execution_time_seconds=duration_s, cost_usd=cost,
                          hallucination_risk=round(1 - confidence, 3))
    doc["trace"]["ticket"]["ticket_id"] = ticket_id
    return doc


async def _store(dsn: str, docs: list[dict]) -> list[int]:
    ids = []
    async with create_pool(dsn, max_size=2) as pool:
        for doc in docs:
            tenant = doc["identification"]["client_id"]
            row = prepare_row(0, doc, tenant, None)
            assert not isinstance(row, Rejected), row
            ids += [s.id for s in await insert_workflow_logs(pool, tenant, [row])]
    return ids


def store_logs(dsn: str, docs: list[dict]) -> list[int]:
    """Store `docs` (each under its own client_id) and return their ids, in order."""
    return run_async(_store(dsn, docs))


async def _accounts(dsn: str) -> dict:
    async with create_pool(dsn, max_size=2) as pool:
        hashed = hash_password(PASSWORD)
        await create_user(pool, "provider@example.com", hashed, "provider", None)
        await create_user(pool, "acme@example.com", hashed, "client", "acme")
        await create_user(pool, "globex@example.com", hashed, "client", "globex")
        read = await create_api_key(pool, "acme", "read")
        ingest = await create_api_key(pool, "acme", "ingest")
    return {"read_key": read.secret, "ingest_key": ingest.secret}


def create_accounts(dsn: str) -> dict:
    """A provider, a user of acme and one of globex (password PASSWORD), and acme's read/ingest keys."""
    return run_async(_accounts(dsn))


def standard_logs() -> list[dict]:
    """A small mixed data set: acme 6 tickets, globex 3, one older than 30 days."""
    return [
        make_log("acme", "A-1", days_ago=1, status="SUCCESS", confidence=0.9, duration_s=3.0),
        make_log("acme", "A-2", days_ago=2, status="FAILED", confidence=0.3, duration_s=25.0, resolution="escalated"),
        make_log("acme", "A-3", days_ago=3, status="PARTIAL", confidence=0.6, duration_s=8.0, resolution="unresolved",
                 environment="staging"),
        make_log("acme", "A-4", days_ago=5, status="SUCCESS", confidence=0.85, duration_s=4.5, version="2.4.0"),
        make_log("acme", "A-5", days_ago=8, status="SUCCESS", confidence=0.75, duration_s=6.0),
        make_log("acme", "A-OLD", days_ago=45, status="SUCCESS", confidence=0.95, duration_s=2.0),
        make_log("globex", "G-1", days_ago=1, status="SUCCESS", confidence=0.7, duration_s=5.0),
        make_log("globex", "G-2", days_ago=2, status="FAILED", confidence=0.2, duration_s=40.0, resolution="escalated"),
        make_log("globex", "G-3", days_ago=4, status="SUCCESS", confidence=0.8, duration_s=3.5),
    ]


def login(client, email: str, password: str = PASSWORD):
    page = client.get("/login")
    token = page.text.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    return client.post("/login", data={"email": email, "password": password, "csrf_token": token, "next": "/"})


def browser_login(page, base: str, email: str) -> None:
    page.goto(f"{base}/login")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_load_state("networkidle")


def provider_cookie(url: str) -> str:
    import httpx

    with httpx.Client(base_url=url, follow_redirects=False) as client:
        r = login(client, "provider@example.com")
        assert r.status_code == 303, r.text
        return "; ".join(f"{k}={v}" for k, v in client.cookies.items())


def csrf_token(client, path: str) -> str:
    """The CSRF token of the page at `path` (the sign-out form carries it on every page)."""
    page = client.get(path)
    assert page.status_code == 200, page.text[:300]
    return page.text.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]


def post_review(client, log_id: int, **fields):
    """The review form posted for `log_id` (verdict correct unless given)."""
    token = csrf_token(client, "/reviews")  # the sign-out form carries the session token on every page
    data = {"csrf_token": token, "verdict": "correct", **fields}
    return client.post(f"/tickets/{log_id}/reviews", data=data)


def experiment_log(client_id: str, ticket_id: str, experiment: dict, *, draft: str, status: str = "SUCCESS",
                   cost: float = 0.01, duration_s: float = 2.0) -> dict:
    """A log as the bridge ships it from an experiment run: `identification.experiment` tags."""
    doc = make_log(client_id, ticket_id, days_ago=0.01, status=status, cost=cost, duration_s=duration_s)
    doc["identification"]["experiment"] = experiment
    doc["trace"]["output"]["draft"] = draft
    return doc
