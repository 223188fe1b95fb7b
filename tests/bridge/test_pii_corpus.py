"""The PII corpus travels through the real exporter to a real HTTP receiver; none of the raw
values may occur in the decompressed request bodies.

Names have no pattern: a name in free text is caught when it is a value the bridge knows
(requester_name, or a ticket field marked with ``pii=``), as every name here is."""

import json
from urllib.parse import quote

import pytest
from opentelemetry import trace

from otel_bridge import node, record, workflow

NAMES = ["Giulia Bianchi", "Jürgen Müller", "Aisha Khan", "Peter Parker"]
THIRD_PARTY = ["Bruce Wayne", "ACC-778812-ZZ"]  # no pattern: registered with record.pii()
EMAILS = ["giulia.bianchi@example.com", "j.mueller+support@mail.example.org", "aisha_k@acme-corp.example"]
PHONES = ["+39 345 678 9012", "(415) 555-0134", "+44 20 7946 0958", "0049 30 1234 5678"]
IBANS = ["DE89 3704 0044 0532 0130 00", "GB82WEST12345698765432", "IT60 X054 2811 1010 0000 0123 456"]
CARDS = ["4111 1111 1111 1111", "5500-0000-0000-0004", "378282246310005", "6011111111111117"]
SECRETS = [
    "sk-proj-9f8e7d6c5b4a3f2e1d0c9b8a",
    "sk-ant-api03-AbCdEfGhIjKlMnOpQrStUv",
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
    "ghp_16C7e42F292c6912E7710c838347Ae178B4a",
    "AKIAIOSFODNN7EXAMPLE",
    "hunter2-Sup3rS3cret!",
]
# Personal data beyond the exact keys: fields outside the exact-key list, percent-encoded emails, names in
# exception text (known only from those fields).
BY_KEY = {"first_name": "Rosalind", "last_name": "Okonkwo", "name": "Tancredi Falconeri",
          "customer_address": "Via dei Mille 42, Torino", "phone_number": "06 1234 567"}
ENCODED_EMAILS = ["rosalind.okonkwo@example.net", "t.falconeri@example.net"]
PEM_BODY = "MIIEpAIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gunVTLw"
PEM = f"-----BEGIN RSA PRIVATE KEY-----\n{PEM_BODY}\n-----END RSA PRIVATE KEY-----"


def raw_values():
    vals = NAMES + THIRD_PARTY + EMAILS + PHONES + IBANS + CARDS + SECRETS + [PEM_BODY]
    # Also the digit-only / compact forms a leak could take.
    vals += [c.replace(" ", "").replace("-", "") for c in CARDS]
    vals += [i.replace(" ", "") for i in IBANS]
    vals += list(BY_KEY.values()) + ["Tancredi", "Falconeri", "Via dei Mille"] + ENCODED_EMAILS
    vals += [quote(e, safe="") for e in ENCODED_EMAILS] + [quote(quote(e, safe=""), safe="") for e in ENCODED_EMAILS]
    return vals


@node("lookup", kind="tool")
def lookup(args):
    if args.get("explode"):
        raise LookupError(f"no customer {EMAILS[2]} with card {CARDS[3]} / token {SECRETS[4]}")
    return f"customer {NAMES[1]} <{EMAILS[1]}>, phone {PHONES[2]}, IBAN {IBANS[1]}"


@node("crm", kind="tool")
def crm(args):
    trace.get_current_span().set_attribute(
        "url.full", f"https://crm.example.test/find?email={quote(ENCODED_EMAILS[0], safe='')}&page=1")
    raise KeyError(f"no profile for {BY_KEY['first_name']}_{BY_KEY['last_name']} / {BY_KEY['name']} "
                   f"at {BY_KEY['customer_address']}")


@node("planner", kind="planner")
def plan(ticket):
    record.decision("route", "react", f"{NAMES[0]} asked about card {CARDS[0]}", 0.8)


@node("search", kind="retriever")
def search():
    record.retrieval("text", query=f"refund for {EMAILS[0]}",
                     results=[{"id": "kb-1", "score": 0.9, "title": "Refunds", "snippet": f"call {PHONES[3]}"}])
    record.evidence(items=[{"source": "kb-1", "claim": f"IBAN {IBANS[2]} on file"}],
                    conflicts=[{"between": ["kb-1", EMAILS[1]]}], resolution=f"asked {NAMES[2]}")


