"""What /openapi.json says about the collector's routes: request bodies and every status code they
answer, with the error bodies' shapes (`tests/fuzz` holds the server to it with schemathesis)."""
from __future__ import annotations

import copy
import json
from typing import Any

from collector_api.contract.schema import schema_text

_DESCRIPTIONS = {
    400: "Undecodable body, or every record rejected (the message names the first and its field)",
    401: "Missing, unknown, revoked or wrong-scope API key",
    403: "Another tenant's client_id, or /metrics from a non-loopback client without the token",
    408: "The body did not arrive within FLUSSO_BODY_TIMEOUT_SECONDS",
    413: "Body over FLUSSO_MAX_BODY_BYTES, on the wire or after decompression",
    410: "The log's ticket, trace or customer was erased (POST /api/v1/erasures): it is not stored again",
    415: "Unsupported Content-Type or Content-Encoding",
    422: "The workflow log fails the schema (the message names the field)",
    429: "The tenant is over FLUSSO_TENANT_RATE_LIMIT_PER_S",
    501: "/v1/traces is not configured: FLUSSO_PII_HASH_KEY is unset (the message names it)",
    503: "Database unavailable, or the in-flight bound (global or the tenant's) reached; see Retry-After",
}
_DETAIL = {"type": "object", "properties": {"detail": {"type": "string"}}, "required": ["detail"]}
_RPC_STATUS = {"type": "object", "properties": {"code": {"type": "integer"}, "message": {"type": "string"},
                                                 "details": {"type": "array"}}}
_BINARY = {"type": "string", "format": "binary"}


def error_responses(*codes: int, otlp: bool = False) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a collector route: {"detail": ...} JSON, or for OTLP a google.rpc.Status
    in JSON or protobuf (the request's encoding)."""
    content = ({"application/json": {"schema": _RPC_STATUS}, "application/x-protobuf": {"schema": _BINARY}}
               if otlp else {"application/json": {"schema": _DETAIL}})
    return {code: {"description": _DESCRIPTIONS[code], "content": content} for code in codes}


def _inline_refs(node: Any, definitions: dict) -> Any:
    """The draft-07 schema's local `#/definitions/...` refs inlined: in an OpenAPI document a
    `$ref` resolves against the document root."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/definitions/"):
            return _inline_refs(copy.deepcopy(definitions[ref.rsplit("/", 1)[1]]), definitions)
        return {k: _inline_refs(v, definitions) for k, v in node.items() if k not in ("$schema", "definitions")}
    if isinstance(node, list):
        return [_inline_refs(v, definitions) for v in node]
    return node


def legacy_body() -> dict:
    schema = json.loads(schema_text())
    inlined = _inline_refs(schema, schema.get("definitions", {}))
    return {"requestBody": {"required": True, "description": "One workflow log (the bridge's JSON Schema)",
                            "content": {"application/json": {"schema": inlined}}}}


_ANY_VALUE = {"type": "object", "properties": {"stringValue": {"type": "string"}, "intValue": {"type": "string"},
                                               "boolValue": {"type": "boolean"}, "doubleValue": {"type": "number"}}}
_LOG_RECORD = {"type": "object", "properties": {
    "eventName": {"type": "string", "examples": ["flusso.workflow_log"]},
    "timeUnixNano": {"type": "string"}, "traceId": {"type": "string"}, "spanId": {"type": "string"},
    "body": _ANY_VALUE, "attributes": {"type": "array", "items": {"type": "object", "properties": {
        "key": {"type": "string"}, "value": _ANY_VALUE}}}}}
OTLP_BODY = {"requestBody": {"required": True, "description": "ExportLogsServiceRequest (OTLP/HTTP), JSON or protobuf",
                             "content": {"application/json": {"schema": {"type": "object", "properties": {
                                 "resourceLogs": {"type": "array", "items": {"type": "object", "properties": {
                                     "scopeLogs": {"type": "array", "items": {"type": "object", "properties": {
                                         "logRecords": {"type": "array", "items": _LOG_RECORD}}}}}}}}}},
                                 "application/x-protobuf": {"schema": _BINARY}}}}
OTLP_OK = {200: {"description": "ExportLogsServiceResponse (partial_success names rejected records)",
                 "content": {"application/json": {"schema": {"type": "object"}},
                             "application/x-protobuf": {"schema": _BINARY}}}}
LEGACY_OK = {200: {"description": "Stored, or a duplicate of a log stored before",
                   "content": {"application/json": {"schema": {"type": "object", "properties": {
                       "status": {"enum": ["stored", "duplicate"]}, "id": {"type": "integer"},
                       "trace_id": {"type": "string"}, "duplicate": {"type": "boolean"}},
                       "required": ["status", "id", "trace_id", "duplicate"]}}},
                   "links": {"ReadTheStoredLog": {  # a stateful fuzz run follows it
                       "operationRef": "#/paths/~1api~1v1~1tickets~1{log_id}/get",
                       "parameters": {"log_id": "$response.body#/id"}}}}}

_SPAN = {"type": "object", "properties": {
    "traceId": {"type": "string"}, "spanId": {"type": "string"}, "parentSpanId": {"type": "string"},
    "name": {"type": "string"}, "startTimeUnixNano": {"type": "string"}, "endTimeUnixNano": {"type": "string"},
    "attributes": {"type": "array", "items": {"type": "object", "properties": {
        "key": {"type": "string"}, "value": _ANY_VALUE}}}}}
TRACES_BODY = {"requestBody": {"required": True,
                               "description": "ExportTraceServiceRequest (OTLP/HTTP), JSON or protobuf",
                               "content": {"application/json": {"schema": {"type": "object", "properties": {
                                   "resourceSpans": {"type": "array", "items": {"type": "object", "properties": {
                                       "scopeSpans": {"type": "array", "items": {"type": "object", "properties": {
                                           "spans": {"type": "array", "items": _SPAN}}}}}}}}}},
                                   "application/x-protobuf": {"schema": _BINARY}}}}
TRACES_OK = {200: {"description": "ExportTraceServiceResponse (partial_success names rejected spans)",
                   "content": {"application/json": {"schema": {"type": "object"}},
                               "application/x-protobuf": {"schema": _BINARY}}}}
