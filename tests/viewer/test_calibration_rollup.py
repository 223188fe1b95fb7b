"""The calibration read from the daily rollups equals the live computation over the whole range,
and numbers worked out by hand: with partial edge days, a verdict changed after its day was
rolled up, a late log of a past day, concurrent reviews, deletes, and two tenants apart."""
from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from collector_api.contract.review_text import ReviewInput
from collector_api.store.core.db import Scope, create_pool
from collector_api.store.core.migrate import apply_migrations, list_migrations
from collector_api.store.reviews.calibration import get_calibration, split_range, whole_months
from collector_api.store.reviews.writes import Author, add_review
from tests.helpers import assert_rollups_tenant_scoped

from .helpers import make_log, run_async, store_logs

MIDNIGHT = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
START = MIDNIGHT - timedelta(days=4) + timedelta(hours=12)   # half of day -4, days -3 and -2 whole,
END = MIDNIGHT - timedelta(days=1) + timedelta(hours=6)      # the first quarter of day -1
INSIDE = (MIDNIGHT - timedelta(days=4) + timedelta(hours=18), MIDNIGHT - timedelta(days=3, hours=-5),
          MIDNIGHT - timedelta(days=2, hours=-20), MIDNIGHT - timedelta(days=1) + timedelta(hours=3))
OUTSIDE = (MIDNIGHT - timedelta(days=4) + timedelta(hours=6), MIDNIGHT - timedelta(days=1) + timedelta(hours=9))
WHO = Author("reviewer@example.com", "user", "provider")
# (confidence, verdicts of its ten tickets, how many are flagged `hallucination`); the risk is
# 1 - confidence. Binary fractions: every sum is exact, so rollup and live agree to the bit.
GROUPS = ((0.875, ["correct"] * 8 + ["incorrect"] * 2, 1), (0.625, ["correct"] * 5 + ["needs_work"] * 5, 2),
          (0.375, ["correct"] * 2 + ["incorrect"] * 8, 3), (0.125, ["correct"] * 1 + ["incorrect"] * 9, 4))
# By hand. Buckets 8, 6, 3, 1: accuracy 0.8, 0.5, 0.2, 0.1 against 0.875, 0.625, 0.375, 0.125:
#   ECE = 1/4 * (0.075 + 0.125 + 0.175 + 0.025) = 0.1.
# AUC: 10 flagged, 30 not; unflagged at risk 0.125: 9, 0.375: 8, 0.625: 7, 0.875: 6. Flagged at
#   0.125 (1): 0 + 9/2 = 4.5; 0.375 (2): 2 * (9 + 4) = 26; 0.625 (3): 3 * (17 + 3.5) = 61.5;
#   0.875 (4): 4 * (24 + 3) = 108. 200 / 300.
HAND = {"n": 40, "ece": 0.1, "auc": 200 / 300, "flagged": 10, "b8": (10, 8)}
# A `correct` 0.875 ticket of a whole day is re-judged `incorrect` and flagged: bucket 8 is 7/10
#   correct, ECE = (0.175 + 0.125 + 0.175 + 0.025) / 4 = 0.125; 11 flagged, 29 not (8 at 0.125):
#   flagged at 0.125 (2): 2 * 4 = 8; 0.375: 2 * (8 + 4) = 24; 0.625: 3 * (16 + 3.5) = 58.5;
#   0.875: 4 * (23 + 3) = 104. 194.5 / (11 * 29).
CHANGED = {"n": 40, "ece": 0.125, "auc": 194.5 / 319, "flagged": 11, "b8": (10, 7)}
# Then a late log of day -3 (0.125, reviewed `correct`, not flagged): bucket 1 holds 11, 2 correct:
#   ECE = (10 * 0.175 + 10 * 0.125 + 10 * 0.175 + 11 * |2/11 - 1/8|) / 41 = 5.375 / 41;
#   unflagged 30 (7 at 0.875): the four flagged at 0.875 score 23 + 3.5 each: 196.5 / (11 * 30).
LATE = {"n": 41, "ece": 5.375 / 41, "auc": 196.5 / 330, "flagged": 11, "b8": (10, 7)}


def _doc(client: str, ticket: str, at: datetime, confidence: float) -> dict:
    doc = make_log(client, ticket, confidence=confidence)
    doc["ticket_info"]["executed_at"] = at.isoformat().replace("+00:00", "Z")
    return doc


async def _review_all(dsn: str, ids: list[int], plan: list[tuple[str, tuple]], scope: Scope) -> None:
    async with create_pool(dsn, max_size=2) as pool:
        for log_id, (verdict, flags) in zip(ids, plan, strict=True):
            await add_review(pool, scope, log_id, ReviewInput(verdict, flags), WHO)


