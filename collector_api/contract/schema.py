"""The workflow-log JSON Schema, compiled once. The one schema file is the bridge's
(``otel_bridge/schemas/workflow-log.v1.json``, a pure data package): both sides read it.

jsonschema-rs (Rust) validates an ~8 KB log in ~9 µs, six times faster than fastjsonschema
here; on an ingest path that is CPU-bound it is the difference measured in docs/benchmarks-ingest.md.
"""
from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources

import jsonschema_rs

from collector_api.contract.timestamps import is_date_time

SCHEMA_PACKAGE = "otel_bridge.schemas"
SCHEMA_FILE = "workflow-log.v1.json"
MAX_MESSAGE = 200


def schema_text() -> str:
    return (resources.files(SCHEMA_PACKAGE) / SCHEMA_FILE).read_text(encoding="utf-8")


@lru_cache(maxsize=1)
def _validators():
    """(fast, lenient): both assert "format" (Draft 7, the schema's $schema). The fast one uses
    jsonschema-rs's own RFC 3339 check; the lenient one checks date-times by the rule the
    collector parses them with (also "+0530" offsets) through a Python callback, ~4 µs a log,
    so it only runs when the fast one refuses a document."""
    schema = json.loads(schema_text())
    return (jsonschema_rs.validator_for(schema, validate_formats=True),
            jsonschema_rs.validator_for(schema, validate_formats=True, formats={"date-time": is_date_time}))


def _describe(error: jsonschema_rs.ValidationError) -> str:
    where = ".".join(str(part) for part in error.instance_path) or "the document"
    message = error.message
    if len(message) > MAX_MESSAGE:  # the message quotes the offending value, which may be 10 MB
        message = message[:MAX_MESSAGE] + "…"
    return f"{where}: {message}"


def schema_error(document: dict) -> str | None:
    """None when `document` is a valid workflow log, else a message naming the failing field."""
    fast, lenient = _validators()
    try:
        if fast.is_valid(document) or lenient.is_valid(document):
            return None
        return _describe(next(iter(lenient.iter_errors(document))))
    except StopIteration:  # is_valid and iter_errors disagreeing would be a validator bug: refuse
        return "the document does not match the workflow-log schema"
    except (ValueError, TypeError, OverflowError, RecursionError) as exc:
        return f"the document cannot be validated: {str(exc)[:MAX_MESSAGE]}"
