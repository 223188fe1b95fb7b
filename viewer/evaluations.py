"""Evaluation data of the pages, built once for HTML and JSON: scores of listed tickets, one
ticket's scores, the overview's score-over-time series and the judge calibration against the
reviewers' verdicts. Reads go through collector_api.store.evals.reads (tenant-filtered, RLS)."""
from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from collector_api.evals.calibration import judge_calibration
from collector_api.store.core.db import scoped_transaction
from collector_api.store.core.scope import tenant_of
from collector_api.store.evals.reads import (
    evaluator_names,
    score_series,
    scores_by_log,
    ticket_scores,
    verdict_histogram,
)

from .auth import Principal
from .context import ViewerContext


async def attach_scores(ctx: ViewerContext, principal: Principal, rows: list[dict]) -> None:
    """Each row gets `scores`: {evaluator: latest score}."""
    if not rows:
        return
    async with scoped_transaction(ctx.pool, principal.scope) as conn:
        scores = await scores_by_log(conn, tenant_of(principal.scope), [r["id"] for r in rows])
    for r in rows:
        r["scores"] = scores.get(r["id"], {})


async def scored_rows(ctx: ViewerContext, principal: Principal, rows: AsyncIterator[dict],
                      batch: int = 500) -> AsyncIterator[dict]:
    """`rows` again, each with `scores` (looked up `batch` rows at a time), for the exports."""
    pending: list[dict] = []
    async for row in rows:
        pending.append(row)
        if len(pending) >= batch:
            await attach_scores(ctx, principal, pending)
            for r in pending:
                yield r
            pending = []
    await attach_scores(ctx, principal, pending)
    for r in pending:
        yield r


async def export_evaluators(ctx: ViewerContext, principal: Principal, client: str | None) -> list[str]:
    """The evaluator names an export has a column for (those that may score what it shows)."""
    return await evaluator_names(ctx.pool, principal.scope, client)


async def ticket_evaluations(ctx: ViewerContext, principal: Principal, log_id: int) -> list[dict[str, Any]]:
    """One ticket's evaluations: per evaluator its latest score and reason (or why none)."""
    rows = await ticket_scores(ctx.pool, principal.scope, log_id)
    return [{"evaluator": r["evaluator"], "version": r["version"], "score": r["score"], "reason": r["reason"],
             "cost_usd": r["cost_usd"], "outcome": r["outcome"], "at": r["created_at"].isoformat(),
             "attempts": r["attempts"], "deleted": r["deleted"],
             "next_attempt_at": r["next_attempt_at"].isoformat() if r["next_attempt_at"] else None} for r in rows]


async def overview_evaluations(ctx: ViewerContext, principal: Principal, start: datetime, end: datetime,
                               client: str | None) -> dict[str, Any]:
    """Per evaluator the daily mean score, and each evaluator's calibration against verdicts."""
    series, histogram = await asyncio.gather(score_series(ctx.pool, principal.scope, start, end, client),
                                             verdict_histogram(ctx.pool, principal.scope, start, end, client))
    return {"series": series, "calibration": judge_calibration(histogram)}
