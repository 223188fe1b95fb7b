"""From decoded documents to rows: schema, tenant, ids, promoted columns. Pure except logging."""
from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from typing import Any

import orjson

from collector_api.contract.derived import derived_json, draft_excerpt
from collector_api.contract.numbers import finite_number
from collector_api.contract.schema import schema_error
from collector_api.contract.sessions import session_key
from collector_api.contract.timestamps import out_of_bounds, parse_executed_at
from collector_api.store.logs.rows import Experiment, LogRow

logger = logging.getLogger(__name__)
_TRACE_ID = re.compile(r"^[0-9a-f]{32}$")
_SURROGATE = re.compile("[\ud800-\udfff]")
_INT_MIN, _UINT_MAX = -(2**63), 2**64 - 1
MAX_TICKET_ID = 256


@dataclass(frozen=True)
class Rejected:
    index: int
    reason: str
    tenant_mismatch: bool = False


def clean_text(value: str) -> str:
    """Text PostgreSQL can store: no U+0000 (jsonb refuses it), no lone UTF-16 surrogates
    (a JSON `\\ud800` escape is not text; it becomes U+FFFD)."""
    if "\x00" in value:
        value = value.replace("\x00", "")
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            value = _SURROGATE.sub("\ufffd", value)
    return value


def strip_nul(value: Any) -> Any:
    """Every string and key through clean_text; non-finite numbers become null."""
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, dict):
        return {strip_nul(k): strip_nul(v) for k, v in value.items()}
    if isinstance(value, list):
        return [strip_nul(v) for v in value]
    if isinstance(value, float):
        return finite_number(value)
    if isinstance(value, int) and not isinstance(value, bool) and not _INT_MIN <= value <= _UINT_MAX:
        return finite_number(value)  # the stdlib parser reads 1e400-sized integers; orjson can't write them
    return value


INT4_MAX, INT8_SAFE = 2**31 - 1, 2**62
# The most a figure of one log may claim in the columns the overview, rollups and alerts sum:
# beyond it the column is NULL (the document keeps the value). Sums of claimed 1e308 costs or
# 2**62 tokens overflowed float8/bigint and failed the rollup job, one statement for every tenant.
FIGURE_MAX = 10**12


def _figure(value: Any) -> float | None:
    number = finite_number(value)
    return number if number is None or abs(number) <= FIGURE_MAX else None


def _integer(value: Any, limit: int = INT8_SAFE) -> int | None:
    """An integer column's value: None unless a finite number within +-`limit` (the column's type)."""
    number = finite_number(value)
    if number is None or abs(number) > limit:
        return None
    return int(number)


def _text(value: Any, limit: int = 200) -> str | None:
    return value[:limit] if isinstance(value, str) and value else None


def legacy_trace_id(client_id: str, ticket_id: str, executed_at: str, idempotency_key: str | None) -> str:
    """Stable id for a legacy log without trace_id: the Idempotency-Key, else a content hash."""
    if idempotency_key:
        return "idem:" + hashlib.sha256(f"{client_id}\x1f{idempotency_key}".encode()).hexdigest()
    return "legacy:" + hashlib.sha256(f"{client_id}\x1f{ticket_id}\x1f{executed_at}".encode()).hexdigest()


def prepare_row_safely(index: int, document: dict, tenant: str, record_trace_id: str | None,
                       **options) -> LogRow | Rejected:
    """prepare_row, but a value it did not foresee rejects this record instead of failing the
    whole request (and with it every valid record of the batch)."""
    try:
        return prepare_row(index, document, tenant, record_trace_id, **options)
    except (ValueError, TypeError, OverflowError, RecursionError, KeyError) as exc:
        logger.warning("record %d of tenant %s (trace %s) refused: %s: %s", index, tenant, record_trace_id,
                       type(exc).__name__, exc)
        return Rejected(index, f"unusable value in the log ({type(exc).__name__}: {str(exc)[:120]})")


def prepare_row(index: int, document: dict, tenant: str, record_trace_id: str | None, *,
                legacy_key: str | None = None, legacy: bool = False, may_hold_nul: bool = True,
                source_text: str | None = None) -> LogRow | Rejected:
    """Validate one document for `tenant`; the row to store, or why it is refused.

    `may_hold_nul=False` (the JSON text had no \\u0000 escape and orjson parsed it, so it holds
    no lone surrogate either) skips the cleaning walk. `source_text`, the JSON text `document`
    was parsed from, is stored as sent when nothing below had to change the document (saves
    re-serializing ~8 KB; the store falls back to our own serialization if PostgreSQL refuses it)."""
    if may_hold_nul:
        document = strip_nul(document)
    error = schema_error(document)
    if error:
        return Rejected(index, error)
    claimed = _claim_tenant(index, document["identification"], tenant)
    if isinstance(claimed, Rejected):
        return claimed
    info = document["ticket_info"]
    ticket_id = info["ticket_id"]
    if not ticket_id or len(ticket_id) > MAX_TICKET_ID:
        return Rejected(index, f"ticket_info.ticket_id must be 1-{MAX_TICKET_ID} characters")
    try:
        executed_at = parse_executed_at(info["executed_at"])
    except (ValueError, TypeError, OverflowError):  # year 1 at +05:00 overflows in UTC
        return Rejected(index, f"ticket_info.executed_at {str(info['executed_at'])[:40]!r}"
                               " is not an ISO 8601 date-time")
    too_far = out_of_bounds(executed_at)
    if too_far:
        return Rejected(index, f"ticket_info.executed_at {info['executed_at'][:40]!r} {too_far}"
                               " (accepted: 2000-01-01 to now + 1 day)")
    settled = _settle_trace_id(document, record_trace_id, tenant, legacy_key, legacy)
    if settled is None:
        return Rejected(index, "trace_id must be 32 lowercase hex characters (in the body or on the log record)")
    trace_id, trace_changed = settled
    changed = claimed != tenant or trace_changed
    log_json = source_text if source_text is not None and not changed else orjson.dumps(document).decode()
    return _build_row(index, document, tenant, ticket_id, executed_at, trace_id, log_json,
                      canonical=source_text is None or changed)


