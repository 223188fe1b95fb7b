"""The evaluation job and rerun on a real PostgreSQL with a fake judge on 127.0.0.1: which
evaluator scores which log, idempotency per (log, evaluator version), the cost cap, invalid
answers counted and never stored, versions, tenant scope of the reads."""
from __future__ import annotations

import json
import os
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from collector_api.evals.admin import create_evaluator, list_evaluators, new_version
from collector_api.evals.job import EvalConfig, evaluate_new_logs, rerun
from collector_api.evals.judge import JudgeConfig
from collector_api.evals.spec import EvaluatorError, validate_evaluator
from collector_api.store.core.db import Scope, create_pool, scoped_transaction
from collector_api.store.evals.reads import scores_by_log, ticket_scores
from tests.evals.helpers import FakeJudge, build_log, insert_log, outcome_rows, score_rows
from tests.helpers import run_async

GROUNDED = build_log(draft="Order A-77 shipped.", evidence={"items": [{"claim": "a-77 shipped"}]})
UNGROUNDED = build_log(draft="Order B-99 shipped.")
EXAMPLE = json.loads((Path(__file__).resolve().parents[2] / "docs" / "workflow-log.example.json").read_text())


def run(dsn, fn):
    async def go():
        async with create_pool(dsn, max_size=4) as pool:
            return await fn(pool)
    return run_async(go())


def judge_config(url: str, **kw) -> EvalConfig:
    return EvalConfig(judge=JudgeConfig(url=url, model="m", timeout_s=2.0, retries=1, backoff_base_s=0.01,
                                        usd_per_input_mtok=1.0, usd_per_output_mtok=0.0, **kw))


def create(dsn, **fields):
    return run(dsn, lambda pool: create_evaluator(pool, validate_evaluator(**fields)))


def test_deterministic_scores_every_tenant_and_a_judge_only_its_own(db_dsn):
    a1 = insert_log(db_dsn, "acme", GROUNDED, ticket="A1")
    a2 = insert_log(db_dsn, "acme", UNGROUNDED, ticket="A2")
    g1 = insert_log(db_dsn, "globex", GROUNDED, ticket="G1")
    create(db_dsn, name="grounded", kind="groundedness")
    create(db_dsn, name="judge", kind="judge", client_id="acme", cost_cap="5")
    with FakeJudge(lambda n, req: ("ok", 0.9, "good")) as judge:
        report = run(db_dsn, lambda pool: evaluate_new_logs(pool, judge_config(judge.url)))
        assert report.logs == 3 and report.scores == 5
        assert len(judge.requests) == 2  # acme's two logs only
        # A second tick finds nothing new: no score twice, no judge call twice.
        again = run(db_dsn, lambda pool: evaluate_new_logs(pool, judge_config(judge.url)))
        assert again.logs == 0 and len(judge.requests) == 2
    rows = {(r[1], r[2]): r[4] for r in score_rows(db_dsn)}
    assert rows == {(a1, "grounded"): 1.0, (a1, "judge"): 0.9, (a2, "grounded"): 0.0, (a2, "judge"): 0.9,
                    (g1, "grounded"): 1.0}


def test_a_log_seen_again_is_not_scored_or_judged_again(db_dsn):
    insert_log(db_dsn, "acme", GROUNDED)
    create(db_dsn, name="judge", kind="judge", cost_cap="5")
    with FakeJudge() as judge:
        run(db_dsn, lambda pool: evaluate_new_logs(pool, judge_config(judge.url)))
        with psycopg.connect(db_dsn, autocommit=True) as conn:  # the cursor forgets: every log is new again
            conn.execute("UPDATE evaluation_state SET watermark = NULL, last_id = NULL")
        report = run(db_dsn, lambda pool: evaluate_new_logs(pool, judge_config(judge.url)))
    assert report.logs == 1 and report.scores == 0 and len(judge.requests) == 1


def test_filters_and_sampling(db_dsn):
    ok = insert_log(db_dsn, "acme", GROUNDED, ticket="ok", status="SUCCESS")
    insert_log(db_dsn, "acme", GROUNDED, ticket="failed", status="FAILED")
    other = build_log(draft="x.")
    other["identification"]["workflow_name"] = "other_flow"
    insert_log(db_dsn, "acme", other, ticket="other")
    for i in range(200):
        insert_log(db_dsn, "initech", GROUNDED, ticket=f"s{i}")
    create(db_dsn, name="only-success", kind="draft_complete", status="SUCCESS", workflow="flusso_ticket",
           client_id="acme")
    create(db_dsn, name="sampled", kind="draft_complete", client_id="initech", sample_rate="0.25")
    run(db_dsn, lambda pool: evaluate_new_logs(pool, EvalConfig()))
    rows = score_rows(db_dsn)
    assert [r[1] for r in rows if r[2] == "only-success"] == [ok]
    sampled = sum(1 for r in rows if r[2] == "sampled")
    assert 25 <= sampled <= 75  # 200 logs at 0.25: 50 expected (deterministic per log: the same every run)


