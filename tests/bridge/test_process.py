"""Process-level behaviour, each in a fresh interpreter: joining the host's TracerProvider,
fork safety, the exit hook."""

import time
from pathlib import Path

from .helpers import COMMON, run

ROOT = Path(__file__).resolve().parents[2]


def test_joins_an_existing_sdk_provider_whatever_its_sampler():
    r = run(COMMON + """
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ParentBased, ALWAYS_OFF
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter
host = TracerProvider(sampler=ParentBased(ALWAYS_OFF))
host_exp = InMemorySpanExporter()
host.add_span_processor(SimpleSpanProcessor(host_exp))
trace.set_tracer_provider(host)
exp = InMemoryLogRecordExporter()
st = otel_bridge.configure(BridgeSettings(**S), exporter=exp)
assert st.joined_host_provider and trace.get_tracer_provider() is host
host_tracer = trace.get_tracer("host-lib")

@workflow("flusso_ticket")
def handle(t):
    with host_tracer.start_as_current_span("http.get", kind=trace.SpanKind.CLIENT):
        pass
    with host_tracer.start_as_current_span("GET /users/ann@example.com", kind=trace.SpanKind.CLIENT,
                                           attributes={"url.full": "https://x.example/?email=ann@example.com"}):
        pass

with host_tracer.start_as_current_span("web-request"):  # unsampled by the host
    handle({"ticket_id": "T-1"})
otel_bridge.flush(5)
logs = [json.loads(x.log_record.body) for x in exp.get_finished_logs()]
assert len(logs) == 1, logs
names = {s["name"]: s for s in logs[0]["trace"]["spans"]}
assert len(names) == 3 and {"flusso_ticket", "http.get"} <= set(names), names
assert "ann@example.com" not in json.dumps(logs[0])
assert names["http.get"]["kind"] == "otel.client"
print("OK")
""")
    assert r.returncode == 0 and "OK" in r.stdout, r.stderr


def test_never_makes_its_own_provider_the_global_one():
    # Its spans carry raw record.* payloads: a processor added to the global provider later
    # would export them (test_host_spans_privacy.py checks the full scenario).
    r = run(COMMON + """
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
st = otel_bridge.configure(BridgeSettings(**S))
assert not st.joined_host_provider and not isinstance(trace.get_tracer_provider(), TracerProvider)
print("OK")
""")
    assert r.returncode == 0 and "OK" in r.stdout, r.stderr


def test_fork_child_ships_its_own_tickets(receiver):
    r = run(COMMON + """
otel_bridge.configure(BridgeSettings(**S), endpoint=sys.argv[1])

@workflow("flusso_ticket")
def handle(t):
    record.ticket(t["ticket_id"])

handle({"ticket_id": "parent-1"})
pid = os.fork()
if pid == 0:
    handle({"ticket_id": "child-1"})
    ok = otel_bridge.flush(5)
    os._exit(0 if ok else 3)
_, status = os.waitpid(pid, 0)
handle({"ticket_id": "parent-2"})
assert otel_bridge.flush(5)
print("OK", os.waitstatus_to_exitcode(status))
""", receiver.url)
    assert r.returncode == 0 and "OK 0" in r.stdout, r.stderr
    recs = receiver.wait_for(3)
    ids = sorted(log["ticket_info"]["ticket_id"] for _, log in recs)
    assert ids == ["child-1", "parent-1", "parent-2"]


def test_exit_hook_delivers_pending_logs(receiver):
    r = run(COMMON + """
S["log_batch_delay_millis"] = 60000
otel_bridge.configure(BridgeSettings(**S), endpoint=sys.argv[1])

@workflow("flusso_ticket")
def handle(t):
    pass

for i in range(3):
    handle({"ticket_id": f"T-{i}"})
print("exiting")
""", receiver.url)
    assert r.returncode == 0, r.stderr
    assert len(receiver.wait_for(3, timeout=2)) == 3


def test_exit_is_bounded_when_the_collector_is_black_holed(blackhole):
    t0 = time.monotonic()
    r = run(COMMON + """
S.update(export_timeout_seconds=30, shutdown_timeout_seconds=1.0)
otel_bridge.configure(BridgeSettings(**S), endpoint=sys.argv[1])

@workflow("flusso_ticket")
def handle(t):
    pass

for i in range(3):
    handle({"ticket_id": f"T-{i}"})
time.sleep(0.2)
""", blackhole, timeout=25)
    assert r.returncode == 0, r.stderr
    assert time.monotonic() - t0 < 8  # interpreter start + 1 s deadline, not the 30 s exporter timeout
