"""One corpus of planted personal data, sent through both paths: the bridge's decorators (both
content modes) and /v1/traces as spans of each convention (OTel GenAI, OpenInference,
OpenLLMetry) from the real OTel SDK. No planted value may be anywhere in the database (text or
bytes, staging included), and nodes named after personal-data words still ship their ticket."""
from __future__ import annotations

import json

import httpx
import psycopg
import pytest

import otel_bridge
from otel_bridge import node, record, workflow
from tests.helpers import run_async
from tests.traces.helpers import assert_nowhere, sdk_provider, wait_for_logs
from tests.viewer.helpers import create_accounts, login

NAME, EMAIL = "Ottavia Ferraris", "ottavia.ferraris@example.com"
PHONE, IBAN, CARD = "+39 347 555 0199", "DE89 3704 0044 0532 0130 00", "4111 1111 1111 1111"
ADDRESS, BIRTH, PASSPORT = "Via dei Serpenti 42", "14/03/1987", "YA9912345"
WRITER = ("Jane Doe", "jane.doe@example.com")  # only ever written as "Jane Doe <jane.doe@example.com>"
QUESTION = (f"Hi, I am {NAME} ({EMAIL}). My sink leaks; call {PHONE}. Refund to {IBAN}, not card {CARD}. "
            f"Forwarded by {WRITER[0]} <{WRITER[1]}>.")
DRAFT = f"Dear {NAME.split()[0]}, we refund to your IBAN; {WRITER[0].split()[0]} is in copy."
PLANTED = [NAME, *NAME.split(), EMAIL, PHONE, "347 555 0199", IBAN, IBAN.replace(" ", ""), CARD,
           CARD.replace(" ", ""), ADDRESS, BIRTH, PASSPORT, *WRITER, "Doe"]
NODES = ("validate_address", "send_email", "customer_name_lookup")


@node(NODES[0], kind="tool")
async def validate_address() -> None:
    record.react_iteration(thought=f"check where {NAME} lives", action="geo",
                           action_input={"customer_address": ADDRESS, "customer_name": NAME}, observation="ok")


@node(NODES[1], kind="tool")
async def send_email() -> None:
    record.react_iteration(action="mailer", action_input={"to": EMAIL, "cc": WRITER[1]},
                           observation=f"sent to {WRITER[0]}")


@node(NODES[2], kind="llm")
async def customer_name_lookup() -> None:
    record.llm_call(model="claude-sonnet-4-20250514", input_tokens=10, output_tokens=5, prompt=QUESTION)


@workflow("support")
async def handle(ticket_id: str) -> None:
    record.ticket(ticket_id, subject=QUESTION, requester_name=NAME, requester_email=EMAIL,
                  customer_address=ADDRESS, date_of_birth=BIRTH, passport=PASSPORT)
    await validate_address()
    await send_email()
    await customer_name_lookup()
    record.draft(DRAFT)


def _texts(dsn: str) -> list[str]:
    with psycopg.connect(dsn) as conn:
        return [r[0] for t in ("workflow_logs", "ticket_reviews") for r in conn.execute(f"SELECT t::text FROM {t} t")]


@pytest.mark.parametrize("content", ["hash", "scrub"])
def test_bridge_path(content, bridge_to, server, db_dsn):
    bridge_to(content=content)
    run_async(handle(f"T-{content}"))
    assert otel_bridge.flush(10) is True
    [row] = wait_for_logs(db_dsn, 1)
    log = row["log"]
    assert log["identification"]["content"] == content
    durations = log["metrics"]["node_durations_ms"]
    assert set(durations) == set(NODES) and all(isinstance(v, float) for v in durations.values())
    subject = log["trace"]["ticket"]["subject"]
    if content == "hash":
        assert subject.startswith("[text:") and subject.endswith("]")
    else:  # readable around the tokens
        assert subject.startswith("Hi, I am [name:") and "My sink leaks; call [phone:" in subject
        assert "Forwarded by [name:" in subject and "<[email:" in subject
    assert log["trace"]["output"]["draft"].startswith("Dear [name:")
    texts = _texts(db_dsn)
    for value in PLANTED:
        assert not any(value.lower() in t.lower() for t in texts), value
    create_accounts(db_dsn)
    with httpx.Client(base_url=server.url, follow_redirects=False, timeout=10) as client:
        assert login(client, "acme@example.com").status_code == 303
        page = client.get(f"/tickets/{row['id']}").text
    assert ('id="question"' in page) is (content == "scrub")  # the ticket page shows the scrubbed question
    if content == "scrub":
        assert "review-question" in page and "My sink leaks" in page


