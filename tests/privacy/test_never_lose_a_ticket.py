"""A privacy rule may cost a field, never a ticket: nodes named after personal-data words,
model ids that look like phone numbers and fields the schema would refuse all reach the
database on the bridge's path (decorators -> OTLP -> collector -> PostgreSQL)."""
from __future__ import annotations

import asyncio
import json

import otel_bridge
from otel_bridge import node, record, workflow
from tests.helpers import run_async
from tests.privacy.helpers import MODELS
from tests.traces.helpers import wait_for_logs

# Dated and versioned model ids of every major provider (the phone detector ate the dated ones).


@node("validate_address", kind="tool")
async def validate_address() -> None:
    await asyncio.sleep(0.002)


@node("send_email", kind="tool")
async def send_email() -> None:
    await asyncio.sleep(0.002)


@node("customer_name_lookup", kind="llm")
async def customer_name_lookup() -> None:
    for model in MODELS:
        record.llm_call(model=model, input_tokens=100, output_tokens=10, cost_usd=0.001)


@workflow("support")
async def handle(ticket: dict) -> None:
    record.ticket(**ticket)
    await validate_address()
    await send_email()
    await customer_name_lookup()
    record.draft(f"Dear Giulia, answered with {MODELS[0]} and {MODELS[5]}.")


def test_nodes_named_after_personal_data_ship_their_ticket_whole(bridge_to, db_dsn):
    bridge_to()
    run_async(handle({"ticket_id": "T-NAMES", "requester_name": "Giulia Bianchi",
                        "requester_email": "giulia@example.com", "subject": "my address changed"}))
    assert otel_bridge.flush(10) is True
    [row] = wait_for_logs(db_dsn, 1)
    log = row["log"]
    durations = log["metrics"]["node_durations_ms"]
    assert set(durations) == {"validate_address", "send_email", "customer_name_lookup"}
    assert all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in durations.values())
    assert durations["validate_address"] >= 2 and durations["send_email"] >= 2
    assert {e["name"] for e in log["trace"]["spans"]} >= set(durations)
    # model ids survive unchanged in the LLM calls, on the spans and in free text
    assert [c["model"] for c in log["trace"]["llm_calls"]] == list(MODELS)
    llm_span = next(e for e in log["trace"]["spans"] if e["name"] == "customer_name_lookup")
    assert llm_span["attributes"]["gen_ai.request.model"] == MODELS[-1]
    draft = log["trace"]["output"]["draft"]
    assert MODELS[0] in draft and MODELS[5] in draft and "Giulia" not in draft
    assert "flusso.dropped_fields" not in log["metrics"]
    assert otel_bridge.stats()["dropped_fields"] == 0


@workflow("support")
async def hostile(ticket: dict) -> None:
    record.ticket(**ticket)
    record.outcome(resolution_status="escalated to the team lead on call this week " * 3)
    await validate_address()


def test_a_field_the_schema_would_refuse_is_dropped_and_counted_and_the_ticket_ships(bridge_to, db_dsn):
    bridge_to()
    run_async(hostile({"ticket_id": "T-HOSTILE"}))
    assert otel_bridge.flush(10) is True  # the ticket was delivered: a dropped field is not a lost ticket
    [row] = wait_for_logs(db_dsn, 1)
    log = row["log"]
    assert row["ticket_id"] == "T-HOSTILE"
    assert "resolution_status" not in log["outcome"]  # 64 chars at most (the schema): dropped
    assert log["metrics"]["flusso.dropped_fields"] == 1
    assert otel_bridge.stats()["dropped_fields"] == 1
    assert json.dumps(log["metrics"]["node_durations_ms"]) .startswith('{"validate_address": ')
