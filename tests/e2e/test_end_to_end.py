"""The whole path: decorated workflow -> bridge -> OTLP/HTTP -> collector -> PostgreSQL -> viewer."""
import json
import os
import subprocess
import sys

from tests.helpers import make_key

from .helpers import poll_rows


def test_demo_workflow_reaches_postgres_through_real_otlp(live_server, db_dsn):
    key = make_key(db_dsn, "acme")
    env = {**os.environ, "ENVIRONMENT": "test"}
    out = subprocess.run(
        [sys.executable, "-m", "flusso_obs.cli", "demo", "--tickets", "4", "--seed", "7", "--quiet", "--speed", "1",
         "--collector", live_server.url, "--api-key", key],
        capture_output=True, text=True, timeout=60, env=env)
    assert out.returncode == 0, out.stderr
    assert "sent 4 tickets" in out.stdout
    rows = poll_rows(db_dsn, 4)
    assert len(rows) == 4
    for client_id, ticket_id, status, trace_id, log in rows:
        assert client_id == "acme"
        assert log["identification"]["client_id"] == "acme"
        assert log["trace_id"] == trace_id and len(trace_id) == 32
        assert log["ticket_info"]["ticket_id"] == ticket_id
        assert status in ("SUCCESS", "PARTIAL", "FAILED") and log["outcome"]["status"] == status
        assert log["schema_version"] == "1"
        assert {"ticket", "planning", "react", "retrieval", "evidence", "output", "spans"} <= log["trace"].keys()
        assert log["trace"]["spans"], "spans are shipped"
        # PII never leaves the client in clear text: the requester's email is a keyed token.
        assert "@" not in json.dumps(log["trace"]["ticket"])
    assert len({r[3] for r in rows}) == 4, "every ticket is its own trace"


def test_viewer_lists_and_shows_the_delivered_tickets(live_server, db_dsn):
    """Same path, then the viewer's JSON API (read-scope key) lists the tickets and shows one."""
    import httpx

    key = make_key(db_dsn, "acme")
    out = subprocess.run(
        [sys.executable, "-m", "flusso_obs.cli", "demo", "--tickets", "3", "--seed", "11", "--quiet", "--speed", "1",
         "--collector", live_server.url, "--api-key", key],
        capture_output=True, text=True, timeout=60, env={**os.environ, "ENVIRONMENT": "test"})
    assert out.returncode == 0, out.stderr
    rows = poll_rows(db_dsn, 3)
    reader = make_key(db_dsn, "acme", scope="read")
    with httpx.Client(base_url=live_server.url, headers={"X-API-Key": reader}) as http:
        listing = http.get("/api/v1/tickets").json()
        assert sorted(t["ticket_id"] for t in listing["tickets"]) == sorted(r[1] for r in rows)
        one = listing["tickets"][0]
        detail = http.get(f"/api/v1/tickets/{one['id']}").json()
        assert detail["log"]["ticket_info"]["ticket_id"] == one["ticket_id"]
        assert http.get("/api/v1/tickets", headers={"X-API-Key": key}).status_code == 401  # ingest key can't read
