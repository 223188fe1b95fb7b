"""The traces receiver: POST /v1/traces (OTLP/HTTP traces). Spans are checked, redacted, sealed
and staged; the trace-assembly job (collector_api.traces.assembly) turns staged traces into
workflow logs. Only what is its own is here (decoding spans into sealed rows, staging them, its
span counters, the 501 while FLUSSO_PII_HASH_KEY is unset); the edge (collector_api.http.edge)
applies every shared rule, the same as on /v1/logs. The answer comes after COMMIT of the staging
transaction.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

from fastapi import FastAPI
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from prometheus_client import Counter

from collector_api.http.admission import CollectorState
from collector_api.http.edge import mount
from collector_api.http.openapi_docs import TRACES_BODY, TRACES_OK, error_responses
from collector_api.http.otlp import JSON, PROTOBUF
from collector_api.http.pipeline import Ingest, OtlpSignal, Outcome, Receiver, Refusal
from collector_api.store.traces.staging import StagingLimits, stage_spans
from collector_api.traces.decode import DecodedTraces, decode_spans
from collector_api.traces.prices import PriceTable, load_prices
from collector_api.traces.sealing import cipher, redactor_for
from config.server import ServerSettings, reveal

logger = logging.getLogger(__name__)
SECRET_SETTING = "FLUSSO_PII_HASH_KEY"
TRACES = OtlpSignal(ExportTraceServiceRequest, ExportTraceServiceResponse, "rejected_spans", "spans", "span",
                    grpc_service="opentelemetry.proto.collector.trace.v1.TraceService")


@dataclass
class TracesRuntime:
    """What /v1/traces and the assembly job share; `secret` None: the endpoint answers 501."""

    secret: str | None
    prices: PriceTable
    limits: StagingLimits
    spans: Counter  # by outcome: staged, invalid, tenant_mismatch, late, cap_*
    traces: Counter  # by outcome: assembled, reassembled, bridge, failed
    person_values: Counter  # person values beyond a trace's cap, by tenant

    @classmethod
    def create(cls, settings: ServerSettings, state: CollectorState) -> TracesRuntime:
        registry = state.metrics.registry
        return cls(
            secret=reveal(settings.flusso_pii_hash_key) or None,
            prices=load_prices(settings.flusso_prices_file),
            limits=StagingLimits(settings.flusso_trace_max_spans, settings.flusso_trace_max_bytes,
                                 settings.flusso_trace_max_open_traces, settings.flusso_trace_late_window_seconds,
                                 int(settings.flusso_trace_max_staged_mb_per_tenant * 1024 * 1024)),
            spans=Counter("flusso_trace_spans", "Spans received on /v1/traces, by outcome", ["outcome", "client_id"],
                          registry=registry),
            traces=Counter("flusso_traces", "Traces handled by the assembly job, by outcome", ["outcome"],
                           registry=registry),
            person_values=Counter("flusso_trace_person_values_over_cap",
                                  "Person values beyond a trace's cap on /v1/traces (their spans' text hashed whole)",
                                  ["client_id"], registry=registry),
        )

    def unavailable(self) -> str | None:
        if self.secret is None:
            return (f"/v1/traces is not configured: set {SECRET_SETTING} (the server secret its per-tenant"
                    " hashing and encryption keys are derived from)")
        return None

    def decode(self, request: ExportTraceServiceRequest, ingest: Ingest) -> DecodedTraces:
        secret, tenant = self.secret or "", ingest.tenant
        return decode_spans(request, tenant, redactor_for(secret, tenant), cipher(secret, tenant))

    async def handle(self, ingest: Ingest, decoded: DecodedTraces) -> Outcome:
        tenant = ingest.tenant
        staged = await stage_spans(ingest.state.pool, tenant, decoded.rows, self.limits)
        self.spans.labels("staged", tenant).inc(staged.staged)
        if decoded.over_cap:  # person values a trace could not make known: their spans' text was hashed whole
            self.person_values.labels(tenant).inc(decoded.over_cap)
        refusals = [Refusal(r.index, r.reason, "tenant_mismatch" if r.tenant_mismatch else "invalid")
                    for r in decoded.rejected]
        for r in refusals:
            self.spans.labels(r.label, tenant).inc()
        for index, label, reason in staged.refused:
            self.spans.labels(label, tenant).inc()
            refusals.append(Refusal(index, reason, label))
        return Outcome(decoded.total, staged.staged, sorted(refusals, key=lambda r: r.index))

    def receiver(self) -> Receiver:
        return Receiver(
            name="traces", path="/v1/traces",
            summary="OTLP/HTTP traces export (protobuf or JSON); assembled into workflow logs",
            media_types=(PROTOBUF, JSON), signal=TRACES, decode=self.decode, handle=self.handle,
            unavailable=self.unavailable,
            openapi={"openapi_extra": TRACES_BODY,
                     "responses": {**TRACES_OK, **error_responses(400, 401, 408, 413, 415, 429, 501, 503, otlp=True)}})


def install_traces(app: FastAPI, state: CollectorState, settings: ServerSettings) -> TracesRuntime:
    runtime = TracesRuntime.create(settings, state)
    app.state.traces = runtime
    app.include_router(mount(runtime.receiver()))
    return runtime