def _genai(tracer) -> None:
    with tracer.start_as_current_span("invoke_agent support") as root:
        root.set_attribute("gen_ai.operation.name", "invoke_agent")
        root.set_attribute("flusso.ticket_id", "T-genai")
        root.set_attribute("user.id", NAME)
        root.set_attribute("customer.address", ADDRESS)
        root.set_attribute("customer.date_of_birth", BIRTH)
        root.set_attribute("customer.passport", PASSPORT)
        with tracer.start_as_current_span("chat claude-sonnet-4-20250514") as chat:
            chat.set_attribute("gen_ai.operation.name", "chat")
            chat.set_attribute("gen_ai.request.model", "claude-sonnet-4-20250514")
            chat.set_attribute("gen_ai.input.messages", json.dumps([{"role": "user", "content": QUESTION}]))
            chat.set_attribute("gen_ai.output.messages", json.dumps([{"role": "assistant", "content": DRAFT}]))
        for name in NODES:
            with tracer.start_as_current_span(f"execute_tool {name}") as tool:
                tool.set_attribute("gen_ai.operation.name", "execute_tool")
                tool.set_attribute("gen_ai.tool.name", name)
                tool.set_attribute("gen_ai.tool.call.arguments", json.dumps({"customer_name": NAME, "to": EMAIL}))


def _openinference(tracer) -> None:
    with tracer.start_as_current_span("support") as root:
        root.set_attribute("openinference.span.kind", "AGENT")
        root.set_attribute("session.id", "T-oi")
        root.set_attribute("input.value", QUESTION)
        root.set_attribute("output.value", DRAFT)
        root.set_attribute("metadata", json.dumps({"customer_name": NAME, "user_email": EMAIL,
                                                   "billing_address": ADDRESS, "passport": PASSPORT,
                                                   "date_of_birth": BIRTH}))
        with tracer.start_as_current_span("ChatAnthropic") as llm:
            llm.set_attribute("openinference.span.kind", "LLM")
            llm.set_attribute("llm.model_name", "claude-sonnet-4-20250514")
            llm.set_attribute("llm.input_messages.0.message.role", "user")
            llm.set_attribute("llm.input_messages.0.message.content", QUESTION)
            llm.set_attribute("llm.output_messages.0.message.content", DRAFT)
        for name in NODES:
            with tracer.start_as_current_span(name) as tool:
                tool.set_attribute("openinference.span.kind", "TOOL")
                tool.set_attribute("tool.name", name)
                tool.set_attribute("input.value", json.dumps({"customer_name": NAME, "phone": PHONE}))


