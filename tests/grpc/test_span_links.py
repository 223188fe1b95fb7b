"""Span links (OTLP `links`) survive staging and assembly, redacted like span attributes, and the
ticket page links to the other ticket only when it is a stored ticket of the same tenant.

Spans arrive over the live gRPC port; the assembled logs are read from PostgreSQL; the page is
fetched from the same live server by a signed-in user.
"""
from __future__ import annotations

import re
import secrets
import time

import httpx
import psycopg
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from collector_api.store.accounts.principals import create_user
from collector_api.store.core.db import create_pool
from tests.collector.helpers import make_log, make_record, make_request
from tests.helpers import make_key, run_async
from tests.interop.helpers import assert_no_planted_pii
from tests.traces.helpers import EMAIL, PHONE, wait_for_logs
from viewer.auth import hash_password

from .helpers import CALL_TIMEOUT_S, logs_stub, span_request, traces_stub

PASSWORD = "links password 1"


def _kv(key: str, value: str) -> KeyValue:
    return KeyValue(key=key, value=AnyValue(string_value=value))


def _root(trace_id: bytes, ticket: str, links: list[Span.Link] = ()):
    request = span_request(trace_id, secrets.token_bytes(8), links=list(links),
                           attributes=[_kv("gen_ai.operation.name", "invoke_agent"), _kv("flusso.ticket_id", ticket)])
    return request, request.resource_spans[0].scope_spans[0].spans[0].span_id


def _sign_in(server, email: str, role: str, client_id: str | None) -> httpx.Client:
    async def go():
        async with create_pool(server.dsn) as pool:
            await create_user(pool, email, hash_password(PASSWORD), role, client_id)
    run_async(go())
    client = httpx.Client(base_url=server.url, timeout=30)
    token = client.get("/login").text.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    r = client.post("/login", data={"email": email, "password": PASSWORD, "csrf_token": token, "next": "/"})
    assert r.status_code == 303, r.text[:300]
    return client


def test_links_kept_redacted_and_shown_as_ticket_links(grpc_server, channel, acme_key, db_dsn):
    acme = (("x-api-key", acme_key),)
    globex = (("x-api-key", make_key(db_dsn, "globex")),)
    first, first_span = _root(secrets.token_bytes(16), "L-1")
    traces_stub(channel).Export(first, metadata=acme, timeout=CALL_TIMEOUT_S)
    other_tenant = make_log("globex", ticket_id="G-1")  # a stored ticket, of another tenant
    logs_stub(channel).Export(make_request(make_record(other_tenant)), metadata=globex, timeout=CALL_TIMEOUT_S)
    first_trace = first.resource_spans[0].scope_spans[0].spans[0].trace_id
    unknown = secrets.token_bytes(16)
    links = [Span.Link(trace_id=first_trace, span_id=first_span,
                       attributes=[_kv("link.reason", f"follow-up, customer {EMAIL} called {PHONE}"),
                                   _kv("user.email", EMAIL)]),
             Span.Link(trace_id=bytes.fromhex(other_tenant["trace_id"]), span_id=b"\x05" * 8),
             Span.Link(trace_id=unknown, span_id=b"\x06" * 8),
             Span.Link(trace_id=b"\x00" * 16, span_id=b"\x07" * 8)]  # points nowhere: not kept
    second, _ = _root(secrets.token_bytes(16), "L-2", links)
    traces_stub(channel).Export(second, metadata=acme, timeout=CALL_TIMEOUT_S)

    rows = {r["ticket_id"]: r for r in wait_for_logs(db_dsn, 3, timeout=30)}
    assert {"L-1", "L-2", "G-1"} <= set(rows), list(rows)
    kept = [s for s in rows["L-2"]["log"]["trace"]["spans"] if s.get("links")]
    assert len(kept) == 1 and [link["trace_id"] for link in kept[0]["links"]] == [
        first_trace.hex(), other_tenant["trace_id"], unknown.hex()]
    follow_up = kept[0]["links"][0]
    assert follow_up["span_id"] == first_span.hex()
    assert follow_up["attributes"]["link.reason"].startswith("follow-up, customer ")
    assert EMAIL not in str(follow_up) and PHONE not in str(follow_up)  # redacted like span attributes
    assert follow_up["attributes"]["user.email"] != EMAIL
    assert_no_planted_pii_but_logs(db_dsn)

    for email, role, client_id in ((f"p{time.monotonic_ns()}@example.com", "provider", None),
                                   (f"c{time.monotonic_ns()}@example.com", "client", "acme")):
        client = _sign_in(grpc_server, email, role, client_id)
        try:
            page = client.get(f"/tickets/{rows['L-2']['id']}")
        finally:
            client.close()
        assert page.status_code == 200, page.text[:300]
        hrefs = set(re.findall(r'href="/tickets/(\d+)"', page.text))
        assert str(rows["L-1"]["id"]) in hrefs, role  # same tenant: a link to the other ticket
        assert str(rows["G-1"]["id"]) not in hrefs, role  # another tenant's ticket: never linked
        assert unknown.hex() in page.text and other_tenant["trace_id"] in page.text


def assert_no_planted_pii_but_logs(dsn: str) -> None:
    """The planted values are in no table (the globex workflow log carries none of them)."""
    with psycopg.connect(dsn) as conn:
        texts = [r[0] for r in conn.execute("SELECT log_data::text FROM workflow_logs").fetchall()]
    assert texts and not [t for t in texts if EMAIL in t or PHONE in t]
    assert_no_planted_pii(dsn)


def test_sdk_and_otlp_span_links_are_the_same_records():
    """The bridge (from_sdk_span) and the collector (OTLP span_record) read links alike, and the
    builder writes them into trace.spans[].links; a span without links has no `links` key."""
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.trace import Link

    from collector_api.traces.otlp_spans import span_records
    from otel_bridge.assemble import build_workflow_log
    from otel_bridge.spanrecord import from_sdk_span

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("links")
    with tracer.start_as_current_span("earlier") as earlier:
        pass
    with tracer.start_as_current_span("workflow", links=[Link(earlier.get_span_context(), {"why": "retry"})]):
        with tracer.start_as_current_span("child"):
            pass
    spans = [s for s in exporter.get_finished_spans() if s.name != "earlier"]
    request = ExportTraceServiceRequest.FromString(encode_spans(spans).SerializeToString())
    direct = {r.name: r.links for r in map(from_sdk_span, spans)}
    received = {r.name: r.links for r in span_records(request.resource_spans)}
    assert direct == received and len(direct["workflow"]) == 1 and direct["child"] == ()
    link = direct["workflow"][0]
    assert (link.trace_id, link.span_id, dict(link.attributes)) == (
        earlier.get_span_context().trace_id, earlier.get_span_context().span_id, {"why": "retry"})
    entries = {e["name"]: e for e in build_workflow_log(spans, identification={"environment": "t"})["trace"]["spans"]}
    assert entries["workflow"]["links"] == [{"trace_id": format(link.trace_id, "032x"),
                                             "span_id": format(link.span_id, "016x"), "attributes": {"why": "retry"}}]
    assert "links" not in entries["child"]
