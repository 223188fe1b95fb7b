"""Judge errors retried by later runs of the evaluation job (bounded attempts, doubling waits,
idempotent per (log, evaluator version)), and evaluators disabled, enabled and deleted (the
scores of a deleted evaluator stay, shown under its name; the name is not reused). A real
PostgreSQL and a fake judge on 127.0.0.1."""
from __future__ import annotations

import psycopg
import pytest

from collector_api.evals.admin import change_evaluator, create_evaluator, list_evaluators
from collector_api.evals.job import EvalConfig, evaluate_new_logs
from collector_api.evals.judge import JudgeConfig
from collector_api.evals.spec import EvaluatorError, validate_evaluator
from collector_api.store.core.db import Scope, create_pool
from collector_api.store.evals.reads import ticket_scores
from collector_api.store.evals.writes import RetryPolicy
from tests.evals.helpers import FakeJudge, build_log, insert_log, score_rows
from tests.helpers import run_async

WAIT = 60.0  # the first retry's wait (FLUSSO_EVAL_RETRY_BACKOFF_S)
DOC = build_log(draft="Order A-77 shipped.", evidence={"items": [{"claim": "a-77 shipped"}]})


def run(dsn, fn):
    async def go():
        async with create_pool(dsn, max_size=4) as pool:
            return await fn(pool)
    return run_async(go())


def create(dsn, **fields):
    return run(dsn, lambda pool: create_evaluator(pool, validate_evaluator(**fields)))


def tick(dsn, url: str, attempts: int = 3):
    cfg = EvalConfig(judge=JudgeConfig(url=url, model="m", timeout_s=2.0, retries=1, backoff_base_s=0.01,
                                       usd_per_input_mtok=1.0, usd_per_output_mtok=0.0, concurrency=1),
                     retry=RetryPolicy(attempts=attempts, backoff_s=WAIT))
    return run(dsn, lambda pool: evaluate_new_logs(pool, cfg))


def retry_state(dsn: str) -> list[tuple]:
    """(log_id, evaluator, outcome, attempts, seconds until the next attempt or None, detail)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        return conn.execute(
            "SELECT log_id, evaluator, outcome, attempts, extract(epoch FROM next_attempt_at - now())::float8,"
            " detail FROM evaluation_outcomes ORDER BY log_id, evaluator").fetchall()


def make_due(dsn: str) -> None:
    """As if every pending wait had passed."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("UPDATE evaluation_outcomes SET next_attempt_at = now() - interval '1 second'"
                     " WHERE next_attempt_at IS NOT NULL")


def test_an_error_is_retried_when_due_then_scored_once(db_dsn):
    log = insert_log(db_dsn, "acme", DOC, ticket="T1")
    create(db_dsn, name="judge", kind="judge", client_id="acme", cost_cap="5")
    # The first run: the endpoint fails twice (the call and its in-call retry): an error.
    answers = [("status", 500), ("status", 503), ("ok", 0.7, "good")]
    with FakeJudge(lambda n, req: answers[min(n, 2)]) as judge:
        first = tick(db_dsn, judge.url)
        assert first.outcomes == {"error": 1} and len(judge.requests) == 2
        [(lid, name, outcome, attempts, wait, detail)] = retry_state(db_dsn)
        assert (lid, name, outcome, attempts) == (log, "judge", "error", 1) and "HTTP 503" in detail
        assert WAIT - 5 < wait <= WAIT
        # Not due yet: a run leaves it alone (no call).
        assert tick(db_dsn, judge.url).retried == 0 and len(judge.requests) == 2
        make_due(db_dsn)
        second = tick(db_dsn, judge.url)
        assert second.retried == 1 and second.scores == 1 and second.logs == 0 and len(judge.requests) == 3
        assert retry_state(db_dsn) == []  # the error is resolved by the score
        assert [(r[1], r[2], r[4]) for r in score_rows(db_dsn)] == [(log, "judge", 0.7)]
        make_due(db_dsn)
        assert tick(db_dsn, judge.url).retried == 0 and len(judge.requests) == 3  # idempotent
    [status] = run(db_dsn, list_evaluators)
    assert status.errors == 1 and status.calls == 2


