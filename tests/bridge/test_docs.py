"""The docs cover what the code produces: every metric and field of the log, every setting."""

import json
import re
from pathlib import Path

from config.bridge import BridgeSettings
from otel_bridge.assemble import DERIVED_METRICS
from tests.helpers import run_async

ROOT = Path(__file__).resolve().parents[2]
LOG_DOC = (ROOT / "docs" / "workflow-log.md").read_text()
CLIENT_DOC = (ROOT / "docs" / "client.md").read_text()


def documented(name: str, text: str) -> bool:
    return f"`{name}`" in text


def test_every_derived_metric_is_documented():
    missing = [m for m in DERIVED_METRICS if not documented(m, LOG_DOC)]
    assert not missing, f"metrics missing from docs/workflow-log.md: {missing}"


def test_every_key_the_bridge_emits_is_documented(memory_bridge):
    from flusso_obs.examples import support_workflow as wf

    wf.SPEED = 0.0

    async def run():
        for t in wf.generate_tickets(30, seed=3):
            try:
                await wf.handle_ticket(t)
            except RuntimeError:
                pass

    run_async(run())
    logs = memory_bridge(30)
    keys = set()
    for log in logs:
        for section in ("identification", "ticket_info", "outcome", "trace"):
            keys |= set(log[section])
        keys |= set(log)
        keys |= set(log["metrics"]) - {"customer_sentiment"}  # the example's custom metric
        for span in log["trace"]["spans"]:
            keys |= set(span)
    missing = sorted(k for k in keys if not documented(k, LOG_DOC))
    assert not missing, f"keys missing from docs/workflow-log.md: {missing}"


def test_the_documented_example_metrics_are_all_produced(memory_bridge):
    example = json.loads((ROOT / "docs" / "workflow-log.example.json").read_text())
    assert set(example["metrics"]) <= set(DERIVED_METRICS)


def test_every_setting_is_documented():
    for name, field in BridgeSettings.model_fields.items():
        env_names = [c for c in field.validation_alias.choices if c.isupper()]
        assert any(documented(e, CLIENT_DOC) for e in env_names), f"{name} ({env_names}) missing from docs/client.md"


def test_public_api_is_documented():
    import otel_bridge

    for name in ("configure", "workflow", "node", "record", "build_workflow_log", "flush", "shutdown", "stats"):
        assert hasattr(otel_bridge, name)
        assert re.search(rf"`@?{name}", CLIENT_DOC), name


def test_the_client_doc_example_runs_and_ships_a_valid_log(receiver, tmp_path):
    import os
    import subprocess
    import sys

    code = re.search(r"```python\n(.*?)```", CLIENT_DOC, re.S).group(1)
    script = tmp_path / "example.py"
    script.write_text(code)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "LOG_COLLECTOR", "PII_"))}
    env.update(PYTHONPATH=str(ROOT), LOG_COLLECTOR_URL=receiver.url, LOG_COLLECTOR_API_KEY="k",
               ENVIRONMENT="test", FLUSSO_LOG_BATCH_DELAY_MILLIS="20")
    out = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    ((lr, log),) = receiver.wait_for(1)
    assert log["ticket_info"]["ticket_id"] == "T-10042"
    assert log["outcome"]["status"] == "SUCCESS"
    assert set(log["trace"]["retrieval"]) == {"vision", "text"}
    assert "Ann Lee" not in lr.body.string_value and "ann@example.com" not in lr.body.string_value
