"""A small tool-using agent on the real `openai` client, traced by a third-party instrumentation.

Runs in its own virtualenv (.venv-interop/<convention>, requirements-<convention>.txt), never
in the project's: it imports nothing from this repository. The loop: one chat call that asks
for a tool (the fake server answers with a tool_call), the tool (wrapped in a span the way the
convention does it, as the instrumentation only traces the `openai` calls), a second chat call
for the final answer, all under one root agent span. The stock OTLPSpanExporter sends to
`<collector>/v1/traces` through a BatchSpanProcessor; force_flush + shutdown at the end.

    python agent.py --convention openinference|genai|traceloop

Environment: OPENAI_BASE_URL (the fake server, .../v1), FLUSSO_COLLECTOR_URL, FLUSSO_INGEST_KEY,
INTEROP_DUMP (optional: also write every finished span as OTel JSON to that file).
Planted PII (the test checks it reaches no table): the user message names a person, an email
and a phone; the person-naming attributes carry the email (user.id, session.id, Traceloop's
association properties) or the name (enduser.id, the generic OTel attribute, on every root: a
name in free text is only recognised when an attribute names the person).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

NAME, EMAIL, PHONE = "Annalisa Rossetti", "annalisa.rossetti@example.com", "+39 347 555 0199"
MODEL = "gpt-4o-mini"
USER_MESSAGE = f"Hi, I am {NAME}. Where is my order A-77? Call me at {PHONE} or write to {EMAIL}."
TOOLS = [{"type": "function", "function": {
    "name": "order_lookup", "description": "Look up an order's shipping status",
    "parameters": {"type": "object", "properties": {"order_id": {"type": "string"}, "email": {"type": "string"}},
                   "required": ["order_id"]}}}]


def order_lookup(order_id: str, email: str = "") -> dict:
    return {"order_id": order_id, "status": "shipped", "eta_days": 2, "contact": email}


def provider_for(convention: str):
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    provider = TracerProvider(resource=Resource.create({"service.name": f"interop-{convention}",
                                                        "deployment.environment.name": "test"}))
    exporter = OTLPSpanExporter(endpoint=os.environ["FLUSSO_COLLECTOR_URL"].rstrip("/") + "/v1/traces",
                                headers={"X-API-Key": os.environ["FLUSSO_INGEST_KEY"]}, timeout=10)
    provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=200))
    memory = None
    if os.environ.get("INTEROP_DUMP"):
        memory = InMemorySpanExporter()
        provider.add_span_processor(SimpleSpanProcessor(memory))
    return provider, memory


def instrument(convention: str, provider) -> None:
    if convention == "genai":
        # Content capture on, on the span (the newest GenAI conventions: gen_ai.input/output.messages).
        os.environ.setdefault("OTEL_SEMCONV_STABILITY_OPT_IN", "gen_ai_latest_experimental")
        os.environ.setdefault("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "SPAN_ONLY")
    if convention == "openinference":
        from openinference.instrumentation.openai import OpenAIInstrumentor
    elif convention == "genai":
        from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor
    else:
        from opentelemetry.instrumentation.openai import OpenAIInstrumentor
    OpenAIInstrumentor().instrument(tracer_provider=provider)


@contextmanager
def root_span(convention: str, tracer) -> Iterator:
    """The agent span as each convention (or its SDK's decorators) writes it, person-naming ids set."""
    if convention == "openinference":
        from openinference.instrumentation import using_attributes

        with using_attributes(session_id=EMAIL, user_id=EMAIL), \
                tracer.start_as_current_span("support_agent") as span:
            span.set_attribute("openinference.span.kind", "AGENT")
            span.set_attribute("enduser.id", NAME)  # the generic OTel attribute, on every convention's root
            span.set_attribute("input.value", USER_MESSAGE)
            span.set_attribute("input.mime_type", "text/plain")
            yield span
    elif convention == "genai":
        with tracer.start_as_current_span("invoke_agent support") as span:
            span.set_attribute("gen_ai.operation.name", "invoke_agent")
            span.set_attribute("gen_ai.agent.name", "support")
            span.set_attribute("gen_ai.provider.name", "openai")
            span.set_attribute("user.id", EMAIL)
            span.set_attribute("session.id", EMAIL)
            span.set_attribute("enduser.id", NAME)
            yield span
    else:
        # What traceloop-sdk's @agent decorator writes (span "<name>.agent"), association properties by hand.
        with tracer.start_as_current_span("support_agent.agent") as span:
            span.set_attribute("traceloop.span.kind", "agent")
            span.set_attribute("traceloop.entity.name", "support_agent")
            span.set_attribute("traceloop.workflow.name", "support_agent")
            span.set_attribute("traceloop.entity.input", json.dumps({"args": [USER_MESSAGE], "kwargs": {}}))
            span.set_attribute("traceloop.association.properties.user_id", EMAIL)
            span.set_attribute("traceloop.association.properties.session_id", EMAIL)
            span.set_attribute("enduser.id", NAME)
            yield span


def set_output(convention: str, span, answer: str) -> None:
    if convention == "openinference":
        span.set_attribute("output.value", answer)
    elif convention == "traceloop":
        span.set_attribute("traceloop.entity.output", json.dumps(answer))


@contextmanager
def tool_span(convention: str, tracer, call) -> Iterator:
    """The tool's span in the convention's own words (none of the instrumentations traces tools)."""
    name, arguments = call.function.name, call.function.arguments
    if convention == "openinference":
        with tracer.start_as_current_span(name) as span:
            span.set_attribute("openinference.span.kind", "TOOL")
            span.set_attribute("tool.name", name)
            span.set_attribute("tool.id", call.id)
            span.set_attribute("tool.parameters", json.dumps(TOOLS[0]["function"]["parameters"]))
            span.set_attribute("input.value", arguments)
            span.set_attribute("input.mime_type", "application/json")
            yield span
    elif convention == "genai":
        with tracer.start_as_current_span(f"execute_tool {name}") as span:
            span.set_attribute("gen_ai.operation.name", "execute_tool")
            span.set_attribute("gen_ai.tool.name", name)
            span.set_attribute("gen_ai.tool.type", "function")
            span.set_attribute("gen_ai.tool.call.id", call.id)
            span.set_attribute("gen_ai.tool.call.arguments", arguments)
            yield span
    else:
        with tracer.start_as_current_span(f"{name}.tool") as span:
            span.set_attribute("traceloop.span.kind", "tool")
            span.set_attribute("traceloop.entity.name", name)
            span.set_attribute("traceloop.workflow.name", "support_agent")
            span.set_attribute("traceloop.entity.input", json.dumps({"args": [], "kwargs": json.loads(arguments)}))
            yield span


def set_tool_result(convention: str, span, result: str) -> None:
    key = {"openinference": "output.value", "genai": "gen_ai.tool.call.result",
           "traceloop": "traceloop.entity.output"}[convention]
    span.set_attribute(key, result)


def run(convention: str) -> dict:
    import openai
    from opentelemetry.trace import format_trace_id

    provider, memory = provider_for(convention)
    instrument(convention, provider)
    tracer = provider.get_tracer("interop-agent")
    client = openai.OpenAI(api_key="sk-fake-interop", max_retries=0, timeout=10)  # OPENAI_BASE_URL from env
    messages: list = [{"role": "system", "content": "You are a support agent. Use tools."},
                      {"role": "user", "content": USER_MESSAGE}]
    with root_span(convention, tracer) as root:
        first = client.chat.completions.create(model=MODEL, messages=messages, tools=TOOLS)
        call = first.choices[0].message.tool_calls[0]
        with tool_span(convention, tracer, call) as span:
            result = json.dumps(order_lookup(**json.loads(call.function.arguments)))
            set_tool_result(convention, span, result)
        messages.append(first.choices[0].message.model_dump(exclude_none=True))
        messages.append({"role": "tool", "tool_call_id": call.id, "content": result})
        second = client.chat.completions.create(model=MODEL, messages=messages, tools=TOOLS)
        answer = second.choices[0].message.content or ""
        set_output(convention, root, answer)
        trace_id = format_trace_id(root.get_span_context().trace_id)
    flushed = provider.force_flush(timeout_millis=15_000)
    if memory is not None:
        spans = [json.loads(s.to_json()) for s in memory.get_finished_spans()]
        with open(os.environ["INTEROP_DUMP"], "w", encoding="utf-8") as fh:
            json.dump(spans, fh, indent=1, sort_keys=True)
    provider.shutdown()
    return {"trace_id": trace_id, "flushed": flushed, "answer": answer}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--convention", required=True, choices=("openinference", "genai", "traceloop"))
    summary = run(parser.parse_args().convention)
    print(json.dumps(summary))
    return 0 if summary["flushed"] else 1


if __name__ == "__main__":
    sys.exit(main())
