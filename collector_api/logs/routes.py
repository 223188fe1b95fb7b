"""POST /v1/logs (OTLP/HTTP logs) and POST /api/v1/logs (the seed's legacy endpoint)."""
from __future__ import annotations

import logging

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from google.protobuf import json_format
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse
from starlette.concurrency import run_in_threadpool

from collector_api.contract.prepare import Rejected, prepare_row_safely
from collector_api.http.admission import CollectorState
from collector_api.http.auth import IngestKey, State
from collector_api.http.body import inflate, read_body, read_wire
from collector_api.http.drain import refuse_when_draining
from collector_api.http.errors import CollectorError, Unavailable, UnsupportedMedia
from collector_api.http.openapi_docs import LEGACY_OK, OTLP_BODY, OTLP_OK, error_responses, legacy_body
from collector_api.http.responses import JSON, PROTOBUF, CollectorRoute, OtlpRoute, media_type
from collector_api.logs.decode import (
    DecodeError,
    iter_records,
    parse_legacy_json,
    parse_otlp_json,
    parse_otlp_protobuf,
)
from collector_api.store.core.db import StoreUnavailable
from collector_api.store.logs.rows import LogRow
from collector_api.store.logs.writes import StoredLog, insert_isolating

logger = logging.getLogger(__name__)
# While the process drains (collector_api.http.drain), every ingest route answers 503 + Retry-After.
_DRAIN = [Depends(refuse_when_draining)]
otlp_router = APIRouter(route_class=OtlpRoute, dependencies=_DRAIN)  # errors as google.rpc.Status (OTLP)
legacy_router = APIRouter(route_class=CollectorRoute, dependencies=_DRAIN)  # errors as {"detail": ...}


def _prepare_otlp(raw: bytes, encoding: str, limit: int, mtype: str,
                  tenant: str) -> tuple[int, list[LogRow], list[Rejected]]:
    body = inflate(raw, encoding, limit)
    request = parse_otlp_protobuf(body) if mtype == PROTOBUF else parse_otlp_json(body)
    del body
    rows, rejected, total = [], [], 0
    for record in iter_records(request):  # each parsed document is dropped once its row is built
        total += 1
        if record.document is None:
            rejected.append(Rejected(record.index, record.reason or "unreadable record"))
            continue
        result = prepare_row_safely(record.index, record.document, tenant, record.trace_id,
                                    may_hold_nul=record.may_hold_nul, source_text=record.text)
        (rejected if isinstance(result, Rejected) else rows).append(result)
    return total, rows, rejected


async def _store(state: CollectorState, tenant: str, rows: list[LogRow]) -> tuple[list[StoredLog], list[Rejected]]:
    """The stored logs, and the rows PostgreSQL refused a value of (as rejections: the others
    are stored all the same)."""
    try:
        stored, refused = await insert_isolating(state.pool, tenant, rows)
    except StoreUnavailable as exc:
        logger.warning("database unavailable while storing %d logs for %s: %s", len(rows), tenant, exc)
        state.metrics.rejected.labels("db_unavailable", tenant).inc(len(rows))
        raise Unavailable("database unavailable; retry later (logs already stored are not stored twice)",
                          retry_after=state.settings.flusso_retry_after_seconds) from None
    new = sum(not s.duplicate for s in stored)
    state.metrics.stored.labels(tenant).inc(new)
    state.metrics.duplicates.labels(tenant).inc(len(stored) - new)
    for row, reason in refused:
        logger.warning("record %d of tenant %s (trace %s) refused by PostgreSQL: %s", row.index, tenant,
                       row.trace_id, reason)
        state.metrics.rejected.labels("refused_by_database", tenant).inc()
    return stored, [Rejected(row.index, f"PostgreSQL refused a value of this log: {reason}") for row, reason in refused]


def _count_rejections(state: CollectorState, tenant: str, rejected: list[Rejected]) -> None:
    for r in rejected:
        state.metrics.rejected.labels("tenant_mismatch" if r.tenant_mismatch else "invalid", tenant).inc()