@workflow("flusso_ticket")
def handle(ticket, explode_workflow=False):
    record.ticket(ticket["ticket_id"], subject=f"Refund for {NAMES[0]}", requester_email=EMAILS[0],
                  requester_name=NAMES[0], requester_phone=PHONES[0], channel="email", priority="high",
                  description=f"My card {CARDS[1]} was charged twice; IBAN {IBANS[0]}; key {SECRETS[0]}",
                  contact_person=NAMES[3], messages=[f"I am {NAMES[0]}", f"reach me at {PHONES[1]}"],
                  cc=[NAMES[1], NAMES[2]], pii=["contact_person", "cc"], **BY_KEY)
    plan(ticket)
    record.pii(THIRD_PARTY[0])
    record.pii(THIRD_PARTY[1], kind="account")
    record.react_iteration(
        thought=f"{NAMES[0]} ({EMAILS[0]}) pasted {SECRETS[1]} and {SECRETS[2]}",
        action="lookup",
        action_input={EMAILS[2]: {"card": CARDS[2], "auth": f"Bearer {SECRETS[3]}"}, "password": SECRETS[5]},
        observation=lookup({}) + f" (colleague {THIRD_PARTY[0]}, Wayne, account {THIRD_PARTY[1]})",
    )
    try:
        lookup({"explode": True})
    except LookupError:
        pass
    search()
    try:
        crm({})
    except KeyError:
        pass
    enc = quote(quote(ENCODED_EMAILS[1], safe=""), safe="")
    record.react_iteration(thought="look up", action="http", action_input={"url": f"/u?next=%2Fp%3Femail%3D{enc}"},
                           observation=f"GET /v1/customers?email={quote(ENCODED_EMAILS[1], safe='')} -> 404")
    record.llm_call("gpt-4o", 100, 10, 0.001, prompt=f"Summarize: {PEM}")
    record.draft(f"Hello {NAMES[0]}, we refunded card {CARDS[0]} and wrote to {EMAILS[0]}. "
                 f"{NAMES[3]} will call {PHONES[0]}.")
    record.metric("refund_count", 1)
    if explode_workflow:
        raise RuntimeError(f"crash for {EMAILS[0]} card {CARDS[0]} iban {IBANS[0]} key {SECRETS[0]}")
    record.outcome("SUCCESS", "resolved", overall_confidence=0.8, note=f"spoke with {NAMES[3]} at {PHONES[2]}")


@pytest.mark.parametrize("explode", [False, True])
def test_no_raw_pii_reaches_the_wire(receiver, configure_bridge, validate_log, explode):
    configure_bridge(endpoint=receiver.url)
    if explode:
        with pytest.raises(RuntimeError):
            handle({"ticket_id": "T-PII"}, explode_workflow=True)
    else:
        handle({"ticket_id": "T-PII"})
    recs = receiver.wait_for(1)
    assert len(recs) == 1
    lr, log = recs[0]
    validate_log(log)
    assert log["outcome"]["status"] == ("FAILED" if explode else "SUCCESS")
    wire = b"".join(r["body"] for r in receiver.requests)
    texts = [wire.decode("utf-8", "ignore"), lr.body.string_value, json.dumps(log)]
    for value in raw_values():
        for text in texts:
            assert value not in text, f"raw value leaked: {value!r}"
            assert value.lower() not in text.lower(), f"raw value leaked (case): {value!r}"
    # The hashed forms are there, so the data stayed useful.
    body = lr.body.string_value
    for kind in ("email", "name", "phone", "card", "iban", "secret", "text"):
        assert f"[{kind}:" in body, kind
    assert log["trace"]["ticket"]["contact_person"].startswith("[text:")
    assert log["metrics"]["refund_count"] == 1
    ticket = log["trace"]["ticket"]
    for key, kind in [("first_name", "name"), ("last_name", "name"), ("phone_number", "phone"),
                      ("customer_address", "text")]:
        assert ticket[key].startswith(f"[{kind}:"), (key, ticket[key])
    assert ticket["name"].startswith("[name:")
