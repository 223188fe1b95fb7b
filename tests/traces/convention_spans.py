"""One tool-using support agent (chat that asks for a tool, the tool, a retrieval, a second chat)
as the real instrumentations emit it: openinference-instrumentation-openai (OpenInference),
opentelemetry-instrumentation-openai-v2 (OTel GenAI) and Traceloop's traceloop-sdk +
opentelemetry-instrumentation-openai (OpenLLMetry), attribute names as in their sources. Planted
PII sits in messages, tool I/O, documents and person-naming attributes."""
from __future__ import annotations

import json

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import SpanKind

from .conftest import EMAIL, NAME, PHONE

USER_ID = "cust-88213"
SYSTEM = "You are the support agent of an online shop."
ASK = f"Hi, I am {NAME} ({USER_ID}). Where is my order? Call me at {PHONE} or write to {EMAIL}."
ARGS = json.dumps({"email": EMAIL})
RESULT = json.dumps({"order": "A-1", "status": "shipped", "phone": PHONE})
DOC = f"Order A-1 for {EMAIL} ships from the Milan warehouse."
ANSWER = f"Dear {NAME.split()[0]}, your order A-1 has shipped."
MODEL, RESPONSE_MODEL = "gpt-4o-mini", "gpt-4o-mini-2024-07-18"
# gpt-4o-mini in config/prices.yaml: 0.15 input, 0.075 cache_read, 0.60 output (USD per 1M tokens)
PRICE_IN, PRICE_CACHE, PRICE_OUT = 0.15, 0.075, 0.60


def price(inp: int, out: int, cache_read: int = 0) -> float:
    return ((inp - cache_read) * PRICE_IN + cache_read * PRICE_CACHE + out * PRICE_OUT) / 1e6


def _trace_id(span) -> str:
    return format(span.get_span_context().trace_id, "032x")


# --- OpenInference ---------------------------------------------------------------------------

def _oi_messages(prefix: str, messages: list[dict]) -> dict:
    out = {}
    for i, m in enumerate(messages):
        for key, value in m.items():
            out[f"{prefix}.{i}.message.{key}"] = value
    return out


OI_COST_2 = 0.00123  # llm.cost.total on the second call: wins over the price table
# using_metadata(...) of openinference-instrumentation: the app's pairs as one JSON attribute
METADATA = json.dumps({"customer_name": NAME, "channel": "email"})


def openinference_trace(provider: TracerProvider, session: str = "sess-oi-1") -> str:
    tracer = provider.get_tracer("openinference.instrumentation.openai")
    with tracer.start_as_current_span("support-agent") as root:
        root.set_attributes({"openinference.span.kind": "AGENT", "input.value": ASK, "input.mime_type": "text/plain",
                             "session.id": session, "user.id": USER_ID, "agent.name": "support",
                             "metadata": METADATA})
        with tracer.start_as_current_span("ChatCompletion", kind=SpanKind.CLIENT) as llm:
            llm.set_attributes({
                "openinference.span.kind": "LLM", "llm.system": "openai", "llm.provider": "openai",
                "llm.model_name": RESPONSE_MODEL, "llm.invocation_parameters": json.dumps({"model": MODEL}),
                "input.value": json.dumps({"model": MODEL, "messages": [{"role": "user", "content": ASK}]}),
                "input.mime_type": "application/json",
                **_oi_messages("llm.input_messages", [{"role": "system", "content": SYSTEM},
                                                      {"role": "user", "content": ASK}]),
                "llm.tools.0.tool.json_schema": json.dumps({"type": "function", "function": {"name": "order_lookup"}}),
                "output.value": json.dumps({"choices": [{"message": {"tool_calls": [{"id": "call_1"}]}}]}),
                "output.mime_type": "application/json",
                "llm.output_messages.0.message.role": "assistant",
                "llm.output_messages.0.message.tool_calls.0.tool_call.id": "call_1",
                "llm.output_messages.0.message.tool_calls.0.tool_call.function.name": "order_lookup",
                "llm.output_messages.0.message.tool_calls.0.tool_call.function.arguments": ARGS,
                "llm.token_count.prompt": 1200, "llm.token_count.completion": 40, "llm.token_count.total": 1240,
                "llm.token_count.prompt_details.cache_read": 1024})
        with tracer.start_as_current_span("order_lookup") as tool:
            tool.set_attributes({"openinference.span.kind": "TOOL", "tool.name": "order_lookup", "tool.id": "call_1",
                                 "tool.description": "Looks an order up by the customer's email",
                                 "tool.parameters": json.dumps({"type": "object", "properties": {"email": {}}}),
                                 "input.value": ARGS, "output.value": RESULT})
        with tracer.start_as_current_span("kb_search") as ret:
            ret.set_attributes({"openinference.span.kind": "RETRIEVER", "input.value": f"order status {EMAIL}",
                                "retrieval.documents.0.document.id": "kb-7",
                                "retrieval.documents.0.document.score": 0.82,
                                "retrieval.documents.0.document.content": DOC,
                                "retrieval.documents.0.document.metadata": json.dumps({"source": "kb"}),
                                "retrieval.documents.1.document.id": "kb-9",
                                "retrieval.documents.1.document.score": 0.61,
                                "retrieval.documents.1.document.content": "Shipping takes two days."})
        with tracer.start_as_current_span("ChatCompletion", kind=SpanKind.CLIENT) as llm:
            llm.set_attributes({
                "openinference.span.kind": "LLM", "llm.system": "openai", "llm.provider": "openai",
                "llm.model_name": RESPONSE_MODEL,
                **_oi_messages("llm.input_messages", [{"role": "user", "content": ASK},
                                                      {"role": "tool", "content": RESULT, "tool_call_id": "call_1"}]),
                "llm.output_messages.0.message.role": "assistant", "llm.output_messages.0.message.content": ANSWER,
                "output.value": ANSWER, "llm.token_count.prompt": 1500, "llm.token_count.completion": 200,
                "llm.token_count.total": 1700, "llm.cost.prompt": 0.001, "llm.cost.completion": 0.00023,
                "llm.cost.total": OI_COST_2})
        root.set_attribute("output.value", ANSWER)
        return _trace_id(root)