def test_the_cost_cap_stops_the_judge_and_shows_on_the_listing(db_dsn):
    for i in range(10):
        insert_log(db_dsn, "acme", GROUNDED, ticket=f"T{i}")
    # 1000 prompt tokens at 1 USD per million: 0.001 a call; a cap of 0.0035 admits 4 calls
    # (the fourth starts at 0.003 spent), concurrency 1 so none is in flight beside it.
    create(db_dsn, name="judge", kind="judge", cost_cap="0.0035")
    with FakeJudge() as judge:
        report = run(db_dsn, lambda pool: evaluate_new_logs(pool, judge_config(judge.url, concurrency=1)))
    assert len(judge.requests) == 4 and report.scores == 4 and report.outcomes == {"capped": 6}
    [status] = run(db_dsn, list_evaluators)
    assert status.calls == 4 and status.capped == 6 and status.month_cost_usd == pytest.approx(0.004)
    assert status.at_cap


def test_invalid_answers_and_failures_are_counted_never_stored_as_scores(db_dsn):
    logs = [insert_log(db_dsn, "acme", GROUNDED, ticket=f"T{i}") for i in range(3)]
    create(db_dsn, name="judge", kind="judge", cost_cap="5")
    # One call at a time, in log order: the first log's answer is prose (invalid), the second
    # log's call fails twice (one try, one retry: an error), the third log's is a score.
    answers = [("content", "I think 0.7"), ("status", 500), ("status", 500), ("ok", 0.4, "weak")]
    with FakeJudge(lambda n, req: answers[n]) as judge:
        run(db_dsn, lambda pool: evaluate_new_logs(pool, judge_config(judge.url, concurrency=1)))
    scores = score_rows(db_dsn)
    assert [(r[1], r[4]) for r in scores] == [(logs[2], 0.4)]
    outcomes = {r[0]: r[3] for r in outcome_rows(db_dsn)}
    assert outcomes == {logs[0]: "invalid", logs[1]: "error"}
    [status] = run(db_dsn, list_evaluators)
    assert status.invalid == 1 and status.errors == 1


def test_rerun_scores_a_range_under_a_new_version_and_reads_give_the_latest(db_dsn):
    now = datetime.now(UTC)
    old = insert_log(db_dsn, "acme", GROUNDED, at=now - timedelta(days=3), ticket="old")
    new = insert_log(db_dsn, "acme", UNGROUNDED, at=now - timedelta(hours=1), ticket="new")
    create(db_dsn, name="grounded", kind="groundedness")
    run(db_dsn, lambda pool: evaluate_new_logs(pool, EvalConfig()))

    async def second(pool):
        ev = await new_version(pool, "grounded")
        return ev, await rerun(pool, EvalConfig(), ev, now - timedelta(days=1), now)

    ev, report = run(db_dsn, second)
    assert ev.version == 2 and report.logs == 1 and report.scores == 1  # only `new` is in the range
    assert [(r[1], r[3]) for r in score_rows(db_dsn)] == [(old, 1), (new, 1), (new, 2)]

    async def reads(pool):
        async with scoped_transaction(pool, Scope.provider()) as conn:
            everyone = await scores_by_log(conn, None, [old, new])
            wrong_tenant = await scores_by_log(conn, "globex", [old, new])
        async with scoped_transaction(pool, Scope.tenant("globex")) as conn:
            rls = await scores_by_log(conn, None, [old, new])
        theirs = await ticket_scores(pool, Scope.tenant("globex"), new)
        mine = await ticket_scores(pool, Scope.tenant("acme"), new)
        return everyone, wrong_tenant, rls, theirs, mine

    everyone, wrong_tenant, rls, theirs, mine = run(db_dsn, reads)
    assert everyone == {old: {"grounded": 1.0}, new: {"grounded": 0.0}}
    assert wrong_tenant == {} and rls == {} and theirs == []
    assert [(m["evaluator"], m["version"], m["score"]) for m in mine] == [("grounded", 2, 0.0)]


