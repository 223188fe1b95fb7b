"""Calibration of the agent's confidence against reviews, checked against numbers worked out by hand."""
from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest

from collector_api.contract.review_text import ReviewInput
from collector_api.store.core.db import Scope, create_pool
from collector_api.store.reviews.calibration import get_calibration
from collector_api.store.reviews.writes import Author, add_review

from .helpers import make_log, run_async, store_logs

# (confidence, verdicts of its ten tickets, how many of them are flagged `hallucination`).
# make_log sets hallucination_risk = 1 - confidence.
GROUPS = (
    (0.95, ["correct"] * 9 + ["needs_work"], 1),
    (0.75, ["correct"] * 6 + ["needs_work"] * 2 + ["incorrect"] * 2, 1),
    (0.55, ["correct"] * 5 + ["incorrect"] * 5, 2),
    (0.15, ["correct"] * 1 + ["incorrect"] * 9, 4),
)
# By hand. Buckets 9, 7, 5, 1 hold 10 tickets each:
#   accuracy 0.9, 0.6, 0.5, 0.1 against mean confidence 0.95, 0.75, 0.55, 0.15
#   ECE = 10/40 * (0.05 + 0.15 + 0.05 + 0.05) = 0.075
# AUC: 8 flagged, 32 not. Unflagged per risk: 0.05: 9, 0.25: 9, 0.45: 8, 0.85: 6.
#   flagged at 0.85 (4): 26 below + 6/2 ties = 29 each -> 116; at 0.45 (2): 18 + 4 = 22 -> 44;
#   at 0.25 (1): 9 + 4.5 = 13.5; at 0.05 (1): 0 + 4.5 = 4.5. Sum 178 / (8 * 32) = 0.6953125
HAND_ECE = 0.075
HAND_AUC = 178 / 256
HAND_BUCKETS = {9: (10, 0.95, 0.9), 7: (10, 0.75, 0.6), 5: (10, 0.55, 0.5), 1: (10, 0.15, 0.1)}


def _seed(dsn: str) -> None:
    docs, plan = [], []
    for confidence, verdicts, flagged in GROUPS:
        for i, verdict in enumerate(verdicts):
            docs.append(make_log("acme", f"C-{confidence}-{i}", days_ago=1 + i % 5, confidence=confidence))
            # the flagged tickets are the last of each group (whatever their verdict)
            plan.append((verdict, ("hallucination",) if i >= len(verdicts) - flagged else ()))
    globex = [make_log("globex", f"G-C-{i}", days_ago=2, confidence=0.9) for i in range(5)]
    ids = store_logs(dsn, docs + globex)

    async def go():
        async with create_pool(dsn, max_size=2) as pool:
            who = Author("reviewer@example.com", "user", "provider")
            # A ticket reviewed twice counts with its latest verdict only.
            await add_review(pool, Scope.tenant("acme"), ids[0], ReviewInput("incorrect", ("tone",)), who)
            for log_id, (verdict, flags) in zip(ids, plan, strict=False):
                await add_review(pool, Scope.provider(), log_id, ReviewInput(verdict, flags), who)
            for log_id in ids[len(docs):]:
                await add_review(pool, Scope.tenant("globex"), log_id, ReviewInput("incorrect"), who)
    run_async(go())


def _calibration(dsn, scope, client=None):
    async def go():
        async with create_pool(dsn, max_size=2) as pool:
            end = datetime.now(UTC) + timedelta(days=1)
            return await get_calibration(pool, scope, end - timedelta(days=30), end, client)
    return run_async(go())


def _check_hand_values(cal: dict) -> None:
    assert cal["n"] == 40 and cal["enough"] is True and cal["message"] is None
    assert cal["ece"] == pytest.approx(HAND_ECE, abs=1e-12)
    assert cal["hallucination_auc"] == pytest.approx(HAND_AUC, abs=1e-12)
    assert [b["lower"] for b in cal["buckets"]] == [i / 10 for i in range(10)]
    for index, bucket in enumerate(cal["buckets"]):
        n, mean, accuracy = HAND_BUCKETS.get(index, (0, None, None))
        assert bucket["n"] == n, index
        if n:
            assert math.isclose(bucket["mean_confidence"], mean) and math.isclose(bucket["accuracy"], accuracy)
        else:
            assert bucket["mean_confidence"] is None and bucket["accuracy"] is None


def test_calibration_matches_the_hand_computation(db_dsn):
    _seed(db_dsn)
    _check_hand_values(_calibration(db_dsn, Scope.tenant("acme")))
    _check_hand_values(_calibration(db_dsn, Scope.provider(), "acme"))
    overall = _calibration(db_dsn, Scope.provider())
    assert overall["n"] == 45
    by_client = {c["client_id"]: c for c in overall["per_client"]}
    _check_hand_values(by_client["acme"])
    assert by_client["globex"]["n"] == 5 and by_client["globex"]["enough"] is False


def test_fewer_than_30_reviewed_tickets_says_so(db_dsn):
    _seed(db_dsn)
    cal = _calibration(db_dsn, Scope.tenant("globex"))
    assert cal["n"] == 5 and cal["enough"] is False
    assert "fewer than 30 reviewed tickets" in cal["message"]
    assert cal["buckets"] == [] and cal["ece"] is None and cal["hallucination_auc"] is None
    assert "per_client" not in cal  # a client sees its own tenant only


def test_stats_api_and_overview_show_the_calibration(app_client, loaded_db):
    from .helpers import login

    dsn = loaded_db[0]
    _seed(dsn)
    login(app_client, "acme@example.com")
    stats = app_client.get("/api/v1/stats").json()
    cal = stats["calibration"]
    assert cal["n"] == 40 and cal["ece"] == pytest.approx(HAND_ECE)
    assert cal["hallucination_auc"] == pytest.approx(HAND_AUC)
    assert [b["n"] for b in cal["buckets"]] == [0, 10, 0, 0, 0, 10, 0, 10, 0, 10]
    page = app_client.get("/").text
    assert 'data-stat="ece">0.075<' in page and 'data-stat="hallucination_auc">0.695<' in page
    app_client.cookies.clear()
    login(app_client, "globex@example.com")
    cal = app_client.get("/api/v1/stats").json()["calibration"]
    assert cal["n"] == 5 and cal["ece"] is None
    assert "fewer than 30 reviewed tickets" in app_client.get("/").text