def _seed(dsn: str) -> list[int]:
    """acme: the four groups spread over the range's four days (plus two tickets outside it);
    globex: 32 tickets of confidence 0.5 on day -2, half correct. Returns acme's in-range ids."""
    docs, plan = [], []
    for confidence, verdicts, flagged in GROUPS:
        for i, verdict in enumerate(verdicts):
            docs.append(_doc("acme", f"A-{confidence}-{i}", INSIDE[i % 4], confidence))
            plan.append((verdict, ("hallucination",) if i >= len(verdicts) - flagged else ()))
    for k, at in enumerate(OUTSIDE):
        docs.append(_doc("acme", f"A-out-{k}", at, 0.875))
        plan.append(("incorrect", ("hallucination",)))
    ids = store_logs(dsn, docs)
    run_async(_review_all(dsn, ids, plan, Scope.provider()))
    globex = store_logs(dsn, [_doc("globex", f"G-{i}", INSIDE[2], 0.5) for i in range(32)])
    run_async(_review_all(dsn, globex, [("correct" if i % 2 else "incorrect", ()) for i in range(32)],
                          Scope.tenant("globex")))
    return ids[:40]


def _both(dsn: str, scope: Scope, client: str | None = None, span: tuple = (START, END)) -> dict:
    """The rollup-based calibration, after checking that it equals the live one exactly."""
    async def go():
        async with create_pool(dsn, max_size=2) as pool:
            return (await get_calibration(pool, scope, *span, client),
                    await get_calibration(pool, scope, *span, client, use_rollup=False))
    rolled, live = run_async(go())
    assert rolled == live
    return rolled


def _check(cal: dict, hand: dict) -> None:
    assert cal["n"] == hand["n"] and cal["enough"] and cal["hallucination_flagged"] == hand["flagged"]
    assert cal["ece"] == pytest.approx(hand["ece"], abs=1e-12)
    assert cal["hallucination_auc"] == pytest.approx(hand["auc"], abs=1e-12)
    assert (cal["buckets"][8]["n"], cal["buckets"][8]["accuracy"] * 10) == pytest.approx(hand["b8"])


def _check_all_scopes(dsn: str, hand: dict) -> None:
    _check(_both(dsn, Scope.tenant("acme")), hand)
    _check(_both(dsn, Scope.provider(), "acme"), hand)
    everyone = _both(dsn, Scope.provider())
    assert everyone["n"] == hand["n"] + 32
    per = {c["client_id"]: c for c in everyone["per_client"]}
    assert sorted(per) == ["acme", "globex"]
    _check(per["acme"], hand)
    globex = _both(dsn, Scope.tenant("globex"))
    assert "per_client" not in globex and globex == {k: v for k, v in per["globex"].items() if k != "client_id"}
    assert globex["n"] == 32 and globex["ece"] == 0.0 and globex["hallucination_auc"] is None


def test_the_range_splits_into_whole_rolled_days_and_live_edges():
    first, stop, edges = split_range(START, END)
    assert (first, stop) == ((MIDNIGHT - timedelta(days=3)).date(), (MIDNIGHT - timedelta(days=1)).date())
    assert edges == [START, MIDNIGHT - timedelta(days=3), MIDNIGHT - timedelta(days=1), END]
    first, stop, edges = split_range(MIDNIGHT + timedelta(hours=1), MIDNIGHT + timedelta(hours=2))
    assert first == stop and edges[:2] == [MIDNIGHT + timedelta(hours=1), MIDNIGHT + timedelta(hours=2)]
    tomorrow = MIDNIGHT + timedelta(days=1)
    assert split_range(MIDNIGHT, tomorrow)[2] == [MIDNIGHT, MIDNIGHT, tomorrow, tomorrow]


def _bucket_row(dsn: str, client: str, day_at: datetime, bucket: int) -> tuple | None:
    with psycopg.connect(dsn) as conn:
        return conn.execute("SELECT n, correct FROM review_calibration_daily WHERE client_id = %s AND day = %s"
                            " AND bucket = %s", (client, day_at.date(), bucket)).fetchone()


def test_rollup_equals_live_and_the_hand_values_through_changes_and_late_logs(db_dsn):
    ids = _seed(db_dsn)
    _check_all_scopes(db_dsn, HAND)
    # A verdict changed after its day was rolled up: ticket 1 of the 0.875 group sits on day -3.
    assert _bucket_row(db_dsn, "acme", INSIDE[1], 8) == (3, 2)  # tickets 1, 5 and 9
    run_async(_review_all(db_dsn, [ids[1]], [("incorrect", ("hallucination", "tone"))], Scope.tenant("acme")))
    assert _bucket_row(db_dsn, "acme", INSIDE[1], 8) == (3, 1)
    _check_all_scopes(db_dsn, CHANGED)
    # A re-review that changes nothing the panel counts leaves the figures alone.
    run_async(_review_all(db_dsn, [ids[1]], [("incorrect", ("hallucination",))], Scope.provider()))
    _check_all_scopes(db_dsn, CHANGED)
    # A late log of day -3, stored and reviewed now.
    late = store_logs(db_dsn, [_doc("acme", "A-late", INSIDE[1] + timedelta(hours=1), 0.125)])
    run_async(_review_all(db_dsn, late, [("correct", ())], Scope.provider()))
    _check_all_scopes(db_dsn, LATE)


