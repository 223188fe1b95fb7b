"""Hypothesis strategies for what the OTLP/gRPC port adds: export request messages (structured,
with workflow logs mutated leaf by leaf, spans with any ids, times, attributes, events and links,
and values nested past the limit), raw or mutated message bytes, and the call's metadata and
compression."""
from __future__ import annotations

import copy
import itertools
import json

import grpc
from hypothesis import strategies as st
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue, KeyValueList
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

from tests.collector.helpers import EXAMPLE, make_log

DEEP_JSON = (st.integers(50, 3000).map(lambda n: "[" * n + "]" * n)
             | st.integers(50, 3000).map(lambda n: '{"a":' * n + "1" + "}" * n))
TEXT = (st.text(max_size=40) | st.sampled_from(["", "\u0000", "é" * 30, "x" * 5000, "{", "[]", "null", "1e999"])
        | DEEP_JSON)
WEIRD = (st.none() | st.booleans() | st.integers(-2**80, 2**80) | st.floats(allow_nan=True) | TEXT
         | st.sampled_from([[], {}, [1, {"a": None}], {"": 1}, "2026-13-45T99:99:99Z", "NaN"]))
KEYS = st.sampled_from(["gen_ai.operation.name", "gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens",
                        "gen_ai.request.model", "gen_ai.conversation.id", "session.id", "openinference.span.kind",
                        "input.value", "output.value", "llm.token_count.prompt", "traceloop.entity.input",
                        "flusso.ticket_id", "flusso.client_id", "service.name", "user.email", "enduser.id"]) | TEXT
_tickets = itertools.count()


def _leaf_paths(node, prefix=()):
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _leaf_paths(value, (*prefix, key))
    elif isinstance(node, list) and node:
        for index, value in enumerate(node):
            yield from _leaf_paths(value, (*prefix, index))
    else:
        yield prefix


LOG_PATHS = list(_leaf_paths(EXAMPLE))


def nested(depth: int) -> AnyValue:
    """A kvlist/array chain `depth` levels deep (built from the inside out, no recursion)."""
    value = AnyValue(string_value="bottom")
    for level in range(depth):
        if level % 2:
            value = AnyValue(kvlist_value=KeyValueList(values=[KeyValue(key="k", value=value)]))
        else:
            value = AnyValue(array_value=ArrayValue(values=[value]))
    return value


def _any_value(scalar) -> AnyValue:
    if scalar is None:
        return AnyValue()
    if isinstance(scalar, bool):
        return AnyValue(bool_value=scalar)
    if isinstance(scalar, int):
        return AnyValue(int_value=max(-2**63, min(2**63 - 1, scalar)))
    if isinstance(scalar, float):
        return AnyValue(double_value=scalar)
    if isinstance(scalar, bytes):
        return AnyValue(bytes_value=scalar)
    return AnyValue(string_value=str(scalar).encode("utf-8", "replace").decode("utf-8"))


SCALARS = (st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=True) | TEXT
           | st.binary(max_size=40))
ANY_VALUES = st.recursive(
    SCALARS.map(_any_value),
    lambda inner: (st.lists(inner, max_size=4).map(lambda vs: AnyValue(array_value=ArrayValue(values=vs)))
                   | st.lists(st.tuples(KEYS, inner), max_size=4).map(lambda kvs: AnyValue(
                       kvlist_value=KeyValueList(values=[KeyValue(key=k, value=v) for k, v in kvs])))),
    max_leaves=12) | st.integers(15, 36).map(nested)  # from 41 levels python protobuf refuses to build it
ATTRIBUTES = st.lists(st.tuples(KEYS, ANY_VALUES), max_size=6).map(
    lambda kvs: [KeyValue(key=k, value=v) for k, v in kvs])
IDS = st.binary(max_size=20) | st.sampled_from([b"", b"\0" * 16, b"\xff" * 16, b"\x01" * 8])
TIMES = st.integers(0, 2**64 - 1) | st.sampled_from([0, 1, 2**63, 2**64 - 1])


@st.composite
def workflow_logs(draw) -> dict:
    """A valid workflow log of tenant acme (a fresh ticket id), then 0-4 leaves replaced by odd values."""
    log = make_log(ticket_id=f"FZ-{next(_tickets)}")
    for path in draw(st.lists(st.sampled_from(LOG_PATHS), max_size=4)):
        node = log
        for step in path[:-1]:
            node = node[step] if isinstance(node, dict) or step < len(node) else None
            if not isinstance(node, (dict, list)):
                break
        else:
            if path and isinstance(node, dict):
                node[path[-1]] = copy.deepcopy(draw(WEIRD))
    return log


