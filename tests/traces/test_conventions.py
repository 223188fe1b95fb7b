"""The convention mapping, pure: precedence, tokens (no double-counted cache), cost, documents,
content classification and person-naming keys, with adversarial inputs."""
from __future__ import annotations

import json

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from collector_api.traces.conventions import combine
from collector_api.traces.conventions.content import is_content, metadata_person_values, person_key_kind
from collector_api.traces.decode import decode_spans, person_kind
from collector_api.traces.sealing import cipher
from otel_bridge.pii import Redactor
from otel_bridge.spanrecord import EventRecord, SpanRecord


def rec(attrs: dict, events=()) -> SpanRecord:
    return SpanRecord("s", 1, 2, None, 10, 20, "UNSET", None, attrs, tuple(events), None, 0)


def test_precedence_genai_over_openinference_over_openllmetry():
    f = combine.facts(rec({"gen_ai.request.model": "gpt-4o", "llm.model_name": "claude-sonnet-4",
                           "gen_ai.usage.input_tokens": 10, "llm.token_count.prompt": 99,
                           "gen_ai.usage.prompt_tokens": 77, "llm.token_count.completion": 5,
                           "gen_ai.usage.completion_tokens": 6, "openinference.span.kind": "TOOL",
                           "traceloop.span.kind": "agent", "flusso.llm.cost_usd": 0.5, "llm.cost.total": 0.9}))
    assert (f["model"], f["input_tokens"], f["output_tokens"], f["kind"], f["cost"]) == ("gpt-4o", 10, 5, "tool", 0.5)
    assert combine.facts(rec({"traceloop.span.kind": "agent", "llm.request.type": "chat"}))["kind"] == "agent"
    assert combine.facts(rec({"llm.request.type": "chat"}))["kind"] == "llm"
    assert combine.facts(rec({"flusso.kind": "planner", "gen_ai.operation.name": "chat"}))["kind"] == "planner"


@pytest.mark.parametrize("attrs, expected", [
    ({"gen_ai.usage.input_tokens": 1200, "gen_ai.usage.output_tokens": 40,
      "gen_ai.usage.cache_read.input_tokens": 1024}, (1200, 40, 1024, 0, True)),  # GenAI: input includes cache
    ({"llm.token_count.prompt": 100, "llm.token_count.completion": 50, "llm.token_count.total": 1150,
      "llm.token_count.prompt_details.cache_read": 1000}, (1100, 50, 1000, 0, True)),  # excluded: added once
    ({"gen_ai.usage.input_tokens": 100, "gen_ai.usage.output_tokens": 50,
      "gen_ai.usage.cache_creation.input_tokens": 300}, (400, 50, 0, 300, True)),  # cache > input: excluded
    ({"llm.usage.total_tokens": 900, "gen_ai.usage.completion_tokens": 100}, (800, 100, 0, 0, True)),
    ({"llm.token_count.total": 900}, (900, None, 0, 0, False)),  # total alone: no split, no price
    ({"llm.token_count.prompt": 300, "llm.token_count.total": 900}, (300, 600, 0, 0, True)),
    ({"llm.token_count.prompt": -5, "llm.token_count.completion": True, "llm.token_count.total": "NaN"},
     (None, None, 0, 0, True)),
])
def test_tokens(attrs, expected):
    t = combine.tokens(combine.facts(rec(attrs)))
    assert (t.input, t.output, t.cache_read, t.cache_write, t.split_known) == expected


def test_openinference_cost_parts_and_bad_values():
    assert combine.facts(rec({"llm.cost.prompt": 0.1, "llm.cost.completion": 0.2}))["cost"] == pytest.approx(0.3)
    assert "cost" not in combine.facts(rec({"llm.cost.total": float("inf"), "llm.cost.prompt": "x"}))
    assert combine.facts(rec({"llm.cost.total": "0.25"}))["cost"] == 0.25


