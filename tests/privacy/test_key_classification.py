"""Keys built from word lists in every shape (dotted, snake, kebab, camel, Pascal) get one
decision: the same words classify the same whatever the shape, and an attribute with that key
is hashed on the bridge's path (a span's attributes in its log) exactly when it is hashed on
/v1/traces (the sealed span of the decoder)."""
from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from collector_api.traces.decode import decode_spans
from collector_api.traces.sealing import cipher
from otel_bridge.assemble import build_workflow_log
from otel_bridge.pii import Redactor
from otel_bridge.pii_keys import field_kind
from otel_bridge.policy import SAFE_ATTRIBUTES
from otel_bridge.spanrecord import SpanRecord

PERSON = ["customer", "requester", "billing", "contact", "user", "first", "last", "full", "display", "sender",
          "patient", "shipping", "employee", "member"]
FIELDS = ["name", "email", "mail", "phone", "mobile", "address", "street", "zip", "postcode", "birth", "dob", "ssn",
          "passport", "iban", "card", "number", "id", "username", "surname", "tel"]
OTHER = ["model", "tool", "node", "order", "status", "count", "verified", "type", "source", "date", "of", "gen",
         "ai", "request", "server", "host", "ticket", "session", "tenant", "total", "amount", "lookup", "send",
         "validate", "value", "label"]
WORDS = st.sampled_from(PERSON + FIELDS + OTHER)
VALUE = "Qzwx Plorbington"  # no detector finds it: changed only when its key is personal


def shape(words: list[str], style: str) -> str:
    if style == "dotted":
        return ".".join(words)
    if style == "snake":
        return "_".join(words)
    if style == "kebab":
        return "-".join(words)
    if style == "camel":
        return words[0] + "".join(w.capitalize() for w in words[1:])
    return "".join(w.capitalize() for w in words)  # Pascal


def bridge_value(key: str, r: Redactor) -> object:
    span = SpanRecord("host", 7, 1, None, 10**18, 10**18 + 5, "UNSET", None, {key: VALUE}, (), "internal", 0)
    log = build_workflow_log([span], redactor=r)
    [entry] = log["trace"]["spans"]
    return entry["attributes"].get(key)


def traces_value(key: str, r: Redactor) -> object:
    req = ExportTraceServiceRequest()
    span = req.resource_spans.add().scope_spans.add().spans.add()
    span.trace_id, span.span_id, span.name = b"\x01" * 16, b"\x02" * 8, "host"
    span.start_time_unix_nano = span.end_time_unix_nano = 1_800_000_000 * 10**9
    span.attributes.append(KeyValue(key=key, value=AnyValue(string_value=VALUE)))
    box = cipher("s" * 40, "acme")
    [row] = decode_spans(req, "acme", r, box, now_ns=span.start_time_unix_nano).rows
    return json.loads(box.open(row.trace_id, row.span_id, row.payload))["a"].get(key)


R = Redactor(b"k" * 32)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(words=st.lists(WORDS, min_size=1, max_size=4))
def test_every_shape_of_a_key_gets_one_decision_on_both_paths(words: list[str]) -> None:
    kinds = {style: field_kind(shape(words, style)) for style in ("dotted", "snake", "kebab", "camel", "pascal")}
    assert len(set(kinds.values())) == 1, kinds
    for style in ("dotted", "snake", "camel"):
        key = shape(words, style)
        if key in SAFE_ATTRIBUTES:
            continue
        on_bridge, on_traces = bridge_value(key, R), traces_value(key, R)
        assert (on_bridge != VALUE) == (on_traces != VALUE), (key, on_bridge, on_traces)
        assert on_bridge == on_traces, key  # the same token, or the value kept on both
        assert (on_bridge != VALUE) == (kinds[style] is not None), key


def test_the_words_decide_not_the_last_segment() -> None:
    for key in ("customer.name", "requester.name", "billing.name", "contact.name", "customer.date_of_birth",
                "customer.passport", "customer.address", "customer.ssn", "contact.email"):
        assert traces_value(key, R) != VALUE and bridge_value(key, R) != VALUE, key
    for key in ("gen_ai.request.model", "tool.name", "order.status", "ticket.id", "server.address"):
        assert traces_value(key, R) == VALUE == bridge_value(key, R), key