def test_attempts_are_bounded_with_doubling_waits_and_the_reason_stays_visible(db_dsn):
    log = insert_log(db_dsn, "acme", DOC, ticket="T1")
    create(db_dsn, name="judge", kind="judge", cost_cap="5")
    with FakeJudge(lambda n, req: ("status", 500)) as judge:
        tick(db_dsn, judge.url)
        assert retry_state(db_dsn)[0][3] == 1
        make_due(db_dsn)
        assert tick(db_dsn, judge.url).retried == 1
        [(_, _, outcome, attempts, wait, _)] = retry_state(db_dsn)
        assert outcome == "error" and attempts == 2 and 2 * WAIT - 5 < wait <= 2 * WAIT  # doubled
        make_due(db_dsn)
        assert tick(db_dsn, judge.url).retried == 1
        [(_, _, outcome, attempts, wait, detail)] = retry_state(db_dsn)
        assert (outcome, attempts, wait) == ("error", 3, None) and "HTTP 500" in detail  # no more attempts
        calls = len(judge.requests)
        make_due(db_dsn)
        assert tick(db_dsn, judge.url).retried == 0 and len(judge.requests) == calls == 6
    [row] = run(db_dsn, lambda pool: ticket_scores(pool, Scope.tenant("acme"), log))
    assert (row["outcome"], row["attempts"], row["next_attempt_at"]) == ("error", 3, None)
    assert "HTTP 500" in row["reason"]
    assert run(db_dsn, lambda pool: ticket_scores(pool, Scope.tenant("globex"), log)) == []  # another tenant


def test_errors_of_a_disabled_deleted_or_newer_evaluator_are_not_retried(db_dsn):
    insert_log(db_dsn, "acme", DOC, ticket="T1")
    create(db_dsn, name="judge", kind="judge", cost_cap="5")
    with FakeJudge(lambda n, req: ("status", 500)) as judge:
        tick(db_dsn, judge.url)
        run(db_dsn, lambda pool: change_evaluator(pool, "judge", "disable"))
        make_due(db_dsn)
        assert tick(db_dsn, judge.url).retried == 0 and len(judge.requests) == 2
        run(db_dsn, lambda pool: change_evaluator(pool, "judge", "enable"))
        assert tick(db_dsn, judge.url).retried == 1 and len(judge.requests) == 4
        run(db_dsn, lambda pool: change_evaluator(pool, "judge", "delete"))
        make_due(db_dsn)
        assert tick(db_dsn, judge.url).retried == 0 and len(judge.requests) == 4


def test_a_deleted_evaluator_stops_leaves_the_list_and_keeps_its_scores(db_dsn):
    first = insert_log(db_dsn, "acme", DOC, ticket="T1")
    other = insert_log(db_dsn, "globex", DOC, ticket="G1")
    create(db_dsn, name="grounded", kind="groundedness")
    create(db_dsn, name="acme-policy", kind="policy", client_id="acme", patterns=["guarantee"])
    with FakeJudge() as judge:
        assert tick(db_dsn, judge.url).scores == 3
        # --client guards a script: the evaluator must be that tenant's own
        with pytest.raises(EvaluatorError, match="client: evaluator 'grounded' is for every tenant"):
            run(db_dsn, lambda pool: change_evaluator(pool, "grounded", "delete", "acme"))
        with pytest.raises(EvaluatorError, match="client: evaluator 'acme-policy' is tenant 'acme'"):
            run(db_dsn, lambda pool: change_evaluator(pool, "acme-policy", "disable", "globex"))
        run(db_dsn, lambda pool: change_evaluator(pool, "grounded", "delete"))
        assert [s.evaluator.name for s in run(db_dsn, list_evaluators)] == ["acme-policy"]
        later = insert_log(db_dsn, "acme", DOC, ticket="T2")
        assert tick(db_dsn, judge.url).scores == 1  # acme-policy only
    names = {(r[1], r[2]) for r in score_rows(db_dsn)}
    assert (first, "grounded") in names and (other, "grounded") in names and (later, "grounded") not in names
    shown = run(db_dsn, lambda pool: ticket_scores(pool, Scope.tenant("acme"), first))
    assert {(r["evaluator"], r["score"], r["deleted"]) for r in shown} == {("grounded", 1.0, True),
                                                                           ("acme-policy", 1.0, False)}
    with pytest.raises(EvaluatorError, match="name: an evaluator named 'grounded' was deleted"):
        create(db_dsn, name="grounded", kind="language")
    for action in ("enable", "disable", "delete"):
        with pytest.raises(EvaluatorError, match="name: no evaluator 'grounded'"):
            run(db_dsn, lambda pool, a=action: change_evaluator(pool, "grounded", a))
    with pytest.raises(EvaluatorError, match="action: expected one of"):
        run(db_dsn, lambda pool: change_evaluator(pool, "acme-policy", "drop"))