def _log_body(log: dict) -> AnyValue:
    return AnyValue(string_value=json.dumps(log, ensure_ascii=False, allow_nan=True))


def _trace_id(log: dict) -> bytes:
    """The record's trace id as the bridge sets it: the log's own, when a mutation left it hex."""
    try:
        return bytes.fromhex(log["trace_id"])
    except (TypeError, ValueError):
        return b""


@st.composite
def log_records(draw) -> tuple[LogRecord, dict | None]:
    """(record, the workflow log it carries or None when the body is something else)."""
    log = draw(workflow_logs()) if draw(st.booleans()) else None
    body = _log_body(log) if log is not None else draw(ANY_VALUES)
    event = draw(st.sampled_from(["flusso.workflow_log", "", "other"]) | TEXT)
    record = LogRecord(event_name=event, body=body, attributes=draw(ATTRIBUTES), time_unix_nano=draw(TIMES),
                       trace_id=_trace_id(log) if log and draw(st.booleans()) else draw(IDS),
                       span_id=draw(IDS), severity_number=draw(st.integers(0, 30)))
    return record, log if event == "flusso.workflow_log" else None


@st.composite
def logs_requests(draw) -> tuple[ExportLogsServiceRequest, list[dict]]:
    """(request, the workflow logs it carries as workflow-log events)."""
    drawn = draw(st.lists(log_records(), max_size=5))
    request = ExportLogsServiceRequest(resource_logs=[ResourceLogs(
        resource=Resource(attributes=draw(ATTRIBUTES)),
        scope_logs=[ScopeLogs(log_records=[record for record, _ in drawn])])])
    return request, [log for _, log in drawn if log is not None]


@st.composite
def spans(draw) -> Span:
    links = [Span.Link(trace_id=draw(IDS), span_id=draw(IDS), attributes=draw(ATTRIBUTES))
             for _ in range(draw(st.integers(0, 2)))]
    events = [Span.Event(name=draw(TEXT), time_unix_nano=draw(TIMES), attributes=draw(ATTRIBUTES))
              for _ in range(draw(st.integers(0, 2)))]
    return Span(trace_id=draw(IDS), span_id=draw(IDS), parent_span_id=draw(IDS), name=draw(TEXT),
                kind=draw(st.integers(0, 9)), start_time_unix_nano=draw(TIMES), end_time_unix_nano=draw(TIMES),
                attributes=draw(ATTRIBUTES), events=events, links=links,
                status=Status(code=draw(st.integers(0, 5)), message=draw(TEXT)))


TRACES_REQUESTS = st.lists(st.lists(spans(), max_size=4), max_size=3).map(
    lambda groups: ExportTraceServiceRequest(resource_spans=[
        ResourceSpans(scope_spans=[ScopeSpans(spans=group)]) for group in groups]))


@st.composite
def mutated_bytes(draw, message: bytes) -> bytes:
    """`message` truncated, with bytes overwritten or inserted: the wire as a broken client sends it."""
    data = bytearray(message)
    for _ in range(draw(st.integers(0, 6))):
        position = draw(st.integers(0, max(0, len(data))))
        if draw(st.booleans()) and position < len(data):
            data[position] = draw(st.integers(0, 255))
        else:
            data[position:position] = draw(st.binary(min_size=1, max_size=8))
    cut = draw(st.integers(0, len(data)))
    return bytes(data[:cut] if draw(st.booleans()) else data)


COMPRESSION = st.sampled_from([None, grpc.Compression.Gzip, grpc.Compression.Deflate])


def auth_metadata(keys: dict[str, str]):
    """Every way a client names (or fails to name) its key, with the scope it carries."""
    ingest = keys["ingest"]
    accepted = [((("x-api-key", ingest),), "ok"), ((("authorization", f"Bearer {ingest}"),), "ok")]
    return st.sampled_from(accepted * 4) | st.sampled_from([  # half the calls carry the ingest key
        ((("x-api-key", keys["read"]),), "scope"), ((("authorization", f"Bearer {keys['read']}"),), "scope"),
        ((), "none"), ((("x-api-key", "fo_" + "0" * 40),), "bad"), ((("authorization", "Bearer"),), "bad"),
        ((("authorization", f"Basic {ingest}"),), "bad"), ((("x-api-key", ""),), "bad"),
    ])
