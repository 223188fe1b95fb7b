import copy
import json
from pathlib import Path

import fastjsonschema
import pytest

import otel_bridge

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = json.loads((ROOT / "docs" / "workflow-log.example.json").read_text())


def test_schema_compiles_and_accepts_the_documented_example(validate_log):
    validate_log(copy.deepcopy(EXAMPLE))


def test_legacy_shape_without_version_trace_id_spans_or_client_id_is_valid(validate_log):
    log = copy.deepcopy(EXAMPLE)
    del log["schema_version"], log["trace_id"], log["trace"]["spans"], log["identification"]["client_id"]
    validate_log(log)


@pytest.mark.parametrize("key", ["identification", "ticket_info", "outcome", "metrics", "trace"])
def test_required_top_level_keys(validate_log, key):
    log = copy.deepcopy(EXAMPLE)
    del log[key]
    with pytest.raises(fastjsonschema.JsonSchemaException):
        validate_log(log)


@pytest.mark.parametrize("mutate", [
    lambda log: log["outcome"].update(status="DONE"),
    lambda log: log["ticket_info"].pop("ticket_id"),
    lambda log: log["ticket_info"].update(ticket_id=42),
    lambda log: log["ticket_info"].update(executed_at="yesterday"),
    lambda log: log["ticket_info"].pop("executed_at"),
])
def test_invalid_logs_are_rejected(validate_log, mutate):
    log = copy.deepcopy(EXAMPLE)
    mutate(log)
    with pytest.raises(fastjsonschema.JsonSchemaException):
        validate_log(log)


def test_unknown_keys_are_allowed_everywhere(validate_log):
    log = copy.deepcopy(EXAMPLE)
    log["extra"] = 1
    log["outcome"]["extra"] = {"a": 1}
    log["metrics"]["my_metric"] = 3.5
    log["trace"]["spans"][0]["extra"] = True
    validate_log(log)


def test_schema_is_packaged():
    assert otel_bridge.schema_path().is_file()
    assert json.loads(otel_bridge.schema_path().read_text())["required"] == [
        "identification", "ticket_info", "outcome", "metrics", "trace"]