async def _decode_and_store(request: Request, state: CollectorState, tenant: str,
                            mtype: str) -> tuple[int, list, list[Rejected]]:
    """(records received, stored logs, rejections sorted by record index) of one OTLP request."""
    limit = state.settings.flusso_max_body_bytes
    raw, encoding = await read_wire(request, limit, state.settings.flusso_body_timeout_seconds)  # still compressed
    async with state.work_slots:
        try:
            async with state.decode_slot:
                total, rows, rejected = await run_in_threadpool(_prepare_otlp, raw, encoding, limit, mtype, tenant)
        except DecodeError as exc:
            state.metrics.rejected.labels("undecodable", tenant).inc()
            raise CollectorError(str(exc)) from None
        del raw
        state.metrics.received.labels("otlp").inc(total)
        state.metrics.batch_size.observe(total)
        _count_rejections(state, tenant, rejected)
        if rows:
            stored, refused = await _store(state, tenant, rows)
            if refused:
                rejected = sorted(rejected + refused, key=lambda r: r.index)
                rows = stored
    return total, rows, rejected


def _export_response(total: int, rejected: list[Rejected], mtype: str) -> Response:
    response = ExportLogsServiceResponse()
    if rejected:
        first = rejected[0]
        response.partial_success.rejected_log_records = len(rejected)
        response.partial_success.error_message = (
            f"{len(rejected)} of {total} log records rejected; first: record {first.index}: {first.reason}")
    if mtype == PROTOBUF:
        return Response(response.SerializeToString(), media_type=PROTOBUF)
    return Response(json_format.MessageToJson(response, indent=None), media_type=JSON)


@otlp_router.post("/v1/logs", summary="OTLP/HTTP logs export (protobuf or JSON)", openapi_extra=OTLP_BODY,
                  responses={**OTLP_OK, **error_responses(400, 401, 408, 413, 415, 429, 503, otlp=True)})
async def export_logs(request: Request, state: State, key: IngestKey) -> Response:
    mtype = media_type(request)
    if mtype not in (PROTOBUF, JSON):
        raise UnsupportedMedia(f"unsupported Content-Type {mtype!r}: use {PROTOBUF} or {JSON}")
    async with state.admitted(key.client_id):
        total, rows, rejected = await _decode_and_store(request, state, key.client_id, mtype)
    if not rows and rejected:
        first = rejected[0]
        raise CollectorError(f"all {total} log records rejected; record {first.index}: {first.reason}")
    return _export_response(total, rejected, mtype)


async def _store_legacy(request: Request, state: CollectorState, tenant: str) -> StoredLog:
    body = await read_body(request, state.settings.flusso_max_body_bytes, state.settings.flusso_body_timeout_seconds)
    state.metrics.received.labels("legacy").inc()
    try:
        document = parse_legacy_json(body)
    except DecodeError as exc:
        state.metrics.rejected.labels("undecodable", tenant).inc()
        raise CollectorError(str(exc)) from None
    async with state.work_slots:
        result = await run_in_threadpool(prepare_row_safely, 0, document, tenant, None,
                                         legacy_key=request.headers.get("idempotency-key"), legacy=True,
                                         may_hold_nul=True)  # low volume: always clean
        if isinstance(result, Rejected):
            _count_rejections(state, tenant, [result])
            raise CollectorError(f"invalid workflow log: {result.reason}",
                                 status=403 if result.tenant_mismatch else 422)
        stored, refused = await _store(state, tenant, [result])
        if refused:
            raise CollectorError(f"invalid workflow log: {refused[0].reason}", status=422)
    return stored[0]


@legacy_router.post("/api/v1/logs", summary="Legacy: one workflow-log JSON document (the seed's shipper)",
                    openapi_extra=legacy_body(),
                    responses={**LEGACY_OK, **error_responses(400, 401, 403, 408, 413, 415, 422, 429, 503)})
async def post_legacy_log(request: Request, state: State, key: IngestKey) -> JSONResponse:
    mtype = media_type(request)
    if mtype not in (JSON, ""):
        raise UnsupportedMedia(f"unsupported Content-Type {mtype!r}: send the workflow log as {JSON}")
    async with state.admitted(key.client_id):
        stored = await _store_legacy(request, state, key.client_id)
    return JSONResponse({"status": "duplicate" if stored.duplicate else "stored", "id": stored.id,
                         "trace_id": stored.trace_id, "duplicate": stored.duplicate})
