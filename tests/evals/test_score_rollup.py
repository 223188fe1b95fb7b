"""The overview's evaluator panels read from the rollups of migration 0024 equal the live
computation over the whole range, and numbers worked out by hand: partial edge days, a new
evaluator version, a changed verdict, a late score of a past day, a score and a review of the
same ticket written at the same moment, deletes as erasure and retention do them, two tenants."""
from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from collector_api.evals.calibration import judge_calibration
from collector_api.store.core.db import Scope, create_pool
from collector_api.store.core.locks import EVAL_VERDICT_LOGS
from collector_api.store.core.migrate import apply_migrations, list_migrations
from collector_api.store.evals.reads import score_series, verdict_histogram
from collector_api.store.reviews.calibration import split_range, whole_months
from tests.evals.helpers import build_log, insert_log
from tests.helpers import assert_rollups_tenant_scoped, run_async, score_rollups, wait_until

MIDNIGHT = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
START = MIDNIGHT - timedelta(days=4) + timedelta(hours=12)   # half of day -4, days -3 and -2 whole,
END = MIDNIGHT - timedelta(days=1) + timedelta(hours=6)      # the first quarter of day -1
INSIDE = (MIDNIGHT - timedelta(days=4) + timedelta(hours=18), MIDNIGHT - timedelta(days=3, hours=-5),
          MIDNIGHT - timedelta(days=2, hours=-20), MIDNIGHT - timedelta(days=1) + timedelta(hours=3))
OUTSIDE = (MIDNIGHT - timedelta(days=4) + timedelta(hours=6), MIDNIGHT - timedelta(days=1) + timedelta(hours=9))
# acme's judge: (score, verdicts of its tickets), spread over the four days of the range. Binary
# fractions: every sum is exact, so rollup and live agree to the bit.
GROUPS = ((0.875, ["correct"] * 18 + ["incorrect"] * 2), (0.125, ["correct"] * 4 + ["needs_work"] * 16))
# By hand: buckets 8 (n 20, accuracy 0.9, mean 0.875) and 1 (n 20, accuracy 0.2, mean 0.125):
#   ECE = 0.5 * 0.025 + 0.5 * 0.075 = 0.05. AUC: correct 22 (18 high, 4 low), other 18 (2 high,
#   16 low): (18 * (16 + 1) + 4 * 8) / (22 * 18) = 338 / 396. Agreement: (18 + 16) / 40 = 0.85.
HAND = {"n": 40, "ece": 0.05, "auc": 338 / 396, "agreement": 0.85}


def _verdict(conn, log_id: int, verdict: str) -> None:
    conn.execute("INSERT INTO ticket_review_state (log_id, client_id, executed_at, status, verdict, flags,"
                 " review_count, last_review_id, last_review_at) SELECT id, client_id, executed_at, status, %s,"
                 " '{}', 1, 1, now() FROM workflow_logs WHERE id = %s ON CONFLICT (log_id) DO UPDATE"
                 " SET verdict = EXCLUDED.verdict", (verdict, log_id))


def _score(conn, log_id: int, score: float, evaluator: str = "judge", version: int = 1) -> None:
    conn.execute("INSERT INTO evaluation_scores (client_id, log_id, executed_at, evaluator, version, score)"
                 " SELECT client_id, id, executed_at, %s, %s, %s FROM workflow_logs WHERE id = %s",
                 (evaluator, version, score, log_id))


def _seed(dsn: str) -> list[int]:
    """acme: the two groups over the range's four days, each ticket scored by `judge` (an older
    version first, at another score) and `grounded` (unreviewed ones too), two outside the range;
    globex: 32 tickets of day -2 at 0.5, half correct. Returns acme's in-range ids."""
    ids = []
    with psycopg.connect(dsn, autocommit=True) as conn:
        for score, verdicts in GROUPS:
            for i, verdict in enumerate(verdicts):
                log_id = insert_log(dsn, "acme", build_log(), ticket=f"A-{score}-{i}", at=INSIDE[i % 4])
                _score(conn, log_id, 1 - score, version=1)
                _verdict(conn, log_id, verdict)
                _score(conn, log_id, score, version=2)  # the latest version, written after the review
                _score(conn, log_id, 0.5, evaluator="grounded")
                ids.append(log_id)
        for k, at in enumerate(OUTSIDE):
            log_id = insert_log(dsn, "acme", build_log(), ticket=f"A-out-{k}", at=at)
            _verdict(conn, log_id, "incorrect")
            _score(conn, log_id, 0.875, version=2)
        unreviewed = insert_log(dsn, "acme", build_log(), ticket="A-unreviewed", at=INSIDE[1])
        _score(conn, unreviewed, 0.25, evaluator="grounded")
        for i in range(32):
            log_id = insert_log(dsn, "globex", build_log(), ticket=f"G-{i}", at=INSIDE[2])
            _score(conn, log_id, 0.5)
            _verdict(conn, log_id, "correct" if i % 2 else "incorrect")
    return ids


