"""Pure decoding: OTLP/HTTP logs (protobuf or JSON) and legacy JSON -> workflow-log documents.

Nothing here touches the network or the database; every failure is a DecodeError (whole
request unusable) or a per-record rejection with a reason a sender can act on.
"""
from __future__ import annotations

import base64
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import orjson
from google.protobuf import json_format
from google.protobuf.message import DecodeError as ProtobufDecodeError
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

EVENT_NAME = "flusso.workflow_log"
# One nesting limit for a workflow log on both ingest endpoints (docs/collector.md): a log the
# bridge builds nests ~20 levels at most (record.* payloads are cut at 16); deeper documents
# would reach recursion limits in validation, storage or the viewer.
MAX_NESTING = 64
# An OTLP/JSON request wraps the log in its envelope: ~7 JSON levels around a JSON-string body, 4
# per level of a kvlist body. Deeper requests are refused before anything walks them.
MAX_ENVELOPE_NESTING = 4 * MAX_NESTING + 16


class DecodeError(Exception):
    """The request body as a whole cannot be decoded; the message says why."""


@dataclass(slots=True)
class RawRecord:
    """One OTLP LogRecord: its position in the request, and the document or why it was refused."""

    index: int
    document: dict | None
    trace_id: str | None
    reason: str | None = None
    may_hold_nul: bool = True  # False when the JSON text has no \u0000 escape: no need to walk it
    text: str | None = None  # the JSON text itself, when it needs no cleaning (then it may be stored as sent)


def loads_lenient(text: str | bytes) -> tuple[object, bool]:
    """(value, strict): orjson, else the stdlib, which also reads NaN/Infinity (Python's json.dumps
    writes them; they become null) and lone surrogate escapes (`strict` is then False: the value
    needs cleaning before it can be stored)."""
    try:
        return orjson.loads(text), True
    except orjson.JSONDecodeError as first:
        try:
            return json.loads(text, parse_constant=lambda _: None), False
        except (ValueError, RecursionError):
            raise first from None


def _not_json(exc: Exception) -> str:
    """Why a JSON text was refused; orjson's own depth limit (1024) is reported as ours."""
    if "depth limit" in str(exc) or isinstance(exc, RecursionError):
        return f"the workflow log is nested deeper than the limit of {MAX_NESTING} levels"
    return f"body is not valid JSON: {exc}"


def nesting_error(value: object, limit: int = MAX_NESTING) -> str | None:
    """None when `value` nests at most `limit` levels of objects/arrays, else the message.
    Iterative: a hostile depth costs no recursion."""
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return f"the workflow log is nested deeper than the limit of {limit} levels"
        children = node.values() if isinstance(node, dict) else node
        for child in children:  # type: ignore[union-attr]
            if isinstance(child, (dict, list)):
                stack.append((child, depth + 1))
    return None


M = TypeVar("M")


def parse_protobuf(message: M, body: bytes) -> M:
    """`body` parsed into the empty `message` (an OTLP export request), or a DecodeError naming it."""
    try:
        message.ParseFromString(body)
    except (ProtobufDecodeError, RecursionError, ValueError) as exc:
        raise DecodeError(f"body is not a valid protobuf {type(message).__name__}: {exc}") from None
    return message


def parse_json_dict(message: M, data: dict) -> M:
    """An OTLP/JSON object (hex ids) parsed into the empty `message`, or a DecodeError naming it."""
    hex_ids_to_base64(data)
    try:
        json_format.ParseDict(data, message, ignore_unknown_fields=True, max_recursion_depth=100)
    except (json_format.ParseError, RecursionError, ValueError, TypeError) as exc:
        raise DecodeError(f"body is not a valid OTLP/JSON {type(message).__name__}: {exc}") from None
    return message


def parse_otlp_protobuf(body: bytes) -> ExportLogsServiceRequest:
    return parse_protobuf(ExportLogsServiceRequest(), body)


def hex_ids_to_base64(node: Any) -> None:
    """OTLP/JSON writes traceId/spanId as hex; protobuf's JSON mapping expects base64."""
    if isinstance(node, dict):
        for key in ("traceId", "spanId", "trace_id", "span_id"):
            value = node.get(key)
            if isinstance(value, str) and value:
                try:
                    node[key] = base64.b64encode(bytes.fromhex(value)).decode()
                except ValueError:
                    raise DecodeError(f"{key} {value[:40]!r} is not a hex string") from None
        for value in node.values():
            hex_ids_to_base64(value)
    elif isinstance(node, list):
        for value in node:
            hex_ids_to_base64(value)


def parse_otlp_json(body: bytes) -> ExportLogsServiceRequest:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise DecodeError(_not_json(exc)) from None
    if not isinstance(data, dict):
        raise DecodeError("body must be a JSON object (an ExportLogsServiceRequest)")
    if nesting_error(data, MAX_ENVELOPE_NESTING):
        raise DecodeError(f"the OTLP/JSON request is nested deeper than {MAX_ENVELOPE_NESTING} levels (room for a"
                          f" workflow log at the limit of {MAX_NESTING} levels)")
    return parse_json_dict(ExportLogsServiceRequest(), data)


def any_value_to_python(value: AnyValue, depth: int = 0) -> Any:
    """The Python value of an AnyValue; `depth` arrays/kvlists enclose it (at most MAX_NESTING)."""
    kind = value.WhichOneof("value")
    if depth >= MAX_NESTING and kind in ("array_value", "kvlist_value"):
        raise ValueError(f"the workflow log is nested deeper than the limit of {MAX_NESTING} levels")
    if kind == "string_value":
        return value.string_value
    if kind == "bool_value":
        return value.bool_value
    if kind == "int_value":
        return value.int_value
    if kind == "double_value":
        number = value.double_value
        return number if math.isfinite(number) else None
    if kind == "bytes_value":
        return base64.b64encode(value.bytes_value).decode()
    if kind == "array_value":
        return [any_value_to_python(v, depth + 1) for v in value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: any_value_to_python(kv.value, depth + 1) for kv in value.kvlist_value.values}
    return None


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
    trace_id = record.trace_id.hex() if len(record.trace_id) == 16 and any(record.trace_id) else None
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
            document = any_value_to_python(record.body)
        else:
            return RawRecord(index, None, trace_id, f"body must be a JSON string or a kvlist, got {kind or 'nothing'}")
    except (orjson.JSONDecodeError, RecursionError) as exc:
        return RawRecord(index, None, trace_id, _not_json(exc))
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
        raise DecodeError(_not_json(exc)) from None
    if not isinstance(document, dict):
        raise DecodeError("body must be one workflow-log JSON object")
    too_deep = nesting_error(document)
    if too_deep:
        raise DecodeError(too_deep)
    return document
