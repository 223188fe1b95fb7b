"""Evaluating a batch of stored logs: which evaluator looks at which log, the deterministic
ones in process, the judge's calls concurrent and bounded, and the cost cap.

`evaluate_batch` returns what to store (scores, outcomes, spend); it does not write. The
evaluation job (collector_api.evals.job) and `flusso-obs evals rerun` both use it.
"""
from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from collector_api.evals.deterministic import Verdict, draft_complete, draft_of, groundedness, language_match
from collector_api.evals.judge import JudgeConfig, JudgeResult, judge_prompt
from collector_api.evals.policy import forbidden_found
from collector_api.evals.rubric import fill_rubric
from collector_api.evals.spec import Evaluator, applies
from collector_api.store.evals.writes import OutcomeRow, ScoreRow, SpendRow

MAX_REASON_CHARS = 500


def policy_verdict(patterns: list[str], log: dict[str, Any]) -> Verdict:
    draft = draft_of(log)
    if draft is None:
        return Verdict(None, "no draft")
    found = forbidden_found(draft, patterns)
    if found:
        return Verdict(0.0, "forbidden: " + "; ".join(found)[:400])
    return Verdict(1.0, f"none of {len(patterns)} phrases")


def deterministic_verdict(ev: Evaluator, log: dict[str, Any]) -> Verdict:
    """The verdict of a deterministic evaluator on one log document."""
    if ev.kind == "policy":
        return policy_verdict(ev.params.get("patterns") or [], log)
    checks: dict[str, Callable[[dict[str, Any]], Verdict]] = {
        "groundedness": groundedness, "draft_complete": draft_complete, "language": language_match}
    return checks[ev.kind](log)


@dataclass
class Spend:
    """One judge's spend during this batch, against what it had spent this month."""

    evaluator: Evaluator
    before_usd: float
    cost_usd: float = 0.0
    calls: int = 0
    invalid: int = 0
    errors: int = 0
    capped: int = 0
    in_flight: int = 0
    last_cost: float = 0.0

    def may_call(self) -> bool:
        """Under the cap, counting the calls in flight at the last call's price (so concurrent
        calls overshoot the cap by at most one call's cost)."""
        cap = self.evaluator.monthly_cost_cap_usd
        return cap is None or self.before_usd + self.cost_usd + self.in_flight * self.last_cost < cap

    def row(self) -> SpendRow:
        return SpendRow(self.evaluator.id, self.cost_usd, self.calls, self.invalid, self.errors, self.capped)


@dataclass
class BatchResult:
    scores: list[ScoreRow] = field(default_factory=list)
    outcomes: list[OutcomeRow] = field(default_factory=list)
    spend: dict[int, Spend] = field(default_factory=dict)


def _key(ev: Evaluator, log: dict) -> tuple[str, int, str, int]:
    return (log["client_id"], log["id"], ev.name, ev.version)


def _store(result: BatchResult, ev: Evaluator, log: dict, verdict: Verdict, cost: float = 0.0) -> None:
    if verdict.score is None:
        result.outcomes.append(OutcomeRow(log["client_id"], log["id"], log["executed_at"], ev.name, ev.version,
                                          "not_applicable", verdict.reason[:MAX_REASON_CHARS]))
    else:
        result.scores.append(ScoreRow(log["client_id"], log["id"], log["executed_at"], ev.name, ev.version,
                                      verdict.score, verdict.reason[:MAX_REASON_CHARS], cost))


