"""Model ids of every major provider survive /v1/traces unchanged (the phone detector ate dated
ones: ``claude-sonnet-[phone:...]``) and are priced when the price table has them."""
from __future__ import annotations

from collector_api.traces.prices import load_prices
from tests.privacy.helpers import MODELS
from tests.traces.helpers import sdk_provider, wait_for_logs


def test_model_ids_survive_traces_and_are_priced(server, ingest_key, db_dsn):
    provider = sdk_provider(server.url, ingest_key)
    tracer = provider.get_tracer("agent")
    with tracer.start_as_current_span("invoke_agent support") as root:
        root.set_attribute("gen_ai.operation.name", "invoke_agent")
        root.set_attribute("flusso.ticket_id", "T-MODELS")
        for model in MODELS:
            with tracer.start_as_current_span(f"chat {model}") as chat:
                chat.set_attribute("gen_ai.operation.name", "chat")
                chat.set_attribute("gen_ai.request.model", model)
                chat.set_attribute("gen_ai.response.model", model)
                chat.set_attribute("gen_ai.usage.input_tokens", 1000)
                chat.set_attribute("gen_ai.usage.output_tokens", 100)
                chat.set_attribute("gen_ai.output.messages", f'[{{"role": "assistant", "content": "I am {model}"}}]')
    provider.shutdown()
    [row] = wait_for_logs(db_dsn, 1)
    log = row["log"]
    calls = log["trace"]["llm_calls"]
    assert sorted(c["model"] for c in calls) == sorted(MODELS)
    assert {e["name"] for e in log["trace"]["spans"]} >= {f"chat {m}" for m in MODELS}
    assert log["metrics"]["models"] == sorted(MODELS)
    prices = load_prices(None)
    priced = {c["model"]: c.get("cost_usd") for c in calls}
    for model in MODELS:
        expected = prices.cost(model, 1000, 100)
        assert priced[model] == expected, model
    assert priced["claude-sonnet-4-20250514"] == round((1000 * 3.0 + 100 * 15.0) / 1e6, 8)
    assert priced["us.anthropic.claude-sonnet-4-20250514-v1:0"] == priced["claude-sonnet-4-20250514"]
    assert priced["gpt-4o-2024-08-06"] is not None and priced["gemini-2.5-flash-preview-05-20"] is not None
    assert f"I am {MODELS[-1]}" in log["trace"]["output"]["draft"]
