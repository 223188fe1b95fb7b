"""Creating, listing and versioning evaluators, for the provider's evaluators page and
`flusso-obs evals`: validated by collector_api.evals.spec, stored by
collector_api.store.evals.evaluators; each judge listed with this month's spend.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from psycopg_pool import AsyncConnectionPool

from collector_api.evals.spec import Evaluator, EvaluatorError, EvaluatorSpec, evaluator_from_row
from collector_api.store.evals.evaluators import (
    DuplicateEvaluator,
    UnknownTenant,
    bump_version,
    evaluator_rows,
    insert_evaluator,
    spend_rows,
)


@dataclass(frozen=True)
class EvaluatorStatus:
    evaluator: Evaluator
    month_cost_usd: float
    calls: int
    invalid: int
    errors: int
    capped: int

    @property
    def at_cap(self) -> bool:
        cap = self.evaluator.monthly_cost_cap_usd
        return cap is not None and self.month_cost_usd >= cap


async def create_evaluator(pool: AsyncConnectionPool, spec: EvaluatorSpec) -> Evaluator:
    """Store `spec`; EvaluatorError (field `client` or `name`) for an unknown tenant or a name in use."""
    try:
        return evaluator_from_row(await insert_evaluator(pool, spec))
    except UnknownTenant as exc:
        raise EvaluatorError("client", f"no tenant {exc.client_id!r} (see `flusso-obs keys list`)") from None
    except DuplicateEvaluator as exc:
        raise EvaluatorError("name", f"an evaluator named {exc.name!r} exists") from None


async def list_evaluators(pool: AsyncConnectionPool, now: datetime | None = None) -> list[EvaluatorStatus]:
    """Every evaluator with this month's (UTC) judge spend and counts."""
    month = (now or datetime.now(UTC)).astimezone(UTC).date().replace(day=1)
    spend = await spend_rows(pool, month)
    out = []
    for row in await evaluator_rows(pool):
        s = spend.get(row["id"], {})
        out.append(EvaluatorStatus(evaluator_from_row(row), s.get("cost_usd", 0.0), s.get("calls", 0),
                                   s.get("invalid", 0), s.get("errors", 0), s.get("capped", 0)))
    return out


async def new_version(pool: AsyncConnectionPool, name: str) -> Evaluator | None:
    """The evaluator with its version raised by one, or None when there is no such name."""
    row = await bump_version(pool, name)
    return evaluator_from_row(row) if row else None
