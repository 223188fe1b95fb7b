"""JSON text from a sender, read one way everywhere: bounded nesting, no recursion. Pure.

A workflow log (on /v1/logs and the legacy endpoint) and every JSON string inside a span's
attributes (OpenInference `metadata`, `output.value`, message lists on /v1/traces) go through
`loads_bounded`: orjson parses without Python recursion (its own limit is 1024 levels), and
`nesting_error` walks the result iteratively, so a hostile depth is a ValueError with a message,
never a RecursionError (a 500) in whatever walks the value next.
"""
from __future__ import annotations

import json

import orjson

# One nesting limit for a workflow log on every ingest path (docs/collector.md): a log the
# bridge builds nests ~20 levels at most (record.* payloads are cut at 16); deeper documents
# would reach recursion limits in validation, storage or the viewer.
MAX_NESTING = 64


class TooDeep(ValueError):
    """A JSON value nests deeper than the limit."""


def too_deep_message(limit: int = MAX_NESTING, what: str = "the workflow log") -> str:
    return f"{what} is nested deeper than the limit of {limit} levels"


def nesting_error(value: object, limit: int = MAX_NESTING, what: str = "the workflow log") -> str | None:
    """None when `value` nests at most `limit` levels of objects/arrays, else the message.
    Iterative: a hostile depth costs no recursion."""
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return too_deep_message(limit, what)
        children = node.values() if isinstance(node, dict) else node
        for child in children:  # type: ignore[union-attr]
            if isinstance(child, (dict, list)):
                stack.append((child, depth + 1))
    return None


def not_json_message(exc: Exception, limit: int = MAX_NESTING, what: str = "the workflow log") -> str:
    """Why a JSON text was refused; orjson's own depth limit (1024) is reported as ours."""
    if "depth limit" in str(exc) or isinstance(exc, RecursionError):
        return too_deep_message(limit, what)
    return f"body is not valid JSON: {exc}"


def loads_lenient(text: str | bytes) -> tuple[object, bool]:
    """(value, strict): orjson, else the stdlib, which also reads NaN/Infinity (Python's json.dumps
    writes them; they become null) and lone surrogate escapes (`strict` is then False: the value
    needs cleaning before it can be stored). The stdlib runs only on text orjson refused for a
    reason other than depth, so it never recurses deeper than orjson's limit."""
    try:
        return orjson.loads(text), True
    except orjson.JSONDecodeError as first:
        if "depth limit" in str(first):
            raise
        try:
            return json.loads(text, parse_constant=lambda _: None), False
        except (ValueError, RecursionError):
            raise first from None


def loads_bounded(text: str | bytes, limit: int = MAX_NESTING, what: str = "a JSON value") -> object:
    """The value of a JSON text nested at most `limit` levels; ValueError (TooDeep when too deep)
    otherwise. For JSON embedded in attributes: strict JSON only."""
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        if "depth limit" in str(exc):
            raise TooDeep(too_deep_message(limit, what)) from None
        raise
    if isinstance(value, (dict, list)):
        error = nesting_error(value, limit, what)
        if error:
            raise TooDeep(error)
    return value
