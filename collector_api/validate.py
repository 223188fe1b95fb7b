"""The workflow-log JSON Schema (a byte-identical copy of the bridge's), compiled once."""
from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from typing import Callable

import fastjsonschema

SCHEMA_FILE = "workflow-log.v1.json"


@lru_cache(maxsize=1)
def _validator() -> Callable[[dict], object]:
    text = (resources.files("collector_api.schemas") / SCHEMA_FILE).read_text(encoding="utf-8")
    return fastjsonschema.compile(json.loads(text))


def schema_error(document: dict) -> str | None:
    """None when `document` is a valid workflow log, else a message naming the failing field."""
    try:
        _validator()(document)
    except fastjsonschema.JsonSchemaValueException as exc:
        return exc.message
    except RecursionError:
        return "document nested too deeply"
    return None
