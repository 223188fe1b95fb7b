"""The logs receivers: POST /v1/logs (OTLP/HTTP logs) and POST /api/v1/logs (the seed's legacy
endpoint). Only what is theirs is here (decoding records into rows, storing them, the legacy
answer); the edge (collector_api.http.edge) applies every shared rule."""
from __future__ import annotations

import logging

from fastapi.responses import JSONResponse, Response
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)

from collector_api.contract.prepare import Rejected, prepare_row_safely
from collector_api.http.edge import mount
from collector_api.http.errors import CollectorError
from collector_api.http.openapi_docs import LEGACY_OK, OTLP_BODY, OTLP_OK, error_responses, legacy_body
from collector_api.http.otlp import JSON, PROTOBUF
from collector_api.http.pipeline import Ingest, OtlpSignal, Outcome, Receiver, Refusal
from collector_api.logs.decode import iter_records, parse_legacy_json
from collector_api.store.logs.rows import LogRow
from collector_api.store.logs.writes import StoredLog, insert_isolating

logger = logging.getLogger(__name__)
LOGS = OtlpSignal(ExportLogsServiceRequest, ExportLogsServiceResponse, "rejected_log_records", "log records", "record",
                  grpc_service="opentelemetry.proto.collector.logs.v1.LogsService")


def _refusal(rejected: Rejected) -> Refusal:
    return Refusal(rejected.index, rejected.reason, "tenant_mismatch" if rejected.tenant_mismatch else "invalid")


def decode_logs(request: ExportLogsServiceRequest, ingest: Ingest) -> tuple[int, list[LogRow], list[Refusal]]:
    """(records, rows to store, refusals) of one export request; each parsed document is dropped
    once its row is built, so one document is alive at a time instead of 512."""
    rows, refused, total = [], [], 0
    for record in iter_records(request):
        total += 1
        if record.document is None:
            refused.append(Refusal(record.index, record.reason or "unreadable record"))
            continue
        result = prepare_row_safely(record.index, record.document, ingest.tenant, record.trace_id,
                                    may_hold_nul=record.may_hold_nul, source_text=record.text)
        if isinstance(result, Rejected):
            refused.append(_refusal(result))
        else:
            rows.append(result)
    return total, rows, refused


async def store_rows(ingest: Ingest, rows: list[LogRow]) -> tuple[list[StoredLog], list[Refusal]]:
    """The stored logs (after COMMIT), and the rows PostgreSQL refused a value of (the others are
    stored all the same)."""
    state, tenant = ingest.state, ingest.tenant
    stored, refused = await insert_isolating(state.pool, tenant, rows)
    by_trace = {(r.trace_id, r.index) for r in rows}
    erased = [s for s in stored if s.erased]
    stored = [s for s in stored if not s.erased]
    new = sum(not s.duplicate for s in stored)
    state.metrics.stored.labels(tenant).inc(new)
    state.metrics.duplicates.labels(tenant).inc(len(stored) - new)
    for row, reason in refused:
        logger.warning("record %d of tenant %s (trace %s) refused by PostgreSQL: %s", row.index, tenant,
                       row.trace_id, reason)
    erased_traces = {s.trace_id for s in erased}
    return stored, [Refusal(row.index, f"PostgreSQL refused a value of this log: {reason}", "refused_by_database")
                    for row, reason in refused] + [
        Refusal(index, ERASED, "erased") for trace_id, index in sorted(by_trace) if trace_id in erased_traces]


ERASED = "this log's ticket, trace or customer was erased (POST /api/v1/erasures): it is not stored again"


async def handle_logs(ingest: Ingest, decoded: tuple[int, list[LogRow], list[Refusal]]) -> Outcome:
    total, rows, refused = decoded
    stored: list[StoredLog] = []
    if rows:
        stored, refused_by_db = await store_rows(ingest, rows)
        refused = sorted(refused + refused_by_db, key=lambda r: r.index)
    return Outcome(total, len(stored), refused)


def decode_legacy(document: dict, ingest: Ingest) -> LogRow:
    result = prepare_row_safely(0, document, ingest.tenant, None, legacy_key=ingest.headers.get("idempotency-key"),
                                legacy=True, may_hold_nul=True)  # low volume: always clean
    if isinstance(result, Rejected):
        refusal = _refusal(result)
        ingest.state.metrics.rejected.labels(refusal.label, ingest.tenant).inc()
        raise CollectorError(f"invalid workflow log: {result.reason}", status=403 if result.tenant_mismatch else 422)
    return result


async def handle_legacy(ingest: Ingest, row: LogRow) -> Outcome:
    stored, refused = await store_rows(ingest, [row])
    if refused and refused[0].label == "erased":
        ingest.state.metrics.rejected.labels("erased", ingest.tenant).inc()
        raise CollectorError(ERASED, status=410)
    if refused:
        ingest.state.metrics.rejected.labels(refused[0].label, ingest.tenant).inc()
        raise CollectorError(f"invalid workflow log: {refused[0].reason}", status=422)
    return Outcome(1, 1, body=stored[0])


def legacy_answer(outcome: Outcome, _mtype: str) -> Response:
    stored: StoredLog = outcome.body
    return JSONResponse({"status": "duplicate" if stored.duplicate else "stored", "id": stored.id,
                         "trace_id": stored.trace_id, "duplicate": stored.duplicate})


OTLP_LOGS = Receiver(
    name="otlp", path="/v1/logs", summary="OTLP/HTTP logs export (protobuf or JSON)",
    media_types=(PROTOBUF, JSON), signal=LOGS, decode=decode_logs, handle=handle_logs,
    openapi={"openapi_extra": OTLP_BODY,
             "responses": {**OTLP_OK, **error_responses(400, 401, 408, 413, 415, 429, 503, otlp=True)}})
LEGACY_LOGS = Receiver(
    name="legacy", path="/api/v1/logs", summary="Legacy: one workflow-log JSON document (the seed's shipper)",
    media_types=(JSON, ""), parse=parse_legacy_json, decode=decode_legacy, handle=handle_legacy,
    respond=legacy_answer,
    openapi={"openapi_extra": legacy_body(),
             "responses": {**LEGACY_OK, **error_responses(400, 401, 403, 408, 410, 413, 415, 422, 429, 503)}})


def logs_routers() -> list:
    return [mount(OTLP_LOGS), mount(LEGACY_LOGS)]
