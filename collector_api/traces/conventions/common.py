"""Helpers shared by the convention readers. Pure."""
from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from collector_api.contract.jsontext import loads_bounded
from collector_api.contract.numbers import finite_number

# The fields a reader may return (collector_api.traces.conventions.combine merges them by precedence).
FIELDS = ("kind", "model", "provider", "input_tokens", "output_tokens", "total_tokens", "cache_read",
          "cache_write", "cost", "tool_name", "tool_call_id", "tool_arguments", "tool_result", "documents",
          "query", "data_source", "session_id", "user_id", "error")
_INDEXED = re.compile(r"^(\d{1,6})\.(.+)$")


def first(attrs: Mapping[str, Any], names: Sequence[str]) -> Any:
    """The first of `names` that `attrs` holds with a value (not None, not "")."""
    for name in names:
        value = attrs.get(name)
        if value is not None and value != "":
            return value
    return None


COUNT_MAX = 10**12  # as collector_api.contract.prepare.FIGURE_MAX: beyond it a count is not believed


def count(value: Any) -> int | None:
    """A token count: a non-negative integer (or its digits as a string) up to COUNT_MAX, else
    None (a 400-digit count made the price computation overflow and the trace fail to assemble)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        text = value.strip()
        return int(text) if text.isdigit() and len(text) <= 13 and int(text) <= COUNT_MAX else None
    number = finite_number(value)
    return int(number) if number is not None and 0 <= number <= COUNT_MAX else None


def number(value: Any, *, signed: bool = False) -> float | None:
    """A finite number, non-negative unless `signed` (a score may be below 0), else None."""
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return None
    number = finite_number(value)
    return number if number is not None and (signed or number >= 0) else None


def text(value: Any) -> str | None:
    return value.strip()[:256] if isinstance(value, str) and value.strip() else None


def json_list(value: Any) -> list[Any]:
    """A JSON array (as text or already a sequence) as a list; anything else: []."""
    if isinstance(value, str):
        try:
            value = loads_bounded(value)
        except ValueError:
            return []
    return list(value) if isinstance(value, (list, tuple)) else []


def indexed(attrs: Mapping[str, Any], prefix: str) -> dict[int, dict[str, Any]]:
    """Flattened lists: ``prefix.N.rest`` -> {N: {rest: value}} (OpenInference style)."""
    out: dict[int, dict[str, Any]] = {}
    for key, value in attrs.items():
        if key.startswith(prefix):
            m = _INDEXED.match(key[len(prefix):])
            if m:
                out.setdefault(int(m.group(1)), {})[m.group(2)] = value
    return dict(sorted(out.items()))


def document(doc_id: Any, score: Any) -> dict[str, Any] | None:
    """One retrieved document as the log's `{id, score}` (None when it has neither)."""
    out: dict[str, Any] = {}
    if doc_id is not None and doc_id != "":
        out["id"] = str(doc_id)[:256]
    s = number(score, signed=True)
    if s is not None:
        out["score"] = s
    return out or None