# --- OTel GenAI (opentelemetry-instrumentation-openai-v2, latest experimental) ----------------

def genai_trace(provider: TracerProvider, session: str = "conv-genai-1") -> str:
    tracer = provider.get_tracer("opentelemetry.instrumentation.openai_v2")
    with tracer.start_as_current_span("invoke_agent support") as root:
        root.set_attributes({"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "support",
                             "gen_ai.provider.name": "openai", "gen_ai.conversation.id": session,
                             "user.id": USER_ID, "user.full_name": NAME})
        with tracer.start_as_current_span(f"chat {MODEL}", kind=SpanKind.CLIENT) as chat:
            chat.set_attributes({
                "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": MODEL,
                "gen_ai.response.model": RESPONSE_MODEL, "gen_ai.response.id": "chatcmpl-1",
                "gen_ai.response.finish_reasons": ("tool_calls",), "server.address": "api.openai.com",
                "server.port": 443, "gen_ai.usage.input_tokens": 1200, "gen_ai.usage.output_tokens": 40,
                "gen_ai.usage.cache_read.input_tokens": 1024,
                "gen_ai.system_instructions": json.dumps([{"type": "text", "content": SYSTEM}]),
                "gen_ai.input.messages": json.dumps([{"role": "user", "parts": [{"type": "text", "content": ASK}]}]),
                "gen_ai.output.messages": json.dumps([{"role": "assistant", "parts": [
                    {"type": "tool_call", "id": "call_1", "name": "order_lookup", "arguments": {"email": EMAIL}}]}])})
        with tracer.start_as_current_span("execute_tool order_lookup") as tool:
            tool.set_attributes({"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "order_lookup",
                                 "gen_ai.tool.call.id": "call_1", "gen_ai.tool.type": "function",
                                 "gen_ai.tool.call.arguments": ARGS, "gen_ai.tool.call.result": RESULT})
        with tracer.start_as_current_span("retrieval kb") as ret:
            ret.set_attributes({"gen_ai.operation.name": "retrieval", "gen_ai.data_source.id": "kb",
                                "gen_ai.retrieval.query.text": f"order status {EMAIL}",
                                "gen_ai.retrieval.documents": json.dumps([{"id": "kb-7", "score": 0.82},
                                                                          {"id": "kb-9", "score": 0.61}])})
        with tracer.start_as_current_span(f"chat {MODEL}", kind=SpanKind.CLIENT) as chat:
            chat.set_attributes({
                "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": MODEL,
                "gen_ai.response.model": RESPONSE_MODEL, "gen_ai.usage.input_tokens": 1500,
                "gen_ai.usage.output_tokens": 200,
                "gen_ai.output.messages": json.dumps([{"role": "assistant", "parts": [
                    {"type": "text", "content": ANSWER}]}])})
        return _trace_id(root)


