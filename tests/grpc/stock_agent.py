"""A sender built only from stock OpenTelemetry parts: the SDK and opentelemetry-exporter-otlp-proto-grpc.

Run as its own process by tests/grpc (and by hand): `python tests/grpc/stock_agent.py --target
127.0.0.1:4317 --logs 20 --traces 2`, the ingest key in FLUSSO_INGEST_KEY. Workflow logs go out
through the stock OTLPLogExporter (one export per log, SimpleLogRecordProcessor), traces through
the stock OTLPSpanExporter (one export per span); each export's result is recorded by a thin
wrapper around the exporter, never changed. One JSON line per export on stdout:
{"kind": "log"|"span", "trace_id": ..., "ok": bool}; the last line is a summary.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from grpc import Compression
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import LogRecordExportResult, SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.trace import Link, NonRecordingSpan, SpanContext, TraceFlags, set_span_in_context

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "workflow-log.example.json"


class Recorded:
    """The stock exporter, each export's result printed (kind, trace id, ok)."""

    def __init__(self, exporter, kind: str, success):
        self.exporter, self.kind, self.success = exporter, kind, success

    def export(self, batch):
        result = self.exporter.export(batch)
        for item in batch:
            context = item.log_record if self.kind == "log" else item.context
            print(json.dumps({"kind": self.kind, "trace_id": format(context.trace_id, "032x"),
                              "ok": result == self.success}), flush=True)
        return result

    def __getattr__(self, name):
        return getattr(self.exporter, name)


def send_logs(target: str, key: str, count: int, pause_s: float, gzip: bool) -> None:
    exporter = OTLPLogExporter(endpoint=target, insecure=True, headers={"x-api-key": key},
                               compression=Compression.Gzip if gzip else None, timeout=float(os.environ.get(
                                   "AGENT_EXPORT_TIMEOUT_S", "10")))
    provider = LoggerProvider(resource=Resource.create({"service.name": "grpc-interop"}))
    recorded = Recorded(exporter, "log", LogRecordExportResult.SUCCESS)
    provider.add_log_record_processor(SimpleLogRecordProcessor(recorded))
    logger = provider.get_logger("grpc-interop")
    example = json.loads(EXAMPLE.read_text())
    for i in range(count):
        log = json.loads(json.dumps(example))
        log["trace_id"] = os.urandom(16).hex()
        log["ticket_info"]["ticket_id"] = f"G-{i}"
        log["ticket_info"]["executed_at"] = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
        context = set_span_in_context(NonRecordingSpan(SpanContext(int(log["trace_id"], 16), int.from_bytes(
            os.urandom(8)), is_remote=False, trace_flags=TraceFlags(1))))
        logger.emit(body=json.dumps(log), event_name="flusso.workflow_log", context=context)
        if pause_s:
            time.sleep(pause_s)  # pacing the sender, so a restart falls in the middle of the stream
    provider.shutdown()


def send_traces(target: str, key: str, count: int) -> None:
    exporter = OTLPSpanExporter(endpoint=target, insecure=True, headers={"authorization": f"Bearer {key}"},
                                timeout=10)
    provider = TracerProvider(resource=Resource.create({"service.name": "grpc-interop-agent"}))
    provider.add_span_processor(SimpleSpanProcessor(Recorded(exporter, "span", SpanExportResult.SUCCESS)))
    tracer = provider.get_tracer("grpc-interop")
    previous = None
    for i in range(count):
        links = [Link(previous, {"link.reason": "follow-up of the previous ticket"})] if previous else []
        with tracer.start_as_current_span("invoke_agent support", links=links) as root:
            root.set_attribute("gen_ai.operation.name", "invoke_agent")
            root.set_attribute("gen_ai.agent.name", "support")
            root.set_attribute("flusso.ticket_id", f"GT-{i}")
            with tracer.start_as_current_span("chat gpt-4o-mini") as chat:
                chat.set_attribute("gen_ai.operation.name", "chat")
                chat.set_attribute("gen_ai.request.model", "gpt-4o-mini")
                chat.set_attribute("gen_ai.usage.input_tokens", 100)
                chat.set_attribute("gen_ai.usage.output_tokens", 20)
            previous = root.get_span_context()
    provider.shutdown()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--target", required=True)
    parser.add_argument("--logs", type=int, default=0)
    parser.add_argument("--traces", type=int, default=0)
    parser.add_argument("--pause-s", type=float, default=0.0)
    parser.add_argument("--gzip", action="store_true")
    args = parser.parse_args()
    key = os.environ["FLUSSO_INGEST_KEY"]
    send_logs(args.target, key, args.logs, args.pause_s, args.gzip)
    send_traces(args.target, key, args.traces)
    print(json.dumps({"done": True}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
