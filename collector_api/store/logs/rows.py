"""The row type the collector builds from a decoded log and the write path inserts.

Its own module so the pure decoding side (`collector_api.contract.prepare`) needs nothing of the writer.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True, slots=True)
class Experiment:
    """The experiment tags of a log run on a dataset item (docs/experiments.md)."""

    id: str  # 32 lowercase hex characters, chosen by the client's runner
    name: str
    item_id: int | None = None
    dataset_id: int | None = None
    dataset_name: str | None = None


@dataclass(slots=True)  # not frozen: a frozen __init__ is slower per row (docs/benchmarks-ingest.md)
class LogRow:
    """A validated workflow log ready to store; `log_json` is the document as JSON text.

    `log_json_canonical` is False when `log_json` is the text as the sender wrote it (valid JSON
    that PostgreSQL may still refuse, e.g. a number like 1e-20000 beyond `numeric`)."""

    client_id: str
    ticket_id: str
    status: str
    executed_at: datetime
    trace_id: str
    log_json: str
    environment: str | None = None
    workflow_version: str | None = None
    resolution_status: str | None = None
    overall_confidence: float | None = None
    hallucination_risk: float | None = None
    react_iterations: int | None = None
    execution_time_seconds: float | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cost_usd: float | None = None
    complete: bool = True
    node_durations: dict[str, float] = field(default_factory=dict)
    log_json_canonical: bool = True
    critical_path: str | None = None  # JSON text (collector_api.contract.derived), computed once at ingest
    usage_by_model: str | None = None  # JSON text (collector_api.contract.derived)
    session_key: str | None = None  # collector_api.contract.sessions, derived at ingest
    draft_excerpt: str | None = None  # collector_api.contract.derived, at ingest ('' no draft; None: derive later)
    experiment: Experiment | None = None  # the run that produced the log (identification.experiment)
    index: int = 0  # the record's position in its request, for error messages