def test_documents_of_the_three_conventions():
    oi = combine.facts(rec({"openinference.span.kind": "RETRIEVER", "input.value": "q",
                            "retrieval.documents.1.document.id": "b", "retrieval.documents.1.document.score": -0.5,
                            "retrieval.documents.0.document.id": "a", "retrieval.documents.0.document.score": 0.9,
                            "retrieval.documents.x.document.id": "ignored"}))
    assert oi["documents"] == [{"id": "a", "score": 0.9}, {"id": "b", "score": -0.5}] and oi["query"] == "q"
    events = [EventRecord("db.query.result", 1, {"db.query.result.id": "k", "db.query.result.score": 0.7}),
              EventRecord("db.search.result", 2, {"db.search.result.id": 5})]
    tl = combine.facts(rec({"db.system": "chroma"}, events))
    assert tl["kind"] == "retriever" and tl["documents"] == [{"id": "k", "score": 0.7}, {"id": "5"}]
    g = combine.facts(rec({"gen_ai.operation.name": "retrieval", "gen_ai.retrieval.documents": "not json"}))
    assert g["documents"] == [] and g["kind"] == "retriever"


# Every content attribute of the three conventions (as the instrumentations name them).
CONTENT = [
    "llm.input_messages.0.message.content", "llm.input_messages.12.message.contents.0.message_content.text",
    "llm.output_messages.0.message.tool_calls.0.tool_call.function.arguments", "llm.input_messages.3.message.name",
    "input.value", "output.value", "tool.parameters", "retrieval.documents.4.document.content",
    "retrieval.documents.0.document.metadata", "llm.prompt_template.variables", "embedding.embeddings.0.embedding.text",
    "reranker.input_documents.0.document.content", "llm.prompts.0.prompt.text", "llm.choices.0.completion.text",
    "metadata", "gen_ai.prompt.0.content", "gen_ai.completion.0.content", "gen_ai.prompt.3.role",
    "gen_ai.completion.0.tool_calls.0.arguments", "gen_ai.input.messages", "gen_ai.output.messages",
    "gen_ai.system_instructions", "gen_ai.tool.call.arguments", "gen_ai.tool.call.result",
    "gen_ai.retrieval.query.text", "traceloop.entity.input", "traceloop.entity.output",
    "db.query.result.document", "db.search.result.entity", "gen_ai.prompt", "gen_ai.completion", "content",
    "exception.message", "exception.stacktrace", "mcp.request.argument",
]
NOT_CONTENT = ["llm.model_name", "llm.token_count.prompt", "gen_ai.usage.input_tokens", "tool.name",
               "gen_ai.request.model", "openinference.span.kind", "traceloop.span.kind", "session.id", "user.id",
               "gen_ai.tool.name", "llm.cost.total", "input.mime_type"]


def test_content_classification():
    assert all(is_content(k) for k in CONTENT)
    assert not any(is_content(k) for k in NOT_CONTENT)


def test_every_content_attribute_is_scrubbed_and_sealed_on_arrival():
    secret = "s" * 40
    email, phone = "annalisa.rossetti@example.com", "+39 347 555 0199"
    req = ExportTraceServiceRequest()
    span = req.resource_spans.add().scope_spans.add().spans.add()
    span.trace_id, span.span_id, span.name = b"\x01" * 16, b"\x02" * 8, "s"
    span.start_time_unix_nano = span.end_time_unix_nano = 1_800_000_000 * 10**9
    for key in CONTENT:
        span.attributes.append(KeyValue(key=key, value=AnyValue(string_value=f"write to {email} or {phone}")))
    ev = span.events.add(name="gen_ai.user.message", time_unix_nano=span.start_time_unix_nano)
    ev.attributes.append(KeyValue(key="content", value=AnyValue(string_value=email)))
    [row] = decode_spans(req, "acme", Redactor(b"k" * 32), cipher(secret, "acme"),
                         now_ns=span.start_time_unix_nano).rows
    assert email.encode() not in row.payload and b"347" not in row.payload
    opened = json.loads(cipher(secret, "acme").open(row.trace_id, row.span_id, row.payload))
    for key in CONTENT:
        value = opened["a"][key]
        assert email not in value and phone not in value and "[email:" in value and "[phone:" in value
    assert opened["e"][0][2]["content"].startswith("[email:")


