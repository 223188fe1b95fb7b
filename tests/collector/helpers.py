"""Building real OTLP requests and workflow logs for collector tests."""
from __future__ import annotations

import copy
import json
import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs

EXAMPLE = json.loads((Path(__file__).parents[2] / "docs" / "workflow-log.example.json").read_text())


def make_log(client_id: str | None = "acme", ticket_id: str = "T-1", **outcome) -> dict:
    log = copy.deepcopy(EXAMPLE)
    log["trace_id"] = secrets.token_hex(16)
    if client_id is None:
        log["identification"].pop("client_id")
    else:
        log["identification"]["client_id"] = client_id
    log["ticket_info"]["ticket_id"] = ticket_id
    log["ticket_info"]["executed_at"] = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()
    log["outcome"].update(outcome)
    return log


def make_record(log: dict | None, *, event_name: str = "flusso.workflow_log",
                body: AnyValue | None = None) -> LogRecord:
    record = LogRecord(event_name=event_name)
    if log is not None:
        record.trace_id = bytes.fromhex(log["trace_id"])
        record.body.CopyFrom(body or AnyValue(string_value=json.dumps(log)))
    elif body is not None:
        record.body.CopyFrom(body)
    return record


def make_request(*records: LogRecord) -> ExportLogsServiceRequest:
    return ExportLogsServiceRequest(resource_logs=[ResourceLogs(scope_logs=[ScopeLogs(log_records=list(records))])])
