"""/v1/traces under the one policy: every key shape that names a person is hashed, person values
from event, link and resource attributes, span names and status messages are known values of the
trace, a name written with its email is caught, an email used as a key is scrubbed, and the root
output that becomes the draft is redacted once decoded. Nothing planted is raw anywhere in the
database (staging text and bytes, trace state, logs)."""
from __future__ import annotations

import json
import time

import httpx
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

from tests.traces.helpers import assert_nowhere, wait_for_logs

PLANTED = {
    "customer.name": "Ottavio Fumagalli", "requester.name": "Brunilde Zanetti", "billing.name": "Ercole Vianello",
    "contact.name": "Settimia Lorusso", "customer.address": "Via dei Serpenti 42, Roma",
    "customer.date_of_birth": "1987-03-14", "customer.passport": "YA1234567", "customer_id": "CUST-778812",
}
EVENT_NAME = "Leopoldina Carraro"  # only in an event's attributes, then greeted in the draft
LINK_EMAIL = "linkonly@example.org"  # only in a link's attributes, then quoted in a prompt
LINK_NAME = "Rosalba Quintavalle"  # only in a link's attributes (no pattern), then named in a prompt
RESOURCE_USER = "Gualtiero Pennacchi"  # the resource's enduser.id
WITH_EMAIL = ("Jane Doe", "jane.doe@example.com")  # "Jane Doe <jane.doe@example.com>" and no attribute
KEY_EMAIL = "key.holder@example.net"  # an email used as an attribute key
STATUS_NAME = ("Mirco Tagliaferri", "mirco.tagliaferri@example.com")  # only in a status message


def _kv(key: str, value: object) -> KeyValue:
    return KeyValue(key=key, value=AnyValue(string_value=str(value)))


def _span(sid: int, parent: int | None, name: str, attrs: dict, **extra) -> Span:
    now = time.time_ns() - 30 * 10**9
    s = Span(trace_id=b"\x07" * 16, span_id=sid.to_bytes(8, "big"), name=name, start_time_unix_nano=now + sid,
             end_time_unix_nano=now + 10**6 + sid, attributes=[_kv(k, v) for k, v in attrs.items()], **extra)
    if parent:
        s.parent_span_id = parent.to_bytes(8, "big")
    return s


def _request() -> bytes:
    root = _span(1, None, "support agent", {"openinference.span.kind": "AGENT", "flusso.ticket_id": "T-PRIV",
                                            **PLANTED,
                                            # JSON-escaped on the wire: only decoded does it read as a name and an email
                                            "output.value": json.dumps(
                                                f"Dear {EVENT_NAME} and {WITH_EMAIL[0]}, write to "
                                                f"{WITH_EMAIL[1]} or {LINK_EMAIL}; {PLANTED['customer.name']} "
                                                f"lives at {PLANTED['customer.address']}.", ensure_ascii=True)
                                            .replace("@", "\\u0040"),
                                            "output.mime_type": "application/json"})
    root.events.add(name="customer", time_unix_nano=root.start_time_unix_nano,
                    attributes=[_kv("user.full_name", EVENT_NAME)])
    llm = _span(2, 1, "chat", {"openinference.span.kind": "LLM", "llm.model_name": "gpt-4o-2024-08-06",
                               "input.value": f"From {WITH_EMAIL[0]} <{WITH_EMAIL[1]}>: where is my order? "
                                              f"cc {LINK_EMAIL.split('@')[0]}, {LINK_NAME} and {RESOURCE_USER}",
                               KEY_EMAIL: "yes"})
    llm.links.add(trace_id=b"\x08" * 16, span_id=b"\x01" * 8, attributes=[_kv("user.email", LINK_EMAIL),
                                                                        _kv("user.full_name", LINK_NAME)])
    tool = _span(3, 1, "execute_tool crm", {"openinference.span.kind": "TOOL", "tool.name": "crm",
                                           "output.value": f"{STATUS_NAME[0]} not found"},
                 status=Status(code=Status.STATUS_CODE_ERROR,
                               message=f"no account for {STATUS_NAME[0]} <{STATUS_NAME[1]}>"))
    resource = Resource(attributes=[_kv("service.name", "agent"), _kv("enduser.id", RESOURCE_USER)])
    return ExportTraceServiceRequest(resource_spans=[ResourceSpans(
        resource=resource, scope_spans=[ScopeSpans(spans=[root, llm, tool])])]).SerializeToString()


def test_nothing_planted_is_raw_anywhere(server, ingest_key, db_dsn):
    resp = httpx.post(f"{server.url}/v1/traces", content=_request(), timeout=10,
                      headers={"Content-Type": "application/x-protobuf", "X-API-Key": ingest_key})
    assert resp.status_code == 200, resp.text
    [row] = wait_for_logs(db_dsn, 1)
    log = row["log"]
    draft = log["trace"]["output"]["draft"]
    assert draft.startswith("Dear [name:") and "write to [email:" in draft  # readable around the tokens
    attrs = next(e["attributes"] for e in log["trace"]["spans"] if e["name"] == "support agent")
    for key in PLANTED:
        assert attrs[key].startswith(("[name:", "[text:", "[user:")), key
    planted = [*PLANTED.values(), EVENT_NAME, LINK_EMAIL, LINK_NAME, *LINK_NAME.split(), RESOURCE_USER,
               *WITH_EMAIL, KEY_EMAIL, *STATUS_NAME,
               *EVENT_NAME.split(), *RESOURCE_USER.split(), "Fumagalli", "Serpenti"]
    assert_nowhere(db_dsn, planted, min_blobs=3)
    assert log["trace"]["llm_calls"][0]["model"] == "gpt-4o-2024-08-06"
