"""Erasure reaches the data of online evaluations (scores, outcomes) and of customer sessions (the
recontact rollup): an erased ticket's scores are gone, and an earlier ticket it made a recontact
is no longer counted as one. Real PostgreSQL, the real app."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from fastapi.testclient import TestClient

from collector_api.store.core.db import create_pool
from collector_api.store.logs.rollups import refresh_rollups
from flusso_obs.server import create_app
from tests.helpers import make_key, run_async, score_rollups

from .helpers import customer_log, erase_settings, post_log, request_id

EMAIL = "repeat.customer@example.com"


@pytest.fixture()
def app_client(db_dsn):
    with TestClient(create_app(erase_settings(), db_dsn)) as c:
        yield c


def _log(client: str, ticket: str, at: datetime) -> dict:
    log = customer_log(client, ticket, email=EMAIL)
    log["ticket_info"]["executed_at"] = at.isoformat()
    log["outcome"]["resolution_status"] = "resolved"
    return log


def _refresh(dsn: str) -> None:
    async def go():
        async with create_pool(dsn) as pool:
            await refresh_rollups(pool)
    run_async(go())


def _recontact(dsn: str, client: str, day) -> tuple[int, int] | None:
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT resolved, recontacted FROM viewer_daily_recontact_rollup"
                           " WHERE client_id = %s AND day = %s", (client, day)).fetchone()
    return None if row is None else (row[0], row[1])


def _score_logs(dsn: str) -> dict[str, set[str]]:
    """Give every stored log a score and an outcome (as the evaluation job does); return
    {client: tickets with a score}."""
    with psycopg.connect(dsn) as conn:
        conn.execute("INSERT INTO evaluation_scores (client_id, log_id, executed_at, evaluator, version, score, reason)"
                     " SELECT client_id, id, executed_at, 'groundedness', 1, 0.5, 'half of the claims found'"
                     " FROM workflow_logs")
        conn.execute("INSERT INTO evaluation_outcomes (client_id, log_id, executed_at, evaluator, version, outcome)"
                     " SELECT client_id, id, executed_at, 'judge', 1, 'invalid' FROM workflow_logs")
    return _scored(dsn)


def _scored(dsn: str) -> dict[str, set[str]]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute("SELECT s.client_id, w.ticket_id FROM evaluation_scores s JOIN workflow_logs w"
                            " ON w.id = s.log_id JOIN evaluation_outcomes o ON o.log_id = s.log_id").fetchall()
        orphans = conn.execute("SELECT (SELECT count(*) FROM evaluation_scores s WHERE NOT EXISTS (SELECT 1 FROM"
                               " workflow_logs w WHERE w.id = s.log_id)) + (SELECT count(*) FROM evaluation_outcomes"
                               " o WHERE NOT EXISTS (SELECT 1 FROM workflow_logs w WHERE w.id = o.log_id))"
                               ).fetchone()[0]
    assert orphans == 0, "a score or outcome outlived its log"
    out: dict[str, set[str]] = {}
    for client, ticket in rows:
        out.setdefault(client, set()).add(ticket)
    return out


def test_erasing_a_ticket_removes_its_scores_and_the_recontact_it_made(app_client, db_dsn):
    acme, globex = make_key(db_dsn, "acme"), make_key(db_dsn, "globex")
    first_at = datetime.now(UTC).replace(hour=10, minute=0, second=0, microsecond=0) - timedelta(days=3)
    for client, key in (("acme", acme), ("globex", globex)):
        assert post_log(app_client, key, _log(client, "T-1", first_at)).status_code == 200
        assert post_log(app_client, key, _log(client, "T-2", first_at + timedelta(days=1))).status_code == 200
    _refresh(db_dsn)
    day = first_at.date()
    assert _recontact(db_dsn, "acme", day) == (1, 1), "T-2 is the same customer back within the window"
    assert _score_logs(db_dsn) == {"acme": {"T-1", "T-2"}, "globex": {"T-1", "T-2"}}
    with psycopg.connect(db_dsn) as conn:  # both reviewed: the evaluator's verdict rollup counts them
        conn.execute("INSERT INTO ticket_review_state (log_id, client_id, executed_at, status, verdict, flags,"
                     " review_count, last_review_id, last_review_at) SELECT id, client_id, executed_at, status,"
                     " 'correct', '{}', 1, 1, now() FROM workflow_logs")
    assert sum(r[4] for r in score_rollups(db_dsn)[1] if r[0] == "acme") == 2

    r = app_client.post("/api/v1/erasures", json={"request_id": request_id(), "ticket_ids": ["T-2"]},
                        headers={"X-API-Key": make_key(db_dsn, "acme", "erase")})
    assert r.status_code == 200, r.text
    counts = r.json()["counts"]
    assert counts["workflow_logs"] == 1 and counts["evaluation_scores"] == 1 and counts["evaluation_outcomes"] == 1
    assert _scored(db_dsn) == {"acme": {"T-1"}, "globex": {"T-1", "T-2"}}
    scores, verdicts = score_rollups(db_dsn)
    assert [sum(r[3] for r in scores if r[0] == c) for c in ("acme", "globex")] == [1, 2]
    assert [sum(r[4] for r in verdicts if r[0] == c) for c in ("acme", "globex")] == [1, 2]
    assert _recontact(db_dsn, "acme", day) == (1, 0), "the erased ticket still counts as a recontact"
    assert _recontact(db_dsn, "globex", day) == (1, 1), "another tenant's rollup was touched"