def _claim_tenant(index: int, ident: dict, tenant: str) -> Any:
    """The client_id the document claimed (now set to `tenant`), or Rejected for another tenant's."""
    claimed = ident.get("client_id")
    if claimed not in (None, "") and claimed != tenant:
        return Rejected(index, f"identification.client_id {str(claimed)[:64]!r} does not match the API key's tenant",
                        tenant_mismatch=True)
    ident["client_id"] = tenant
    return claimed


def _settle_trace_id(document: dict, record_trace_id: str | None, tenant: str, legacy_key: str | None,
                     legacy: bool) -> tuple[str, bool] | None:
    """(the row's trace id, whether the document's trace_id had to change), or None when unusable.

    The body's trace_id wins over the log record's; a legacy log without one gets a stable id."""
    sent_trace_id = document.get("trace_id")
    trace_id = sent_trace_id or record_trace_id
    if isinstance(trace_id, str):
        trace_id = trace_id.lower()
    if trace_id is None and legacy:
        info = document["ticket_info"]
        trace_id = legacy_trace_id(tenant, info["ticket_id"], info["executed_at"], legacy_key)
    elif not isinstance(trace_id, str) or not _TRACE_ID.match(trace_id):
        return None
    document["trace_id"] = trace_id if _TRACE_ID.match(trace_id) else sent_trace_id
    if document["trace_id"] is None:
        document.pop("trace_id")
    return trace_id, document.get("trace_id") != sent_trace_id


def _build_row(index: int, document: dict, tenant: str, ticket_id: str, executed_at, trace_id: str,
               log_json: str, *, canonical: bool) -> LogRow:
    ident, info, metrics, outcome = (document["identification"], document["ticket_info"], document["metrics"],
                                     document["outcome"])
    nodes = metrics.get("node_durations_ms")
    node_durations = {}
    if isinstance(nodes, dict):
        node_durations = {str(k)[:200]: float(v) for k, v in nodes.items() if _figure(v) is not None}
    critical, usage = derived_json(document)
    exec_seconds = _figure(info.get("execution_time_seconds"))
    if exec_seconds is None:
        exec_seconds = _figure(metrics.get("execution_time_seconds"))
    return LogRow(
        client_id=tenant,
        ticket_id=ticket_id,
        status=outcome["status"],
        executed_at=executed_at,
        trace_id=trace_id,
        log_json=log_json,
        log_json_canonical=canonical,
        environment=_text(ident.get("environment")),
        workflow_version=_text(ident.get("workflow_version")),
        resolution_status=_text(outcome.get("resolution_status")),
        overall_confidence=finite_number(metrics.get("overall_confidence")),
        hallucination_risk=finite_number(metrics.get("hallucination_risk")),
        react_iterations=_integer(metrics.get("react_iterations"), INT4_MAX),  # an int4 column
        execution_time_seconds=exec_seconds,
        input_tokens=_integer(metrics.get("input_tokens"), FIGURE_MAX),
        output_tokens=_integer(metrics.get("output_tokens"), FIGURE_MAX),
        cost_usd=_figure(metrics.get("cost_usd")),
        complete=outcome.get("complete") is not False,
        node_durations=node_durations,
        critical_path=critical,
        usage_by_model=usage,
        session_key=session_key(tenant, document),
        draft_excerpt=draft_excerpt(document),
        experiment=experiment_tags(ident.get("experiment")),
        index=index,
    )


def experiment_tags(tags: Any) -> Experiment | None:
    """The log's `identification.experiment` (set by otel_bridge.experiments), or None when absent
    or unusable: a bad tag never refuses the log, it only leaves it out of the experiment."""
    if not isinstance(tags, dict):
        return None
    exp_id = tags.get("id")
    name = tags.get("name")
    if not isinstance(exp_id, str) or not _TRACE_ID.match(exp_id) or not isinstance(name, str) or not name:
        return None
    return Experiment(id=exp_id, name=name[:128], item_id=_id(tags.get("item_id")),
                      dataset_id=_id(tags.get("dataset_id")), dataset_name=_text(tags.get("dataset"), 64))


def _id(value: Any) -> int | None:
    """A positive bigint id, else None."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < INT8_SAFE:
        return None
    return value
