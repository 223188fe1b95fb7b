"""OTLP on the wire, one way for every receiver: protobuf or JSON export requests, ids and values.

Pure: no I/O. Every failure is a DecodeError naming what was wrong (the edge answers 400).
OTLP/JSON is bounded before anything walks it (MAX_ENVELOPE_NESTING, checked iteratively), its
hex ids (`traceId`, `spanId`, `parentSpanId`, at any depth: spans, links, log records) become
the base64 protobuf's JSON mapping expects, and unknown fields are ignored as the spec asks.
"""
from __future__ import annotations

import base64
import math
from collections.abc import Iterable
from typing import Any, TypeVar

import orjson
from google.protobuf import json_format
from google.protobuf.message import DecodeError as ProtobufDecodeError
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from collector_api.contract.jsontext import MAX_NESTING, nesting_error, not_json_message

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
# An OTLP/JSON request wraps a workflow log in its envelope: ~7 JSON levels around a JSON-string
# body, 4 per level of a kvlist body. Deeper requests are refused before anything walks them.
MAX_ENVELOPE_NESTING = 4 * MAX_NESTING + 16
HEX_ID_KEYS = ("traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id")

M = TypeVar("M")


class DecodeError(Exception):
    """The request body as a whole cannot be decoded; the message says why."""


def parse_protobuf(message: M, body: bytes) -> M:
    """`body` parsed into the empty `message` (an OTLP export request), or a DecodeError naming it."""
    try:
        message.ParseFromString(body)  # type: ignore[attr-defined]
    except (ProtobufDecodeError, RecursionError, ValueError) as exc:
        raise DecodeError(f"body is not a valid protobuf {type(message).__name__}: {exc}") from None
    return message


def parse_json(message: M, body: bytes) -> M:
    """An OTLP/JSON body parsed into the empty `message`, or a DecodeError naming what was wrong."""
    name = type(message).__name__
    too_deep = (f"the OTLP/JSON request is nested deeper than {MAX_ENVELOPE_NESTING} levels (room for a"
                f" workflow log at the limit of {MAX_NESTING} levels)")
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise DecodeError(too_deep if "depth limit" in str(exc) else not_json_message(exc)) from None
    if not isinstance(data, dict):
        raise DecodeError(f"body must be a JSON object (an {name})")
    if nesting_error(data, MAX_ENVELOPE_NESTING):
        raise DecodeError(too_deep)
    hex_ids_to_base64(data)
    try:
        json_format.ParseDict(data, message, ignore_unknown_fields=True, max_recursion_depth=100)
    except (json_format.ParseError, RecursionError, ValueError, TypeError) as exc:
        raise DecodeError(f"body is not a valid OTLP/JSON {name}: {exc}") from None
    return message


def parse_request(message: M, body: bytes, media_type: str) -> M:
    """The export request `message` from a body of `media_type` (PROTOBUF or JSON)."""
    return parse_protobuf(message, body) if media_type == PROTOBUF else parse_json(message, body)


def hex_ids_to_base64(root: Any) -> None:
    """OTLP/JSON writes ids as hex; protobuf's JSON mapping expects base64. Iterative."""
    stack = [root]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            for key in HEX_ID_KEYS:
                value = node.get(key)
                if isinstance(value, str) and value:
                    try:
                        node[key] = base64.b64encode(bytes.fromhex(value)).decode()
                    except ValueError:
                        raise DecodeError(f"{key} {value[:40]!r} is not a hex string") from None
            stack.extend(v for v in node.values() if isinstance(v, (dict, list)))
        elif isinstance(node, list):
            stack.extend(v for v in node if isinstance(v, (dict, list)))


def hex_id(raw: bytes, size: int) -> str | None:
    """A trace (16 bytes) or span (8 bytes) id as lowercase hex; None when absent or all zero."""
    return raw.hex() if len(raw) == size and any(raw) else None


def any_value(value: AnyValue, *, sequence: type = tuple, json_safe: bool = False, depth: int = 0) -> Any:
    """An AnyValue as a Python value: arrays as `sequence`, kvlists as dicts, bytes as base64 text;
    a double that is not finite stays as the SDK holds it, or is None with `json_safe` (a workflow
    log's document: JSON has no NaN). Nested at most MAX_NESTING levels (ValueError beyond)."""
    kind = value.WhichOneof("value")
    if kind == "string_value":
        return value.string_value
    if kind in ("array_value", "kvlist_value"):
        if depth >= MAX_NESTING:
            raise ValueError(f"the workflow log is nested deeper than the limit of {MAX_NESTING} levels")
        if kind == "array_value":
            return sequence(any_value(v, sequence=sequence, json_safe=json_safe, depth=depth + 1)
                            for v in value.array_value.values)
        return attributes(value.kvlist_value.values, sequence=sequence, json_safe=json_safe, depth=depth + 1)
    if kind == "double_value":
        number = value.double_value
        return number if not json_safe or math.isfinite(number) else None
    if kind == "bytes_value":
        return base64.b64encode(value.bytes_value).decode()
    return None if kind is None else getattr(value, kind)


def attributes(pairs: Iterable[KeyValue], *, sequence: type = tuple, json_safe: bool = False,
               depth: int = 0) -> dict[str, Any]:
    return {kv.key: any_value(kv.value, sequence=sequence, json_safe=json_safe, depth=depth) for kv in pairs}