def test_evaluator_validation_names_the_field(db_dsn):
    for fields, field in [({"name": "Bad Name", "kind": "policy"}, "name"), ({"name": "x", "kind": "nope"}, "kind"),
                          ({"name": "x", "kind": "judge"}, "cost_cap"), ({"name": "x", "kind": "policy"}, "patterns"),
                          ({"name": "x", "kind": "language", "sample_rate": "0"}, "sample_rate"),
                          ({"name": "x", "kind": "language", "status": "DONE"}, "status"),
                          ({"name": "x", "kind": "language", "cost_cap": "3"}, "cost_cap")]:
        with pytest.raises(EvaluatorError) as err:
            validate_evaluator(**fields)
        assert err.value.field == field
    create(db_dsn, name="dup", kind="language")
    with pytest.raises(EvaluatorError) as err:
        create(db_dsn, name="dup", kind="language")
    assert err.value.field == "name"
    with pytest.raises(EvaluatorError) as err:
        create(db_dsn, name="ghost", kind="language", client_id="no-such-tenant")
    assert err.value.field == "client"


def test_the_rls_role_cannot_write_scores(db_dsn):
    log = insert_log(db_dsn, "acme", GROUNDED)

    async def attempt(pool):
        async with scoped_transaction(pool, Scope.tenant("acme")) as conn:
            await conn.execute("INSERT INTO evaluation_scores (client_id, log_id, executed_at, evaluator, version,"
                               " score) VALUES ('acme', %s, now(), 'fake', 1, 1)", (log,))

    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        run(db_dsn, attempt)


def test_a_live_server_scores_new_logs_in_its_evaluation_child_process(db_dsn):
    """End to end: logs sent to a running server are scored by the `evaluate` job, whose work runs
    in a child process (the judge is called from there, not from the server's process)."""
    from config.server import ServerSettings
    from tests.helpers import LiveServer, make_key

    key = make_key(db_dsn, "acme")
    create(db_dsn, name="complete", kind="draft_complete")
    create(db_dsn, name="judge", kind="judge", cost_cap="5")
    with FakeJudge(lambda n, req: ("ok", 0.7, "fine")) as judge:
        settings = ServerSettings(_env_file=None, flusso_session_secret="test-secret-" + "x" * 32,
                                  flusso_eval_interval_s=0.5, flusso_judge_url=judge.url, flusso_judge_timeout_s=5)
        server = LiveServer(db_dsn, settings).start()
        try:
            import httpx

            for _ in range(2):
                body = {**EXAMPLE, "trace_id": uuid.uuid4().hex}
                r = httpx.post(f"{server.url}/api/v1/logs", json=body, headers={"X-API-Key": key}, timeout=10)
                assert r.status_code in (200, 201, 202), r.text
            deadline = time.monotonic() + 60
            while len(score_rows(db_dsn)) < 4 and time.monotonic() < deadline:
                time.sleep(0.1)
            rows = sorted((r[2], r[4]) for r in score_rows(db_dsn) if r[2] == "judge")
            complete = [r[4] for r in score_rows(db_dsn) if r[2] == "complete"]
            evaluate = next(j for j in server.app.state.jobs if j.name == "evaluate")
            child = evaluate.run.work.pid
        finally:
            server.stop()
    assert rows == [("judge", 0.7), ("judge", 0.7)] and complete == [1.0, 1.0]
    assert child is not None and child != os.getpid()
    assert len(judge.requests) == 2
    with psycopg.connect(db_dsn) as conn:
        ok, error = conn.execute("SELECT last_ok_at, last_error FROM job_runs WHERE name = 'evaluate'").fetchone()
    assert ok is not None and error is None


def test_the_evaluation_child_runs_only_while_an_evaluator_is_enabled(db_dsn):
    from collector_api.evals.job import EvaluateJob

    insert_log(db_dsn, "acme", GROUNDED)

    async def go(pool):
        job = EvaluateJob(pool, db_dsn, EvalConfig())
        try:
            await job()
            before = job.work.pid  # nothing enabled: no child process at all
            await create_evaluator(pool, validate_evaluator(name="complete", kind="draft_complete"))
            report = await job()
            during = job.work.pid
            with psycopg.connect(db_dsn, autocommit=True) as conn:
                conn.execute("UPDATE evaluators SET enabled = false")
            await job()
            return before, report, during, job.work.pid
        finally:
            job.stop()

    before, report, during, after = run(db_dsn, go)
    assert before is None and after is None  # disabled again: the child was stopped
    assert during is not None and during != os.getpid() and report.logs == 1 and report.scores == 1