def _both(dsn: str, scope: Scope, client: str | None = None, span: tuple = (START, END)) -> tuple[dict, list]:
    """(series, judge calibration) from the rollups, after checking they equal the live ones."""
    async def go():
        async with create_pool(dsn, max_size=2) as pool:
            return [await fn(pool, scope, *span, client, use_rollup=rollup)
                    for fn in (score_series, verdict_histogram) for rollup in (True, False)]
    series, series_live, histogram, histogram_live = run_async(go())
    assert series == series_live
    assert [(r["evaluator"], r["score"], r["correct"], r["other"]) for r in histogram] == [
        (r["evaluator"], r["score"], r["correct"], r["other"]) for r in histogram_live]
    score_rollups(dsn)
    return series, judge_calibration(histogram)


def _judge(calibration: list) -> dict:
    return next(c for c in calibration if c["evaluator"] == "judge")


def _check(calibration: list, hand: dict) -> None:
    judge = _judge(calibration)
    assert judge["n"] == hand["n"] and judge["enough"]
    for key in ("ece", "auc", "agreement"):
        assert judge[key] == pytest.approx(hand[key], abs=1e-12), key


def test_rollups_equal_live_and_the_hand_values_through_versions_verdicts_and_late_scores(db_dsn):
    ids = _seed(db_dsn)
    series, calibration = _both(db_dsn, Scope.tenant("acme"))
    _check(calibration, HAND)
    grounded = next(c for c in calibration if c["evaluator"] == "grounded")
    assert grounded["n"] == 40 and grounded["auc"] == 0.5  # every reviewed ticket at 0.5: all ties
    # The chart counts every version: day -3 holds tickets 1, 5, 9, ... of both groups (5 + 5),
    # each with v1 and v2 of the judge: the mean of (s, 1 - s) pairs is 0.5.
    day = INSIDE[1].date().isoformat()
    assert {p["day"]: (p["n"], p["mean"]) for p in series["judge"]}[day] == (20, 0.5)
    assert {p["day"]: p["n"] for p in series["grounded"]}[day] == 11  # the unreviewed one too
    _check(_both(db_dsn, Scope.provider(), "acme")[1], HAND)
    everyone = _judge(_both(db_dsn, Scope.provider())[1])
    assert everyone["n"] == 72
    globex = _judge(_both(db_dsn, Scope.tenant("globex"))[1])
    assert globex["n"] == 32 and globex["agreement"] == 0.5 and globex["auc"] == 0.5
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        # A verdict changed after its day was rolled up: a correct 0.875 ticket re-judged incorrect:
        #   bucket 8 holds 17 correct: ECE = 0.5 * 0.025 + 0.5 * 0.075 = 0.05 still (|0.85 - 0.875|);
        #   AUC: correct 21 (17 high, 4 low), other 19 (3 high, 16 low): (17 * (16 + 1.5) + 4 * 8)
        #   / (21 * 19) = 329.5 / 399; agreement (17 + 16) / 40.
        _verdict(conn, ids[0], "incorrect")
    _check(_both(db_dsn, Scope.tenant("acme"))[1], {"n": 40, "ece": 0.05, "auc": 329.5 / 399, "agreement": 33 / 40})
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        # A third version moves the same ticket's latest score down to 0.125 (now an agreeing low score):
        #   bucket 1 holds 21 (4 correct), bucket 8 19 (17 correct): ECE = (21 * |4/21 - 0.125|
        #   + 19 * |17/19 - 0.875|) / 40 = (1.375 + 0.375) / 40; AUC: correct 21 (17 high, 4 low),
        #   other 19 (2 high, 17 low): (17 * (17 + 1) + 4 * 8.5) / 399 = 340 / 399; agreement 34 / 40.
        _score(conn, ids[0], 0.125, version=3)
    _check(_both(db_dsn, Scope.tenant("acme"))[1], {"n": 40, "ece": 1.75 / 40, "auc": 340 / 399, "agreement": 0.85})
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        # An older version arriving late changes nothing (the latest stays v3).
        conn.execute("DELETE FROM evaluation_scores WHERE log_id = %s AND version = 1", (ids[0],))
        _score(conn, ids[0], 0.875, version=1)
    _check(_both(db_dsn, Scope.tenant("acme"))[1], {"n": 40, "ece": 1.75 / 40, "auc": 340 / 399, "agreement": 0.85})


