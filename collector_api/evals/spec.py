"""Evaluators as people define them: fields, validation, sampling and filters. Pure (no I/O).

`validate_evaluator` checks every field (EvaluatorError names the first bad one); the CLI and
the provider's evaluators page both call it before collector_api.store.evals.evaluators stores
the definition. `applies` decides whether an evaluator looks at a log: its tenant, its status
and workflow filters, and a sampling decision that is a pure function of (evaluator, version,
tenant, log id), so a log reconsidered later gets the same answer.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from collector_api.contract.numbers import finite_number
from collector_api.evals.policy import PolicyError, check_patterns

DETERMINISTIC_KINDS = ("groundedness", "policy", "draft_complete", "language")
KINDS = (*DETERMINISTIC_KINDS, "judge")
STATUSES = ("SUCCESS", "PARTIAL", "FAILED")
MAX_RUBRIC_CHARS = 8000
MAX_COST_CAP_USD = 1_000_000.0
_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")


def is_evaluator_name(text: str) -> bool:
    """Whether `text` has the form of an evaluator's name (a-z, 0-9, '_', '.', '-', at most 64)."""
    return bool(_NAME.fullmatch(text))
_CLIENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class EvaluatorError(ValueError):
    """Invalid evaluator input; `field` names the offending field."""

    def __init__(self, field_name: str, message: str):
        super().__init__(f"{field_name}: {message}")
        self.field = field_name


@dataclass(frozen=True)
class EvaluatorSpec:
    name: str
    kind: str
    client_id: str | None = None
    sample_rate: float = 1.0
    filter_workflow: str | None = None
    filter_status: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    monthly_cost_cap_usd: float | None = None


@dataclass(frozen=True)
class Evaluator(EvaluatorSpec):
    id: int = 0
    version: int = 1
    enabled: bool = True
    created_at: datetime | None = None

    @property
    def is_judge(self) -> bool:
        return self.kind == "judge"


def evaluator_from_row(row: dict[str, Any]) -> Evaluator:
    return Evaluator(**{k: row[k] for k in ("id", "name", "kind", "version", "client_id", "sample_rate",
                                           "filter_workflow", "filter_status", "params", "monthly_cost_cap_usd",
                                           "enabled", "created_at")})


def _rate(value: object) -> float:
    try:
        rate = finite_number(float(str(value).strip() or "1"))
    except ValueError:
        rate = None
    if rate is None or not 0 < rate <= 1:
        raise EvaluatorError("sample_rate", f"expected a number in (0, 1], got {str(value)[:40]!r}")
    return rate


def _cap(kind: str, value: object) -> float | None:
    text = "" if value is None else str(value).strip()
    if kind != "judge":
        if text:
            raise EvaluatorError("cost_cap", "only a judge has a cost cap")
        return None
    try:
        cap = finite_number(float(text))
    except ValueError:
        cap = None
    if cap is None or not 0 <= cap <= MAX_COST_CAP_USD:
        raise EvaluatorError("cost_cap", f"a judge needs a monthly cost cap in USD (0 to {MAX_COST_CAP_USD:g}),"
                                         f" got {text[:40]!r}")
    return cap


def _params(kind: str, patterns: list[str] | None, rubric: str | None) -> dict[str, Any]:
    if kind == "policy":
        try:
            return {"patterns": check_patterns(patterns)}
        except PolicyError as exc:
            raise EvaluatorError("patterns", str(exc)) from None
    if patterns:
        raise EvaluatorError("patterns", "only a policy evaluator has phrases")
    if kind == "judge":
        rubric = (rubric or "").strip()
        if len(rubric) > MAX_RUBRIC_CHARS:
            raise EvaluatorError("rubric", f"at most {MAX_RUBRIC_CHARS} characters")
        return {"rubric": rubric} if rubric else {}
    if rubric and rubric.strip():
        raise EvaluatorError("rubric", "only a judge has a rubric")
    return {}


def validate_evaluator(*, name: str, kind: str, client_id: str | None = None, sample_rate: object = 1.0,
                       workflow: str | None = None, status: str | None = None, patterns: list[str] | None = None,
                       rubric: str | None = None, cost_cap: object = None) -> EvaluatorSpec:
    """Check every field; raises EvaluatorError naming the first bad one."""
    name = (name or "").strip()
    if not _NAME.match(name):
        raise EvaluatorError("name", "expected 1 to 64 of a-z, 0-9, '_', '.', '-' (starting with a letter or digit)")
    if kind not in KINDS:
        raise EvaluatorError("kind", f"expected one of {', '.join(KINDS)}, got {str(kind)[:40]!r}")
    client_id = (client_id or "").strip() or None
    if client_id is not None and not _CLIENT.match(client_id):
        raise EvaluatorError("client", "expected a client id (letters, digits, '_', '.', '-')")
    workflow = (workflow or "").strip() or None
    if workflow is not None and (len(workflow) > 200 or any(ord(c) < 32 for c in workflow)):
        raise EvaluatorError("workflow", "expected at most 200 printable characters")
    status = (status or "").strip().upper() or None
    if status is not None and status not in STATUSES:
        raise EvaluatorError("status", f"expected one of {', '.join(STATUSES)}, got {status[:20]!r}")
    return EvaluatorSpec(name=name, kind=kind, client_id=client_id, sample_rate=_rate(sample_rate),
                         filter_workflow=workflow, filter_status=status, params=_params(kind, patterns, rubric),
                         monthly_cost_cap_usd=_cap(kind, cost_cap))


def sampled(ev: Evaluator, client_id: str, log_id: int) -> bool:
    """The same answer every time for one (evaluator, version, tenant, log)."""
    if ev.sample_rate >= 1:
        return True
    digest = hashlib.blake2b(f"{ev.name}\x00{ev.version}\x00{client_id}\x00{log_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64 < ev.sample_rate


def applies(ev: Evaluator, client_id: str, log_id: int, status: str, workflow: str | None) -> bool:
    """Whether `ev` evaluates this log: tenant, status and workflow filters, then the sample."""
    if not ev.enabled or (ev.client_id is not None and ev.client_id != client_id):
        return False
    if ev.filter_status is not None and ev.filter_status != status:
        return False
    if ev.filter_workflow is not None and ev.filter_workflow != workflow:
        return False
    return sampled(ev, client_id, log_id)
