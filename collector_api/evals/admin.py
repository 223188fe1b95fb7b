"""Creating, listing, versioning, disabling/enabling and deleting evaluators, for the provider's evaluators page and
`flusso-obs evals`: validated by collector_api.evals.spec, stored by
collector_api.store.evals.evaluators; each judge listed with this month's spend.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from psycopg_pool import AsyncConnectionPool

from collector_api.evals.spec import Evaluator, EvaluatorError, EvaluatorSpec, evaluator_from_row, is_evaluator_name
from collector_api.store.evals.evaluators import (
    DuplicateEvaluator,
    UnknownTenant,
    bump_version,
    evaluator_by_name,
    evaluator_rows,
    insert_evaluator,
    mark_deleted,
    set_enabled,
    spend_rows,
)

ACTIONS = ("disable", "enable", "delete")


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
        if exc.deleted:
            raise EvaluatorError("name", f"an evaluator named {exc.name!r} was deleted and its scores keep that"
                                         " name: pick another name") from None
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


async def change_evaluator(pool: AsyncConnectionPool, name: str, action: str,
                           client_id: str | None = None) -> Evaluator:
    """Disable, enable or delete the evaluator `name` (`action` in ACTIONS); the evaluator as it was
    before. With `client_id`, only if it is that tenant's own evaluator (a guard for scripts).
    EvaluatorError (field `name` or `client`) when there is no such evaluator or it is not that
    tenant's. Deleting keeps its scores (docs/evaluations.md)."""
    if action not in ACTIONS:
        raise EvaluatorError("action", f"expected one of {', '.join(ACTIONS)}, got {action[:20]!r}")
    row = await evaluator_by_name(pool, name) if is_evaluator_name(name) else None
    if row is None:
        raise EvaluatorError("name", f"no evaluator {name[:64]!r} (see `flusso-obs evals list`)")
    ev = evaluator_from_row(row)
    if client_id is not None and not client_id.strip():
        raise EvaluatorError("client", "expected a tenant id, got an empty value")
    if client_id is not None and ev.client_id != client_id:
        owner = f"tenant {ev.client_id!r}'s" if ev.client_id else "for every tenant"
        raise EvaluatorError("client", f"evaluator {name!r} is {owner}, not tenant {client_id[:64]!r}'s")
    done = await (mark_deleted(pool, name) if action == "delete" else set_enabled(pool, name, action == "enable"))
    if not done:  # deleted meanwhile
        raise EvaluatorError("name", f"no evaluator {name[:64]!r} (see `flusso-obs evals list`)")
    return ev
