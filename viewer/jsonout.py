"""JSON out of the viewer: orjson, and the standard library when orjson cannot write a value.

PostgreSQL's jsonb keeps any number a sender wrote (1e20, a 30-digit id) and gives it back as
a Python int beyond 64 bits, which orjson refuses; such a log must still display and export.
"""
from __future__ import annotations

import json
from typing import Any

import orjson


def dumps(value: Any, *, indent: bool = False, sort_keys: bool = False) -> bytes:
    option = (orjson.OPT_NON_STR_KEYS | (orjson.OPT_INDENT_2 if indent else 0)
              | (orjson.OPT_SORT_KEYS if sort_keys else 0))
    try:
        return orjson.dumps(value, option=option)
    except TypeError:  # orjson.JSONEncodeError: an integer beyond 64 bits, most likely
        return json.dumps(value, indent=2 if indent else None, sort_keys=sort_keys, ensure_ascii=False,
                          separators=None if indent else (",", ":"), default=str).encode()
