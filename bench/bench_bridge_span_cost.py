"""Per-span cost of @node + otel_bridge vs a bare OTel start_as_current_span.

Both sides run in the same process, same run, interleaved rounds: the host's SDK
TracerProvider has a BatchSpanProcessor with a do-nothing exporter; the bridge joins it.
Every ticket is a root span with SPANS_PER_TICKET children. Reports wall-clock ns per span
(the GIL-sharing background worker included) and the main thread's CPU ns per span.

    .venv/bin/python bench/bench_bridge_span_cost.py [--smoke]
Target: bridge / bare <= 1.25x.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from opentelemetry import trace  # noqa: E402
from opentelemetry.sdk._logs.export import LogRecordExporter, LogRecordExportResult  # noqa: E402
from opentelemetry.sdk.trace import TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult  # noqa: E402

import otel_bridge  # noqa: E402
from config.bridge import BridgeSettings  # noqa: E402
from otel_bridge import node, workflow  # noqa: E402

SPANS_PER_TICKET = 20


class NoopSpanExporter(SpanExporter):
    def export(self, spans):
        return SpanExportResult.SUCCESS


class NoopLogExporter(LogRecordExporter):
    def export(self, batch):
        return LogRecordExportResult.SUCCESS

    def shutdown(self):
        pass

    def force_flush(self, timeout_millis=30000):
        return True


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--rounds", type=int, default=None)
    ap.add_argument("--tickets", type=int, default=None)
    args = ap.parse_args()
    rounds = args.rounds or (3 if args.smoke else 9)
    tickets = args.tickets or (100 if args.smoke else 1000)

    host = TracerProvider()
    host.add_span_processor(BatchSpanProcessor(NoopSpanExporter()))
    trace.set_tracer_provider(host)
    otel_bridge.configure(BridgeSettings(_env_file=None, environment="test", pii_hash_key="bench"),
                          exporter=NoopLogExporter())
    bare = host.get_tracer("bare")

    def bare_ticket():
        with bare.start_as_current_span("ticket"):
            for _ in range(SPANS_PER_TICKET):
                with bare.start_as_current_span("step"):
                    pass

    @node("step")
    def step():
        pass

    @workflow("ticket")
    def bridge_ticket(t):
        for _ in range(SPANS_PER_TICKET):
            step()

    def measure(fn, arg_needed: bool):
        spans = tickets * (SPANS_PER_TICKET + 1)
        w0, c0 = time.perf_counter_ns(), time.thread_time_ns()
        for i in range(tickets):
            fn({"ticket_id": i}) if arg_needed else fn()
        w1, c1 = time.perf_counter_ns(), time.thread_time_ns()
        otel_bridge.flush(10)  # let the worker catch up outside the timed region
        return (w1 - w0) / spans, (c1 - c0) / spans

    measure(bare_ticket, False)  # warm-up
    measure(bridge_ticket, True)
    res = {"bare": [], "bridge": []}
    for _ in range(rounds):
        res["bare"].append(measure(bare_ticket, False))
        res["bridge"].append(measure(bridge_ticket, True))

    def med(name, idx):
        return statistics.median(r[idx] for r in res[name])

    print(f"per-span cost, {tickets} tickets x {SPANS_PER_TICKET + 1} spans, median of {rounds} rounds")
    print(f"{'variant':<34}{'wall ns/span':>14}{'cpu ns/span':>14}")
    print(f"{'bare start_as_current_span':<34}{med('bare', 0):>14.0f}{med('bare', 1):>14.0f}")
    print(f"{'@node + otel_bridge':<34}{med('bridge', 0):>14.0f}{med('bridge', 1):>14.0f}")
    ratio_w = med("bridge", 0) / med("bare", 0)
    ratio_c = med("bridge", 1) / med("bare", 1)
    print(f"{'ratio bridge/bare':<34}{ratio_w:>13.2f}x{ratio_c:>13.2f}x   (target <= 1.25x)")
    stats = otel_bridge.stats()
    print(f"logs built: {stats.get('traces_handled', 0)}, drops: "
          f"{ {k: v for k, v in stats.items() if k.startswith('dropped')} }")
    otel_bridge.shutdown(5)
    return 0


if __name__ == "__main__":
    sys.exit(main())
