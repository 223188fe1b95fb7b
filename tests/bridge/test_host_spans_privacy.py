"""The redaction boundary towards the host's own tracing.

Each case runs in a fresh interpreter (the global TracerProvider can be set once per
process): the host's SDK TracerProvider exports to an InMemorySpanExporter, set up before
configure() or after it; an auto-instrumentation-like host span is current inside a @node
(and inside the @workflow body) while record.* is called with raw customer data; a span
processor is added later to whatever the global provider is. No raw value given to record.*
may appear on any span the host exports (name, attributes, events, status, links), the
bridge's provider is never the global one, and the workflow log is what it was.
"""

import json

import pytest

from .helpers import COMMON, run

SCENARIO = COMMON + """
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter
from otel_bridge import runtime

ORDER = sys.argv[1]
RAW = json.loads(sys.argv[2])


def host_setup():
    host = TracerProvider()
    exp = InMemorySpanExporter()
    host.add_span_processor(SimpleSpanProcessor(exp))
    trace.set_tracer_provider(host)
    return host, exp


log_exp = InMemoryLogRecordExporter()
if ORDER == "host-first":
    host, host_exp = host_setup()
    otel_bridge.configure(BridgeSettings(**S), exporter=log_exp)
elif ORDER == "bridge-first":
    otel_bridge.configure(BridgeSettings(**S), exporter=log_exp)
    host, host_exp = host_setup()
else:  # no host provider at all: the bridge must not become the global one
    otel_bridge.configure(BridgeSettings(**S), exporter=log_exp)
    host, host_exp = None, InMemorySpanExporter()
glob = trace.get_tracer_provider()
assert glob is not runtime._private_provider, "the bridge's provider is the global one"
late_exp = InMemorySpanExporter()  # a processor the host adds later, to the global provider
if host is not None:
    assert glob is host, glob
    glob.add_span_processor(SimpleSpanProcessor(late_exp))
else:
    assert not isinstance(glob, TracerProvider), glob
host_tracer = trace.get_tracer("openinference.instrumentation.openai")


@node("react_agent", kind="agent")
def react(ticket):
    with host_tracer.start_as_current_span("ChatCompletion", kind=trace.SpanKind.CLIENT):
        record.react_iteration(thought="Look up " + RAW["email"], action="order_lookup",
                               action_input={"email": RAW["email"], "card": RAW["card"]},
                               observation=RAW["observation"])
        record.llm_call(model="gpt-4o-mini", input_tokens=12, output_tokens=3, prompt=RAW["observation"])
        record.retrieval(source="text", query=RAW["email"], results=[{"id": "kb-7", "title": RAW["name"]}])
        record.decision(name="route", choice="react", reasoning="because " + RAW["name"], confidence=0.8)
        record.evidence(items=[{"source": "crm", "claim": RAW["observation"]}], resolution=RAW["name"])
        record.pii(RAW["third_party"])
        record.metric("custom", 1.5)
        record.draft("Hello " + RAW["name"] + ", card " + RAW["card"])
    return "shipped"


@workflow("flusso_ticket")
def handle(ticket):
    with host_tracer.start_as_current_span("http.receive"):
        record.ticket(ticket["id"], subject="Order for " + RAW["name"], requester_email=RAW["email"],
                      requester_name=RAW["name"], channel="email", phone=RAW["phone"], pii=["phone"])
        answer = react(ticket)
        record.outcome(status="SUCCESS", resolution_status="resolved", note=RAW["observation"])
    return answer


with host_tracer.start_as_current_span("web-request"):
    assert handle({"id": "T-1"}) == "shipped"
assert otel_bridge.flush(5)
host_spans = list(host_exp.get_finished_spans()) + list(late_exp.get_finished_spans())
logs = [json.loads(x.log_record.body) for x in log_exp.get_finished_logs()]


def span_text(s):
    return json.dumps({"name": s.name, "attributes": dict(s.attributes or {}),
                       "events": [[e.name, dict(e.attributes or {})] for e in s.events],
                       "status": s.status.description,
                       "links": [dict(link.attributes or {}) for link in s.links]}, default=str)


print(json.dumps({"host_spans": [s.name for s in host_spans],
                  "host_text": [span_text(s) for s in host_spans],
                  "logs": logs}))
"""

RAW = {
    "email": "ann.rossi@example.com",
    "name": "Ann Rossi",
    "card": "4111 1111 1111 1111",
    "phone": "+39 347 555 0199",
    "third_party": "Bartholomew Quill",
    "observation": "Order A-77 for Ann Rossi shipped to 12 Via Roma; obs-marker-5521",
}
# What the host must never see, as given to record.* (and the pieces a partial leak would show).
NEVER_ON_HOST = [*RAW.values(), "ann.rossi", "Rossi", "4111", "obs-marker-5521", "Bartholomew"]


@pytest.mark.parametrize("order", ["host-first", "bridge-first", "no-host"])
def test_raw_record_values_never_reach_a_host_span(order):
    r = run(SCENARIO, order, json.dumps(RAW))
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    if order != "no-host":
        # The host's own spans are exported, and only those: no bridge span leaves through it.
        assert sorted(out["host_spans"]) == sorted(["ChatCompletion", "http.receive", "web-request"] * 2)
    for text in out["host_text"]:
        for raw in NEVER_ON_HOST:
            assert raw not in text, f"{raw!r} on a host span: {text}"
        assert "flusso." not in text, text  # no record.* event or bridge attribute at all

    # The workflow log is unchanged: every record.* call is in it, redacted as before.
    (log,) = out["logs"]
    text = json.dumps(log)
    for raw in (RAW["email"], RAW["name"], RAW["card"], RAW["phone"], RAW["third_party"]):
        assert raw not in text, raw
    trace = log["trace"]
    (it,) = trace["react"]["iterations"]
    assert it["action"] == "order_lookup" and "obs-marker-5521" in it["observation"]
    assert trace["ticket"]["requester_email"].startswith("[email:")
    assert trace["ticket"]["phone"].startswith("[")
    assert trace["output"]["draft"].startswith("Hello [name:")
    assert [d["name"] for d in trace["output"]["decisions"]] == ["route"]
    assert log["metrics"]["custom"] == 1.5
    assert log["metrics"]["input_tokens"] == 12
    spans = {s["name"]: s for s in trace["spans"]}
    assert spans["react_agent"]["attributes"]["gen_ai.request.model"] == "gpt-4o-mini"
    if order != "no-host":
        # the host's spans inside the ticket are still part of its log (the bridge joined the
        # host's provider, also when the host set it up after configure())
        assert {"ChatCompletion", "http.receive"} <= set(spans), set(spans)