# --- OpenLLMetry (traceloop-sdk decorators + opentelemetry-instrumentation-openai) ------------

def _association(session: str) -> dict:
    # traceloop-sdk copies the association properties onto every span of the context
    return {"traceloop.association.properties.user_id": USER_ID,
            "traceloop.association.properties.session_id": session,
            "traceloop.association.properties.customer_name": NAME}


def openllmetry_trace(provider: TracerProvider, session: str = "sess-tl-1") -> str:
    tracer = provider.get_tracer("traceloop.tracer")
    assoc = _association(session)
    with tracer.start_as_current_span("support_agent.workflow") as root:
        root.set_attributes({"traceloop.span.kind": "workflow", "traceloop.workflow.name": "support_agent",
                             "traceloop.entity.name": "support_agent", "traceloop.entity.path": "",
                             "traceloop.entity.input": json.dumps({"args": [ASK], "kwargs": {}}), **assoc})
        with tracer.start_as_current_span("triage.agent") as agent:
            agent.set_attributes({"traceloop.span.kind": "agent", "traceloop.entity.name": "triage",
                                  "traceloop.workflow.name": "support_agent", **assoc})
            _openllmetry_agent_body(tracer, assoc)
        root.set_attribute("traceloop.entity.output", json.dumps(ANSWER))
        return _trace_id(root)


def _openllmetry_agent_body(tracer, assoc: dict) -> None:
    with tracer.start_as_current_span("openai.chat", kind=SpanKind.CLIENT) as chat:  # 0.4x names
        chat.set_attributes({
            "llm.request.type": "chat", "gen_ai.system": "openai", "gen_ai.request.model": MODEL,
            "gen_ai.response.model": RESPONSE_MODEL, "llm.is_streaming": False,
            "gen_ai.openai.api_base": "https://api.openai.com/v1/",
            "gen_ai.prompt.0.role": "system", "gen_ai.prompt.0.content": SYSTEM,
            "gen_ai.prompt.1.role": "user", "gen_ai.prompt.1.content": ASK,
            "llm.request.functions.0.name": "order_lookup",
            "gen_ai.completion.0.role": "assistant", "gen_ai.completion.0.finish_reason": "tool_calls",
            "gen_ai.completion.0.tool_calls.0.id": "call_1", "gen_ai.completion.0.tool_calls.0.name": "order_lookup",
            "gen_ai.completion.0.tool_calls.0.arguments": ARGS,
            "gen_ai.usage.prompt_tokens": 1200, "gen_ai.usage.completion_tokens": 40, "llm.usage.total_tokens": 1240,
            "gen_ai.usage.cache_read_input_tokens": 1024, **assoc})
    with tracer.start_as_current_span("order_lookup.tool") as tool:
        tool.set_attributes({"traceloop.span.kind": "tool", "traceloop.entity.name": "order_lookup",
                             "traceloop.entity.input": json.dumps({"args": [], "kwargs": {"email": EMAIL}}),
                             "traceloop.entity.output": RESULT, **assoc})
    with tracer.start_as_current_span("pinecone.query", kind=SpanKind.CLIENT) as ret:
        ret.set_attributes({"db.system": "pinecone", "db.operation": "query", "pinecone.query.top_k": 2, **assoc})
        for doc_id, score, text in (("kb-7", 0.82, DOC), ("kb-9", 0.61, "Shipping takes two days.")):
            ret.add_event("db.query.result", {"db.query.result.id": doc_id, "db.query.result.score": score,
                                              "db.query.result.document": text})
    with tracer.start_as_current_span(f"chat {MODEL}", kind=SpanKind.CLIENT) as chat:  # 0.5x: GenAI names
        chat.set_attributes({
            "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": MODEL,
            "gen_ai.response.model": RESPONSE_MODEL, "gen_ai.usage.input_tokens": 1500,
            "gen_ai.usage.output_tokens": 200, "llm.usage.total_tokens": 1700,
            "gen_ai.prompt.0.role": "user", "gen_ai.prompt.0.content": ASK,
            "gen_ai.completion.0.role": "assistant", "gen_ai.completion.0.content": ANSWER, **assoc})