@pytest.mark.parametrize("key, kind", [
    ("user.id", "user"), ("enduser.id", "user"), ("user.email", "email"), ("llm.user", "user"),
    ("traceloop.association.properties.user_id", "user"), ("traceloop.association.properties.customerId", "user"),
    ("traceloop.association.properties.customer_email", "email"),
    ("traceloop.association.properties.customer_name", "name"),
    ("traceloop.association.properties.session_id", None), ("traceloop.association.properties.tenant_id", None),
    ("llm.input_messages.0.message.name", None), ("tool.name", None), ("llm.model_name", None),
])
def test_person_naming_keys(key, kind):
    assert person_kind(key, "x") == kind
    if key.startswith("traceloop.association.properties.") and kind == "user":
        assert person_key_kind(key) == "user"


def test_metadata_person_values_hostile():
    assert metadata_person_values(json.dumps({"customer_name": "Ann Bee", "user_id": 7, "plan": "gold"})) == [
        ("Ann Bee", "name"), ("7", "user")]
    for bad in ("{", "[1]", '{"customer_name": {"x": 1}}', "{" + " " * 70_000 + "}", 5, None, '{"a": true}'):
        assert metadata_person_values(bad) == []


@pytest.mark.parametrize("value, kind", [
    ("Annalisa Rossetti", "name"), ("Jean-Luc Picard", "name"), ("O'Brien Kelly", "name"),
    ("Müller Hans Peter", "name"),
    ("annalisa.rossetti@example.com", "user"), ("user-123", "user"), ("u_42 abc", "user"), ("12 Main", "user"),
    ("Annalisa", "user"), ("A B C D E F", "user"), ("x" * 199 + " y", "user"),
])
def test_a_name_shaped_user_id_is_known_as_a_name(value, kind):
    """enduser.id = "Annalisa Rossetti": known as a `name`, so "Dear Annalisa" loses the first name
    too (tests/interop checks it end to end with the real instrumentations)."""
    from otel_bridge.policy import known_kind as _known_kind

    assert _known_kind("user", value) == kind


def test_name_shape_check_is_linear_on_hostile_input():
    import time

    from otel_bridge.policy import known_kind as _known_kind

    hostile = ["a" * 190 + " b1", "-".join(["ab"] * 60) + " x!", "a " * 99 + "1", "é'" * 95 + " z"]
    started = time.perf_counter()
    for value in hostile * 100:
        _known_kind("user", value)
    assert time.perf_counter() - started < 0.5


