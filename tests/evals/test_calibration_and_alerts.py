"""Judge calibration figures computed by hand, the store's pairing of scores with verdicts, and
the alert metric `eval:<name>` fired by an evaluator's average score."""
from __future__ import annotations

from datetime import UTC, datetime

import psycopg
import pytest

from collector_api.alerts.admin import create_rule
from collector_api.alerts.evaluate import evaluate_rules
from collector_api.alerts.rules import AlertRuleError, validate_rule
from collector_api.evals.calibration import calibration_of, judge_calibration
from collector_api.store.core.db import Scope, create_pool
from collector_api.store.evals.reads import verdict_histogram
from tests.evals.helpers import build_log, insert_log
from tests.helpers import run_async


def run(dsn, fn):
    async def go():
        async with create_pool(dsn, max_size=4) as pool:
            return await fn(pool)
    return run_async(go())


def test_calibration_by_hand():
    # 40 tickets: 20 scored 0.9 of which 18 correct, 20 scored 0.15 of which 4 correct.
    # Buckets: [0.9, 1.0] n 20 accuracy 0.9 mean 0.9; [0.1, 0.2) n 20 accuracy 0.2 mean 0.15.
    # ECE = 0.5 * |0.9 - 0.9| + 0.5 * |0.2 - 0.15| = 0.025.
    # AUC: correct 22 (18 high, 4 low), incorrect 18 (2 high, 16 low). Pairs won: high-correct
    # beat 16 low-incorrect (18*16) and tie 2 high-incorrect (18*2*0.5); low-correct tie 16
    # (4*16*0.5): (288 + 18 + 32) / (22 * 18) = 338 / 396.
    # Agreement (score >= 0.5 <-> correct): 18 + 16 of 40 = 0.85.
    cal = calibration_of([(0.9, 18, 2), (0.15, 4, 16)])
    assert cal["enough"] and cal["n"] == 40
    assert cal["ece"] == pytest.approx(0.025)
    assert cal["auc"] == pytest.approx(338 / 396)
    assert cal["agreement"] == pytest.approx(0.85)
    high = cal["buckets"][9]
    assert high["n"] == 20 and high["accuracy"] == pytest.approx(0.9) and high["mean_score"] == pytest.approx(0.9)


def test_fewer_than_30_is_not_enough():
    cal = calibration_of([(0.5, 20, 9)])
    assert not cal["enough"] and cal["ece"] is None and "fewer than 30" in cal["message"]
    assert [c["evaluator"] for c in judge_calibration([{"evaluator": "b", "score": 1, "correct": 1, "other": 0},
                                                       {"evaluator": "a", "score": 0, "correct": 0, "other": 1}])
            ] == ["a", "b"]


def _score(dsn, client, log_id, evaluator, score, version=1):
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("INSERT INTO evaluation_scores (client_id, log_id, executed_at, evaluator, version, score)"
                     " SELECT client_id, id, executed_at, %s, %s, %s FROM workflow_logs WHERE id = %s",
                     (evaluator, version, score, log_id))
        assert client == conn.execute("SELECT client_id FROM workflow_logs WHERE id = %s", (log_id,)).fetchone()[0]


def _verdict(dsn, log_id, verdict):
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("INSERT INTO ticket_review_state (log_id, client_id, executed_at, status, verdict, flags,"
                     " review_count, last_review_id, last_review_at) SELECT id, client_id, executed_at, status, %s,"
                     " '{}', 1, 1, now() FROM workflow_logs WHERE id = %s", (verdict, log_id))


def test_scores_meet_verdicts_latest_version_and_tenant_only(db_dsn):
    a = insert_log(db_dsn, "acme", build_log(), ticket="a")
    g = insert_log(db_dsn, "globex", build_log(), ticket="g")
    _score(db_dsn, "acme", a, "judge", 0.2, version=1)
    _score(db_dsn, "acme", a, "judge", 0.7, version=2)
    _score(db_dsn, "globex", g, "judge", 0.1)
    _verdict(db_dsn, a, "correct")
    _verdict(db_dsn, g, "incorrect")
    start, end = datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC)
    mine = run(db_dsn, lambda pool: verdict_histogram(pool, Scope.tenant("acme"), start, end))
    every = run(db_dsn, lambda pool: verdict_histogram(pool, Scope.provider(), start, end))
    assert [(r["evaluator"], r["score"], r["correct"], r["other"]) for r in mine] == [("judge", 0.7, 1, 0)]
    assert sorted((r["score"], r["correct"], r["other"]) for r in every) == [(0.1, 0, 1), (0.7, 1, 0)]


def test_eval_metric_fires_on_the_average_score_per_tenant(db_dsn):
    low = [insert_log(db_dsn, "acme", build_log(), ticket=f"a{i}") for i in range(3)]
    high = [insert_log(db_dsn, "globex", build_log(), ticket=f"g{i}") for i in range(3)]
    for log_id, score in zip(low, (0.2, 0.4, 0.3), strict=True):  # acme's mean 0.3
        _score(db_dsn, "acme", log_id, "grounded", score)
    for log_id in high:
        _score(db_dsn, "globex", log_id, "grounded", 0.9)
    spec = validate_rule(name="grounding", metric="eval:grounded", op="<", threshold="0.5", window="1h",
                         client_id=None, webhook_url="https://hooks.example.com/x", min_tickets="2")
    run(db_dsn, lambda pool: create_rule(pool, spec, "k" * 40))
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        conn.execute("INSERT INTO tenants (client_id) VALUES ('initech') ON CONFLICT DO NOTHING")
    transitions = run(db_dsn, lambda pool: evaluate_rules(pool))
    assert [(t.client_id, t.state, round(t.value, 6)) for t in transitions] == [("acme", "firing", 0.3)]
    for bad in ("eval:", "eval:Bad Name", "evaluation:x"):
        with pytest.raises(AlertRuleError):
            validate_rule(name="x", metric=bad, op="<", threshold="0.5", window="1h", client_id=None,
                          webhook_url="https://h.example.com/")
    with pytest.raises(AlertRuleError) as err:
        validate_rule(name="x", metric="eval:grounded", op="<", threshold="2", window="1h", client_id=None,
                      webhook_url="https://h.example.com/")
    assert err.value.field == "threshold"