def _openllmetry(tracer) -> None:
    prefix = "traceloop.association.properties."
    with tracer.start_as_current_span("support.workflow") as root:
        root.set_attribute("traceloop.span.kind", "workflow")
        root.set_attribute(prefix + "session_id", "T-ollm")
        root.set_attribute(prefix + "customer_name", NAME)
        root.set_attribute(prefix + "customer_email", EMAIL)
        root.set_attribute(prefix + "customer_address", ADDRESS)
        root.set_attribute("traceloop.entity.input", json.dumps({"question": QUESTION}))
        root.set_attribute("traceloop.entity.output", json.dumps(DRAFT))
        with tracer.start_as_current_span("anthropic.chat") as llm:
            llm.set_attribute("llm.request.type", "chat")
            llm.set_attribute("gen_ai.request.model", "claude-sonnet-4-20250514")
            llm.set_attribute("gen_ai.prompt.0.content", QUESTION)
            llm.set_attribute("gen_ai.completion.0.content", DRAFT)
        for name in NODES:
            with tracer.start_as_current_span(f"{name}.tool") as tool:
                tool.set_attribute("traceloop.span.kind", "tool")
                tool.set_attribute("traceloop.entity.name", name)
                tool.set_attribute("traceloop.entity.input", json.dumps({"customer_name": NAME, "iban": IBAN}))


@pytest.mark.parametrize("convention", [_genai, _openinference, _openllmetry], ids=["genai", "openinference",
                                                                                  "openllmetry"])
def test_traces_path(convention, server, ingest_key, db_dsn):
    provider = sdk_provider(server.url, ingest_key)
    convention(provider.get_tracer("agent"))
    provider.shutdown()
    [row] = wait_for_logs(db_dsn, 1)
    log = row["log"]
    names = {e["name"] for e in log["trace"]["spans"]}
    assert all(any(n in name for name in names) for n in NODES)  # nodes named after personal-data words ship
    assert log["trace"]["output"]["draft"].startswith("Dear [name:")
    assert_nowhere(db_dsn, PLANTED, min_blobs=5)


def _ticket_trace(tracer, ticket: str) -> None:
    with tracer.start_as_current_span("invoke_agent support") as root:
        root.set_attribute("gen_ai.operation.name", "invoke_agent")
        root.set_attribute("flusso.ticket_id", ticket)
        root.set_attribute("flusso.ticket.subject", QUESTION)
        root.set_attribute("flusso.ticket.requester_name", NAME)
        root.set_attribute("customer.address", ADDRESS)
        with tracer.start_as_current_span("chat claude-sonnet-4-20250514") as chat:
            chat.set_attribute("gen_ai.operation.name", "chat")
            chat.set_attribute("gen_ai.request.model", "claude-sonnet-4-20250514")
            chat.set_attribute("gen_ai.output.messages", json.dumps([{"role": "assistant", "content": DRAFT}]))


def test_traces_content_mode_is_the_tenants(server, db_dsn):
    """`flusso-obs tenants set --content scrub`: that tenant's ticket texts are kept, scrubbed;
    another tenant's stay one token each (the default)."""
    from tests.cli.helpers import cli
    from tests.helpers import make_key

    scrub_key, hash_key = make_key(db_dsn, "acme"), make_key(db_dsn, "globex")
    done = cli("tenants", "set", "--client", "acme", "--content", "scrub", dsn=db_dsn)
    assert done.returncode == 0 and "content mode is scrub" in done.stdout, done.stderr
    for key, ticket in ((scrub_key, "T-scrub"), (hash_key, "T-hash")):
        provider = sdk_provider(server.url, key)
        _ticket_trace(provider.get_tracer("agent"), ticket)
        provider.shutdown()
    logs = {r["ticket_id"]: r["log"] for r in wait_for_logs(db_dsn, 2)}
    scrubbed, hashed = logs["T-scrub"], logs["T-hash"]
    assert scrubbed["identification"]["content"] == "scrub" and hashed["identification"]["content"] == "hash"
    assert scrubbed["trace"]["ticket"]["subject"].startswith("Hi, I am [name:")
    assert "My sink leaks; call [phone:" in scrubbed["trace"]["ticket"]["subject"]
    assert hashed["trace"]["ticket"]["subject"].startswith("[text:")
    assert scrubbed["trace"]["ticket"]["requester_name"].startswith("[name:")
    assert_nowhere(db_dsn, PLANTED, min_blobs=4)