class _Recording(dict):
    """A span's attributes that note every key a reader asks for (get, in, iteration by prefix)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.asked: set[str] = set()

    def get(self, key, default=None):
        self.asked.add(key)
        return super().get(key, default)

    def __contains__(self, key):
        self.asked.add(key)
        return super().__contains__(key)


@pytest.mark.parametrize("seed", [
    {}, {"openinference.span.kind": "TOOL"}, {"openinference.span.kind": "RETRIEVER"},
    {"traceloop.span.kind": "tool"}, {"llm.request.type": "chat"}, {"gen_ai.operation.name": "execute_tool"},
])
def test_each_reader_is_skipped_only_when_it_cannot_find_anything(seed):
    """combine.facts skips a convention's reader when its `applies` check says the span carries
    none of its keys: every key the reader asks for must make `applies` true on its own, or a
    field would be lost for spans that carry only that key."""
    from collector_api.traces.conventions import genai, openinference, openllmetry

    for module in (genai, openinference, openllmetry):
        attrs = _Recording(seed)
        module.read(attrs, ())
        asked = attrs.asked - set(seed)
        assert asked, module.__name__
        for key in asked:  # keys read only under a seed (a span kind) are read with it
            assert module.applies({**seed, key: "x"} if seed else {key: "x"}, ()), (module.__name__, key)
    assert openinference.applies({"retrieval.documents.0.document.id": "d"}, ())  # read by prefix
    assert openllmetry.applies({}, (EventRecord("db.query.result", 1, {}),))  # read from events
    assert not openinference.applies({"gen_ai.request.model": "m", "session.id": "s"}, ())
    assert not openllmetry.applies({"gen_ai.usage.input_tokens": 3}, ())


@pytest.mark.parametrize("value", ["9" * 400, 10**400, 2**63, "1e400", float("inf"), -5, "12a"])
def test_absurd_token_counts_and_numbers_never_fail_a_trace(value):
    """A token count of 400 digits made the price computation overflow: the whole trace failed to
    assemble after its spans were acknowledged. Absurd figures now count as absent."""
    from collector_api.traces.conventions.common import count, number
    from collector_api.traces.mapping import prepare
    from collector_api.traces.prices import load_prices

    assert count(value) is None
    assert number(10**400) is None and number("1e400") is None and number("9" * 400) is None
    root = SpanRecord("agent", 1, 1, None, 1, 10, attributes={"gen_ai.operation.name": "invoke_agent"})
    chat = SpanRecord("chat", 1, 2, 1, 2, 5, attributes={
        "gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o", "gen_ai.usage.input_tokens": value,
        "gen_ai.usage.output_tokens": 5, "llm.cost.total": value,
        "gen_ai.retrieval.documents": json.dumps([{"id": "d", "score": 10**400}])})
    prepared = prepare([root, chat], load_prices(None), None)
    payload = json.loads(prepared.records[1].events[-1].attributes["flusso.payload"])
    assert "input_tokens" not in payload and payload["output_tokens"] == 5


@pytest.mark.parametrize("root_attrs, llm_attrs, expected", [
    ({"output.value": "Final answer."}, {"llm.output_messages.0.message.content": "earlier"}, "Final answer."),
    ({"traceloop.entity.output": '"Quoted answer."'}, {}, "Quoted answer."),
    ({"output.value": '{"k": 1}', "output.mime_type": "application/json"},
     {"llm.output_messages.0.message.content": "From the LLM."}, "From the LLM."),
    ({}, {"gen_ai.output.messages": json.dumps([{"role": "assistant", "parts": [
        {"type": "tool_call", "name": "x"}, {"type": "text", "content": "Parts text."}]}])}, "Parts text."),
    ({}, {"gen_ai.output.messages": json.dumps([{"role": "assistant", "content": [{"type": "text", "text": "A"}]}])},
     "A"),
    ({}, {"gen_ai.completion.0.content": "Old OpenLLMetry."}, "Old OpenLLMetry."),
    ({}, {"gen_ai.output.messages": "not json ["}, None),
    ({"output.value": "   "}, {"gen_ai.output.messages": json.dumps({"not": "a list"})}, None),
])
def test_the_final_answer_becomes_the_draft(root_attrs, llm_attrs, expected):
    """Root output first (text only, a JSON string decoded, a JSON object skipped), else the last
    LLM reply in any convention; hostile values give no draft, never an error."""
    from collector_api.traces.mapping import prepare
    from collector_api.traces.prices import load_prices

    root = SpanRecord("agent", 1, 1, None, 1, 10, attributes={"gen_ai.operation.name": "invoke_agent", **root_attrs})
    chat = SpanRecord("chat", 1, 2, 1, 2, 5, attributes={"gen_ai.operation.name": "chat", **llm_attrs})
    prepared = prepare([root, chat], load_prices(None), None)
    drafts = [e for e in prepared.root.events if e.name == "flusso.draft"]
    if expected is None:
        assert drafts == []
    else:
        assert json.loads(drafts[0].attributes["flusso.payload"]) == {"text": expected, "length_chars": len(expected)}
