"""POST /v1/traces (OTLP/HTTP traces): spans are checked, redacted, sealed and staged.

Every protocol behaviour of /v1/logs: the key (scope ingest) is checked before the body is
read; 413 over the size limit (on the wire and inflated), 415 for another media type or
encoding, 400 + google.rpc.Status for an undecodable body, 429/503 from admission, 503 +
Retry-After when the database is unavailable, partial success for refused spans; never 500.
The answer comes after COMMIT of the staging transaction. The trace-assembly job
(collector_api.traces.assembly) turns staged traces into workflow logs.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import Response
from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from prometheus_client import Counter
from starlette.concurrency import run_in_threadpool

from collector_api.http.admission import CollectorState
from collector_api.http.auth import IngestKey, State
from collector_api.http.body import inflate, read_wire
from collector_api.http.drain import refuse_when_draining
from collector_api.http.errors import CollectorError, Unavailable, UnsupportedMedia
from collector_api.http.openapi_docs import TRACES_BODY, TRACES_OK, error_responses
from collector_api.http.responses import JSON, PROTOBUF, OtlpRoute, media_type
from collector_api.logs.decode import DecodeError
from collector_api.store.core.db import StoreUnavailable
from collector_api.store.traces.staging import StageResult, StagingLimits, stage_spans
from collector_api.traces.decode import DecodedTraces, decode_spans, parse_traces_json, parse_traces_protobuf
from collector_api.traces.prices import PriceTable, load_prices
from collector_api.traces.sealing import cipher, redactor_for
from config.server import ServerSettings

logger = logging.getLogger(__name__)
# Refused first while the server drains (SIGTERM), like /v1/logs: 503 + Retry-After, no key lookup.
traces_router = APIRouter(route_class=OtlpRoute, dependencies=[Depends(refuse_when_draining)])
SECRET_SETTING = "FLUSSO_PII_HASH_KEY"


@dataclass
class TracesRuntime:
    """What /v1/traces and the assembly job share; `secret` None: the endpoint answers 501."""

    secret: str | None
    prices: PriceTable
    limits: StagingLimits
    spans: Counter  # by outcome: staged, invalid, tenant_mismatch, late, cap_*
    traces: Counter  # by outcome: assembled, reassembled, bridge, failed

    @classmethod
    def create(cls, settings: ServerSettings, state: CollectorState) -> TracesRuntime:
        registry = state.metrics.registry
        return cls(
            secret=settings.flusso_pii_hash_key or None,
            prices=load_prices(settings.flusso_prices_file),
            limits=StagingLimits(settings.flusso_trace_max_spans, settings.flusso_trace_max_bytes,
                                 settings.flusso_trace_max_open_traces, settings.flusso_trace_late_window_seconds),
            spans=Counter("flusso_trace_spans", "Spans received on /v1/traces, by outcome", ["outcome", "client_id"],
                          registry=registry),
            traces=Counter("flusso_traces", "Traces handled by the assembly job, by outcome", ["outcome"],
                           registry=registry),
        )


def _decode(raw: bytes, encoding: str, limit: int, mtype: str, tenant: str, secret: str) -> DecodedTraces:
    body = inflate(raw, encoding, limit)
    request = parse_traces_protobuf(body) if mtype == PROTOBUF else parse_traces_json(body)
    del body
    return decode_spans(request, tenant, redactor_for(secret, tenant), cipher(secret, tenant))


async def _stage(request: Request, state: CollectorState, rt: TracesRuntime, tenant: str,
                 mtype: str) -> tuple[DecodedTraces, StageResult]:
    limit = state.settings.flusso_max_body_bytes
    raw, encoding = await read_wire(request, limit)
    async with state.work_slots:
        try:
            async with state.decode_slot:
                decoded = await run_in_threadpool(_decode, raw, encoding, limit, mtype, tenant, rt.secret)
        except DecodeError as exc:
            rt.spans.labels("undecodable", tenant).inc()
            raise CollectorError(str(exc)) from None
        del raw
        try:
            staged = await stage_spans(state.pool, tenant, decoded.rows, rt.limits)
        except StoreUnavailable as exc:
            logger.warning("database unavailable while staging %d spans for %s: %s", len(decoded.rows), tenant, exc)
            raise Unavailable("database unavailable; retry later (spans already staged are not assembled twice)",
                              retry_after=state.settings.flusso_retry_after_seconds) from None
    return decoded, staged


def _refusals(decoded: DecodedTraces, staged: StageResult) -> list[tuple[int, str]]:
    out = [(r.index, r.reason) for r in decoded.rejected]
    out += [(index, reason) for index, _, reason in staged.refused]
    return sorted(out)


def _count(rt: TracesRuntime, tenant: str, decoded: DecodedTraces, staged: StageResult) -> None:
    rt.spans.labels("staged", tenant).inc(staged.staged)
    for r in decoded.rejected:
        rt.spans.labels("tenant_mismatch" if r.tenant_mismatch else "invalid", tenant).inc()
    for _, label, _ in staged.refused:
        rt.spans.labels(label, tenant).inc()


def _response(total: int, refused: list[tuple[int, str]], mtype: str) -> Response:
    response = ExportTraceServiceResponse()
    if refused:
        index, reason = refused[0]
        response.partial_success.rejected_spans = len(refused)
        response.partial_success.error_message = (
            f"{len(refused)} of {total} spans rejected; first: span {index}: {reason}")
    if mtype == PROTOBUF:
        return Response(response.SerializeToString(), media_type=PROTOBUF)
    return Response(json_format.MessageToJson(response, indent=None), media_type=JSON)


@traces_router.post("/v1/traces", summary="OTLP/HTTP traces export (protobuf or JSON); assembled into workflow logs",
                    openapi_extra=TRACES_BODY,
                    responses={**TRACES_OK, **error_responses(400, 401, 408, 413, 415, 429, 501, 503, otlp=True)})
async def export_traces(request: Request, state: State, key: IngestKey) -> Response:
    rt: TracesRuntime = request.app.state.traces
    if rt.secret is None:
        raise CollectorError(f"/v1/traces is not configured: set {SECRET_SETTING} (the server secret its per-tenant"
                             " hashing and encryption keys are derived from)", status=501)
    mtype = media_type(request)
    if mtype not in (PROTOBUF, JSON):
        raise UnsupportedMedia(f"unsupported Content-Type {mtype!r}: use {PROTOBUF} or {JSON}")
    async with state.admitted(key.client_id):
        decoded, staged = await _stage(request, state, rt, key.client_id, mtype)
    _count(rt, key.client_id, decoded, staged)
    refused = _refusals(decoded, staged)
    if refused and staged.staged == 0:
        index, reason = refused[0]
        raise CollectorError(f"all {decoded.total} spans rejected; span {index}: {reason}")
    return _response(decoded.total, refused, mtype)


def install_traces(app: FastAPI, state: CollectorState, settings: ServerSettings) -> TracesRuntime:
    runtime = TracesRuntime.create(settings, state)
    app.state.traces = runtime
    app.include_router(traces_router)
    return runtime