def test_deletes_as_erasure_and_retention_do_them_leave_the_rollups_exact_and_empty(db_dsn):
    ids = _seed(db_dsn)
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        # The erasure's order (review state first, then the scores), for one ticket.
        with conn.transaction():
            conn.execute("DELETE FROM ticket_review_state WHERE log_id = %s", (ids[0],))
            conn.execute("DELETE FROM evaluation_scores WHERE log_id = %s", (ids[0],))
        # The other order, for another; then the latest version alone (the previous comes back).
        with conn.transaction():
            conn.execute("DELETE FROM evaluation_scores WHERE log_id = %s", (ids[1],))
            conn.execute("DELETE FROM ticket_review_state WHERE log_id = %s", (ids[1],))
        conn.execute("DELETE FROM evaluation_scores WHERE log_id = %s AND version = 2", (ids[2],))
    _series, calibration = _both(db_dsn, Scope.tenant("acme"))
    assert _judge(calibration)["n"] == 38  # ids[2] counts again, at its v1 score
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        conn.execute("DELETE FROM ticket_review_state WHERE client_id = 'acme'")
        conn.execute("DELETE FROM evaluation_scores WHERE client_id = 'globex'")
    assert _both(db_dsn, Scope.provider())[1] == []
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        conn.execute("DELETE FROM evaluation_scores")
        assert conn.execute("SELECT (SELECT count(*) FROM evaluation_score_daily) + (SELECT count(*) FROM"
                            " evaluation_verdict_daily) + (SELECT count(*) FROM evaluation_verdict_monthly)"
                            ).fetchone()[0] == 0  # no empty rows left


def _waiting_for_the_bucket_lock(dsn: str) -> bool:
    with psycopg.connect(dsn) as conn:
        return conn.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
                            " AND classid = %s", (EVAL_VERDICT_LOGS,)).fetchone()[0] == 1


@pytest.mark.parametrize("first", ["score", "review"])
def test_a_score_and_a_review_of_one_ticket_written_at_once_are_both_counted(db_dsn, first):
    """The second writer's trigger waits for the first's transaction (the ticket's bucket lock),
    then reads the other table anew: without the lock, each would miss the other's row."""
    log_id = insert_log(db_dsn, "acme", build_log(), ticket="race", at=INSIDE[1])
    writers = {"score": lambda conn: _score(conn, log_id, 0.75),
               "review": lambda conn: _verdict(conn, log_id, "correct")}
    second = "review" if first == "score" else "score"
    with psycopg.connect(db_dsn) as a, psycopg.connect(db_dsn) as b:
        writers[first](a)  # its trigger ran: it holds the bucket, uncommitted
        done = threading.Event()

        def write_second():
            writers[second](b)
            b.commit()
            done.set()

        thread = threading.Thread(target=write_second)
        thread.start()
        assert wait_until(lambda: _waiting_for_the_bucket_lock(db_dsn), timeout=20)
        assert not done.is_set()
        a.commit()
        thread.join(timeout=20)
        assert done.is_set()
    _rolled, verdicts = score_rollups(db_dsn)
    assert [(r[2], r[3], r[4], r[5]) for r in verdicts] == [("judge", 0.75, 1, 0)]


def test_a_tenant_reads_only_its_own_rollup_rows_and_writes_none(db_dsn):
    _seed(db_dsn)
    assert_rollups_tenant_scoped(db_dsn, ("evaluation_score_daily", "evaluation_verdict_daily",
                                          "evaluation_verdict_monthly"))


def test_the_migration_backfills_the_scores_and_reviews_already_stored(empty_db):
    dsn, _ = empty_db
    apply_migrations(dsn, [m for m in list_migrations() if m.version < 24])
    _seed(dsn)  # scored and reviewed before the rollup tables exist
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT to_regclass('evaluation_verdict_daily')").fetchone()[0] is None
    assert apply_migrations(dsn) == [m.name for m in list_migrations() if m.version >= 24]
    _check(_both(dsn, Scope.tenant("acme"))[1], HAND)


def test_a_long_range_reads_its_whole_months_from_the_monthly_histogram(db_dsn):
    span = (MIDNIGHT - timedelta(days=75, hours=-7), MIDNIGHT)  # 75 days: at least one whole month
    m0, m1 = whole_months(*split_range(*span)[:2])
    assert m0 < m1
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        for g, (score, verdicts) in enumerate(GROUPS):
            for i, verdict in enumerate(verdicts):  # spread over the 75 days
                at = span[0] + timedelta(days=(i * 7 + g * 3) % 75, hours=1)
                log_id = insert_log(db_dsn, "acme", build_log(), ticket=f"L-{g}-{i}", at=at)
                _score(conn, log_id, score)
                _verdict(conn, log_id, verdict)
        months = conn.execute("SELECT count(DISTINCT month) FROM evaluation_verdict_monthly").fetchone()[0]
    assert months >= 3
    _check(_both(db_dsn, Scope.tenant("acme"), span=span)[1], HAND)
    _check(_both(db_dsn, Scope.provider(), span=span)[1], HAND)