async def _concurrent_reviews(dsn: str, ids: list[int]) -> None:
    verdicts = ("correct", "needs_work", "incorrect")
    async with create_pool(dsn, max_size=6) as pool:
        await asyncio.gather(*(add_review(pool, Scope.provider() if k % 2 else Scope.tenant("initech"), log_id,
                                          ReviewInput(verdicts[(k + i) % 3], ("hallucination",) if k else ()), WHO)
                               for k in range(3) for i, log_id in enumerate(ids)))


def test_concurrent_reviews_and_deletes_keep_the_rollup_exact(db_dsn):
    at = MIDNIGHT - timedelta(days=3, hours=-2)
    ids = store_logs(db_dsn, [_doc("initech", f"I-{i}", at, (0.125, 0.625, 0.875)[i % 3]) for i in range(36)])
    run_async(_concurrent_reviews(db_dsn, ids))  # three reviews of each ticket, at once
    everyone = _both(db_dsn, Scope.provider())
    assert everyone["n"] == 36 and sum(b["n"] for b in everyone["buckets"]) == 36
    with psycopg.connect(db_dsn) as conn:
        assert conn.execute("SELECT sum(flagged + unflagged) FROM review_risk_daily").fetchone()[0] == 36
        # What retention and a partition drop do (as the owner): the rollup follows.
        conn.execute("DELETE FROM ticket_review_state WHERE log_id = ANY(%s)", (ids[:12],))
    assert _both(db_dsn, Scope.provider())["n"] == 24
    with psycopg.connect(db_dsn) as conn:
        conn.execute("DELETE FROM ticket_review_state WHERE client_id = 'initech'")
        assert conn.execute("SELECT (SELECT count(*) FROM review_calibration_daily)"
                            " + (SELECT count(*) FROM review_risk_daily)").fetchone()[0] == 0  # no empty rows left


def test_a_tenant_reads_only_its_own_rollup_rows_and_writes_none(db_dsn):
    _seed(db_dsn)
    assert_rollups_tenant_scoped(db_dsn, ("review_calibration_daily", "review_risk_daily"))


def test_the_migration_backfills_the_reviews_already_stored(empty_db):
    dsn, _ = empty_db
    apply_migrations(dsn, [m for m in list_migrations() if m.version < 21])
    with psycopg.connect(dsn, autocommit=True) as conn:  # the column today's log writer fills (0028, idempotent)
        conn.execute("ALTER TABLE workflow_logs ADD COLUMN draft_excerpt text")
    _seed(dsn)  # reviewed before the rollup tables exist
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT to_regclass('review_calibration_daily')").fetchone()[0] is None
    assert apply_migrations(dsn) == [m.name for m in list_migrations() if m.version >= 21]
    _check_all_scopes(dsn, HAND)


def test_a_long_range_reads_its_whole_months_from_the_monthly_histogram(db_dsn):
    span = (MIDNIGHT - timedelta(days=75, hours=-7), MIDNIGHT)  # 75 days: at least one whole month
    m0, m1 = whole_months(*split_range(*span)[:2])
    assert m0 < m1
    docs, plan = [], []
    for g, (confidence, verdicts, flagged) in enumerate(GROUPS):
        for i, verdict in enumerate(verdicts):  # spread over the 75 days
            docs.append(_doc("acme", f"L-{g}-{i}", span[0] + timedelta(hours=1 + 44 * (g * 10 + i)), confidence))
            plan.append((verdict, ("hallucination",) if i >= len(verdicts) - flagged else ()))
    ids = store_logs(db_dsn, docs)
    run_async(_review_all(db_dsn, ids, plan, Scope.provider()))
    _check(_both(db_dsn, Scope.tenant("acme"), span=span), HAND)  # the same tickets as HAND, other days
    with psycopg.connect(db_dsn) as conn:
        monthly = conn.execute("SELECT sum(flagged + unflagged) FROM review_risk_monthly WHERE month >= %s"
                               " AND month < %s", (m0, m1)).fetchone()[0]
        assert monthly == conn.execute("SELECT count(*) FROM ticket_review_state WHERE executed_at >= %s"
                                       " AND executed_at < %s", (m0, m1)).fetchone()[0] > 0
    inside = next(k for k, d in enumerate(docs) if plan[k][1] and str(m0) <= d["ticket_info"]["executed_at"][:10]
                  < str(m1))  # a flagged ticket of a whole month
    run_async(_review_all(db_dsn, [ids[inside]], [("correct", ())], Scope.tenant("acme")))  # unflagged now
    assert _both(db_dsn, Scope.provider(), span=span)["hallucination_flagged"] == 9
    with psycopg.connect(db_dsn) as conn:
        conn.execute("DELETE FROM ticket_review_state WHERE log_id = ANY(%s)", (ids[::3],))
    assert _both(db_dsn, Scope.provider(), span=span)["per_client"][0]["n"] == 26