async def _judge_one(client: httpx.AsyncClient, config: JudgeConfig, slots: asyncio.Semaphore, spend: Spend,
                     log: dict, result: BatchResult) -> None:
    ev = spend.evaluator
    async with slots:
        if not spend.may_call():
            spend.capped += 1
            result.outcomes.append(OutcomeRow(log["client_id"], log["id"], log["executed_at"], ev.name, ev.version,
                                              "capped", "monthly cost cap reached"))
            return
        spend.in_flight += 1
        try:
            answer: JudgeResult = await judge_prompt(client, config, fill_rubric(ev.params.get("rubric"), log["doc"]))
        finally:
            spend.in_flight -= 1
    spend.cost_usd += answer.cost_usd
    spend.last_cost = max(spend.last_cost, answer.cost_usd)
    spend.calls += 1
    if answer.answer is not None:
        _store(result, ev, log, Verdict(answer.answer.score, answer.answer.reason), answer.cost_usd)
        return
    spend.invalid += answer.invalid
    spend.errors += not answer.invalid
    result.outcomes.append(OutcomeRow(log["client_id"], log["id"], log["executed_at"], ev.name, ev.version,
                                      "invalid" if answer.invalid else "error", (answer.error or "")[:500]))


def _deterministic_pass(logs: list[dict], evaluators: list[Evaluator], done: set[tuple[str, int, str, int]],
                        result: BatchResult) -> list[tuple[Evaluator, dict]]:
    """Score every deterministic evaluator into `result`; the (judge, log) pairs still to ask."""
    judged = []
    for log in logs:
        for ev in evaluators:
            if _key(ev, log) in done or not applies(ev, log["client_id"], log["id"], log["status"], log["workflow"]):
                continue
            if ev.is_judge:
                judged.append((ev, log))
            else:
                _store(result, ev, log, deterministic_verdict(ev, log["doc"]))
    return judged


CHUNK = 16  # logs evaluated between two yields to the event loop (~1-2 ms of CPU)


async def run_deterministic(logs: list[dict], evaluators: list[Evaluator], done: set[tuple[str, int, str, int]]
                            ) -> tuple[BatchResult, list[tuple[Evaluator, dict]]]:
    """Score every deterministic evaluator; (their results, the (judge, log) pairs still to ask).

    Runs on the event loop in chunks of CHUNK logs with a yield between them, so requests
    (ingest) interleave within ~1-2 ms. Not a worker thread: a CPU-bound thread holds the GIL
    for the whole switch interval whenever the loop lets go of it, and a request that waits for
    I/O several times would wait that long each time."""
    result = BatchResult()
    judged: list[tuple[Evaluator, dict]] = []
    for at in range(0, len(logs), CHUNK):
        judged += _deterministic_pass(logs[at:at + CHUNK], evaluators, done, result)
        await asyncio.sleep(0)
    return result, judged


async def run_judges(judged: list[tuple[Evaluator, dict]], *, judge: JudgeConfig, client: httpx.AsyncClient,
                     spent: dict[int, float]) -> BatchResult:
    """Ask the judge for every (evaluator, log) pair, at most `judge.concurrency` calls at once,
    each evaluator within its monthly cost cap (`spent`: what it spent this month before)."""
    result = BatchResult()
    slots = asyncio.Semaphore(judge.concurrency)
    calls = []
    for ev, log in judged:
        spend = result.spend.setdefault(ev.id, Spend(ev, spent.get(ev.id, 0.0)))
        calls.append(_judge_one(client, judge, slots, spend, log, result))
    await asyncio.gather(*calls)
    return result


async def evaluate_batch(logs: list[dict], evaluators: list[Evaluator], done: set[tuple[str, int, str, int]],
                         *, judge: JudgeConfig | None, client: httpx.AsyncClient | None,
                         spent: dict[int, float]) -> BatchResult:
    """Both steps at once (the deterministic results and the judge's in one BatchResult); judges
    run only with a `judge` config and `client` (without them their logs are left)."""
    result, judged = await run_deterministic(logs, evaluators, done)
    if judge is None or client is None or not judged:
        return result
    judged_result = await run_judges(judged, judge=judge, client=client, spent=spent)
    result.scores += judged_result.scores
    result.outcomes += judged_result.outcomes
    result.spend = judged_result.spend
    return result
