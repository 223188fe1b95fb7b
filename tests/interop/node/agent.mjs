// A small tool-using agent on the official OpenTelemetry JS SDK (versions in package-lock.json).
// Plain fetch against an OpenAI-compatible /v1/chat/completions; OTel GenAI attributes set by
// hand: an invoke_agent root, two chat spans (gen_ai.request.model, gen_ai.usage.*), one
// execute_tool span. Stock OTLPTraceExporter to <collector>/v1/traces in a BatchSpanProcessor,
// forceFlush + shutdown at the end. Prints one JSON line: {trace_id, answer}.
//
// Environment: OPENAI_BASE_URL (…/v1), FLUSSO_COLLECTOR_URL, FLUSSO_INGEST_KEY; with
// FLUSSO_OTLP_GRPC_URL (http://host:port) the stock OTLP/gRPC exporter sends there instead, the key
// as gRPC metadata from OTEL_EXPORTER_OTLP_HEADERS (x-api-key=...), as a deployment would set it.
// Planted PII (the test checks no table holds it): the user message names a person, an email and
// a phone; user.id and session.id are the email, enduser.id the name.
import { SpanStatusCode, context, trace } from "@opentelemetry/api";
import { OTLPTraceExporter as OTLPGrpcTraceExporter } from "@opentelemetry/exporter-trace-otlp-grpc";
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-http";
import { resourceFromAttributes } from "@opentelemetry/resources";
import { BatchSpanProcessor, NodeTracerProvider } from "@opentelemetry/sdk-trace-node";

const NAME = "Annalisa Rossetti";
const EMAIL = "annalisa.rossetti@example.com";
const PHONE = "+39 347 555 0199";
const MODEL = "gpt-4o-mini";
const USER_MESSAGE = `Hi, I am ${NAME}. Where is my order A-77? Call me at ${PHONE} or write to ${EMAIL}.`;
const TOOLS = [{
  type: "function",
  function: {
    name: "order_lookup",
    description: "Look up an order's shipping status",
    parameters: { type: "object", properties: { order_id: { type: "string" }, email: { type: "string" } } },
  },
}];

const baseUrl = process.env.OPENAI_BASE_URL.replace(/\/$/, "");
const exporter = process.env.FLUSSO_OTLP_GRPC_URL
  ? new OTLPGrpcTraceExporter({ url: process.env.FLUSSO_OTLP_GRPC_URL, timeoutMillis: 10000 })
  : new OTLPTraceExporter({
    url: process.env.FLUSSO_COLLECTOR_URL.replace(/\/$/, "") + "/v1/traces",
    headers: { "X-API-Key": process.env.FLUSSO_INGEST_KEY },
    timeoutMillis: 10000,
  });
const provider = new NodeTracerProvider({
  resource: resourceFromAttributes({ "service.name": "interop-node", "deployment.environment.name": "test" }),
  spanProcessors: [new BatchSpanProcessor(exporter, { scheduledDelayMillis: 200 })],
});
provider.register();
const tracer = trace.getTracer("interop-node-agent", "0.0.0");

function orderLookup({ order_id: orderId, email = "" }) {
  return { order_id: orderId, status: "shipped", eta_days: 2, contact: email };
}

async function chat(messages) {
  return tracer.startActiveSpan(`chat ${MODEL}`, { kind: 2 /* CLIENT */ }, async (span) => {
    try {
      span.setAttributes({
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": MODEL,
        "gen_ai.input.messages": JSON.stringify(messages),
      });
      const response = await fetch(`${baseUrl}/chat/completions`, {
        method: "POST",
        headers: { "Content-Type": "application/json", Authorization: "Bearer sk-fake-interop" },
        body: JSON.stringify({ model: MODEL, messages, tools: TOOLS }),
        signal: AbortSignal.timeout(10000),
      });
      if (!response.ok) throw new Error(`chat completions answered ${response.status}`);
      const body = await response.json();
      const choice = body.choices[0];
      span.setAttributes({
        "gen_ai.response.model": body.model,
        "gen_ai.response.id": body.id,
        "gen_ai.response.finish_reasons": [choice.finish_reason],
        "gen_ai.usage.input_tokens": body.usage.prompt_tokens,
        "gen_ai.usage.output_tokens": body.usage.completion_tokens,
        "gen_ai.output.messages": JSON.stringify([choice.message]),
      });
      return choice.message;
    } catch (err) {
      span.setStatus({ code: SpanStatusCode.ERROR, message: String(err) });
      throw err;
    } finally {
      span.end();
    }
  });
}

function runTool(call) {
  return tracer.startActiveSpan(`execute_tool ${call.function.name}`, (span) => {
    try {
      const result = JSON.stringify(orderLookup(JSON.parse(call.function.arguments)));
      span.setAttributes({
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": call.function.name,
        "gen_ai.tool.type": "function",
        "gen_ai.tool.call.id": call.id,
        "gen_ai.tool.call.arguments": call.function.arguments,
        "gen_ai.tool.call.result": result,
      });
      return result;
    } finally {
      span.end();
    }
  });
}

async function agent() {
  return tracer.startActiveSpan("invoke_agent support", async (root) => {
    try {
      root.setAttributes({
        "gen_ai.operation.name": "invoke_agent",
        "gen_ai.agent.name": "support",
        "gen_ai.provider.name": "openai",
        "user.id": EMAIL,
        "session.id": EMAIL,
        "enduser.id": NAME,
      });
      const messages = [
        { role: "system", content: "You are a support agent. Use tools." },
        { role: "user", content: USER_MESSAGE },
      ];
      const first = await chat(messages);
      const call = first.tool_calls[0];
      const result = runTool(call);
      messages.push(first, { role: "tool", tool_call_id: call.id, content: result });
      const second = await chat(messages);
      return { trace_id: root.spanContext().traceId, answer: second.content ?? "" };
    } finally {
      root.end();
    }
  });
}

const summary = await context.with(context.active(), agent);
await provider.forceFlush();
await provider.shutdown();
console.log(JSON.stringify(summary));
