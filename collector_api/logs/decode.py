"""The logs receivers' own decoding: OTLP LogRecords and legacy JSON -> workflow-log documents.

Pure: nothing here touches the network or the database. The edge (collector_api.http) has
already parsed the OTLP request (collector_api.http.otlp); each record is decoded to a document or
refused with a reason a sender can act on.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import orjson
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

from collector_api.contract.jsontext import loads_lenient, nesting_error, not_json_message
from collector_api.http.otlp import DecodeError, any_value, hex_id

EVENT_NAME = "flusso.workflow_log"


@dataclass(slots=True)
class RawRecord:
    """One OTLP LogRecord: its position in the request, and the document or why it was refused."""

    index: int
    document: dict | None
    trace_id: str | None
    reason: str | None = None
    may_hold_nul: bool = True  # False when the JSON text has no \u0000 escape: no need to walk it
    text: str | None = None  # the JSON text itself, when it needs no cleaning (then it may be stored as sent)


def _event_name(record) -> str:
    if record.event_name:
        return record.event_name
    for kv in record.attributes:  # older SDKs put the event name in an attribute
        if kv.key in ("event.name", "event_name"):
            return kv.value.string_value
    return ""


def iter_records(request: ExportLogsServiceRequest) -> Iterator[RawRecord]:
    """Every LogRecord of the request, numbered in order, decoded to a document or refused.

    One at a time: a caller that turns each document into a row before asking for the next
    keeps one parsed document alive instead of 512 (~50 KB of Python objects each)."""
    index = 0
    for resource_logs in request.resource_logs:
        for scope_logs in resource_logs.scope_logs:
            for record in scope_logs.log_records:
                yield _decode_record(index, record)
                index += 1


def _decode_record(index: int, record) -> RawRecord:
    trace_id = hex_id(record.trace_id, 16)
    name = _event_name(record)
    if name != EVENT_NAME:
        return RawRecord(index, None, trace_id, f"not a workflow log (event_name {name!r}, expected {EVENT_NAME!r})")
    kind = record.body.WhichOneof("value")
    strict, text = True, None
    try:
        if kind == "string_value":
            text = record.body.string_value
            document, strict = loads_lenient(text)
        elif kind == "kvlist_value":
            document = any_value(record.body, sequence=list, json_safe=True)
        else:
            return RawRecord(index, None, trace_id, f"body must be a JSON string or a kvlist, got {kind or 'nothing'}")
    except (orjson.JSONDecodeError, RecursionError) as exc:
        return RawRecord(index, None, trace_id, not_json_message(exc))
    except ValueError as exc:  # a kvlist nested beyond MAX_NESTING
        return RawRecord(index, None, trace_id, str(exc))
    if not isinstance(document, dict):
        return RawRecord(index, None, trace_id, "body must be a JSON object")
    too_deep = nesting_error(document) if text is not None else None  # a kvlist was bounded while read
    if too_deep:
        return RawRecord(index, None, trace_id, too_deep)
    may_hold_nul = text is None or not strict or "\\u0000" in text
    return RawRecord(index, document, trace_id, may_hold_nul=may_hold_nul, text=None if may_hold_nul else text)


def parse_legacy_json(body: bytes) -> dict:
    try:
        document, _ = loads_lenient(body)
    except orjson.JSONDecodeError as exc:
        raise DecodeError(not_json_message(exc)) from None
    if not isinstance(document, dict):
        raise DecodeError("body must be one workflow-log JSON object")
    too_deep = nesting_error(document)
    if too_deep:
        raise DecodeError(too_deep)
    return document
