"""The bridge's own schema check (otel_bridge.schema_check, pure Python) judges a log as the
collector's validator does (collector_api.contract.schema, jsonschema-rs), on the same schema
file; dropping the fields it names leaves a log the collector accepts."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collector_api.contract.schema import schema_error
from otel_bridge.schema_check import Schema, SchemaUnsupported, drop_invalid_fields, invalid_paths

EXAMPLE = json.loads((Path(__file__).parents[2] / "docs" / "workflow-log.example.json").read_text())
# Where the schema says something: every field it constrains, and a few it does not.
PATHS = [("ticket_info", "ticket_id"), ("ticket_info", "executed_at"), ("ticket_info", "execution_time_seconds"),
         ("outcome", "status"), ("outcome", "resolution_status"), ("outcome", "complete"), ("outcome", "error"),
         ("metrics", "node_durations_ms"), ("metrics", "node_durations_ms", "validate_address"),
         ("metrics", "llm_calls"), ("metrics", "overall_confidence"), ("metrics", "cost_usd"),
         ("metrics", "retrieval_top_score"), ("identification", "environment"), ("identification", "client_id"),
         ("trace", "spans", 0, "name"), ("trace", "spans", 0, "span_id"), ("trace", "spans", 1, "status"),
         ("trace", "spans", 1, "duration_ms"), ("trace", "spans", 0, "attributes"), ("trace", "output"),
         ("trace", "spans"), ("trace_id",), ("schema_version",), ("metrics", "custom")]
VALUES = st.one_of(st.none(), st.booleans(), st.integers(-3, 2**40), st.floats(-2, 2, allow_nan=False),
                   st.text(max_size=3), st.sampled_from(["x" * 65, "t" * 257, "SUCCESS", "OK", "ab" * 16,
                                                         "2026-12-07T10:00:00Z", "2026-13-07T10:00:00Z",
                                                         "0123456789abcdef", "[text:1234]"]),
                   st.just([]), st.just({}), st.just([{"name": "x"}]))


def _put(doc: dict, path: tuple, value: object) -> None:
    node = doc
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(changes=st.lists(st.tuples(st.sampled_from(PATHS), VALUES), min_size=1, max_size=4))
def test_the_bridge_check_agrees_with_the_collectors_validator(changes) -> None:
    doc = copy.deepcopy(EXAMPLE)
    for path, value in changes:
        try:
            _put(doc, path, value)
        except (KeyError, IndexError, TypeError):
            pass  # a parent replaced by an earlier change
    assert (invalid_paths(doc) == []) == (schema_error(doc) is None), (invalid_paths(doc), schema_error(doc))
    dropped = drop_invalid_fields(doc)
    required_hit = any(p[:2] in {("ticket_info", "ticket_id"), ("ticket_info", "executed_at"), ("outcome", "status")}
                       or len(p) == 1 and p[0] in ("trace_id", "schema_version")
                       or p[:2] == ("trace", "spans") and len(p) == 2 for p, _ in changes)
    if not required_hit:
        assert schema_error(doc) is None, (changes, dropped)
    assert all(isinstance(d, str) for d in dropped)


def test_a_keyword_the_check_does_not_know_is_refused() -> None:
    with pytest.raises(SchemaUnsupported):
        Schema({"type": "object", "oneOf": [{"type": "object"}]})


def test_a_missing_required_field_of_a_list_item_drops_the_item() -> None:
    doc = copy.deepcopy(EXAMPLE)
    del doc["trace"]["spans"][0]["span_id"]
    assert drop_invalid_fields(doc) == ["trace.spans.0"]
    assert schema_error(doc) is None and len(doc["trace"]["spans"]) == len(EXAMPLE["trace"]["spans"]) - 1
