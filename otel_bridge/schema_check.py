"""The workflow-log schema, checked on the client before a log ships. Pure.

The same file the collector validates with (``otel_bridge/schemas/workflow-log.v1.json``),
compiled here into small checking functions for the JSON Schema keywords it uses (anything
else raises SchemaUnsupported, so a keyword added to the file cannot be ignored silently). A
field that would make the collector refuse the log is dropped and named
(``drop_invalid_fields``), so a privacy rule or a hostile value costs that field, never the
ticket.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Iterator
from datetime import datetime
from importlib import resources
from typing import Any

Path = tuple[Any, ...]
Check = Callable[[Any, Path], Iterator[Path]]
SUPPORTED = frozenset({"$schema", "$id", "title", "description", "type", "required", "properties",
                       "additionalProperties", "items", "minLength", "maxLength", "minimum", "maximum",
                       "enum", "pattern", "format", "$ref", "definitions"})
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}:\d{2})$")
MAX_ROUNDS = 8


class SchemaUnsupported(ValueError):
    """The schema uses a keyword this checker does not implement."""


def _is_type(value: Any, name: str) -> bool:
    if name == "object":
        return isinstance(value, dict)
    if name == "array":
        return isinstance(value, list)
    if name == "string":
        return isinstance(value, str)
    if name == "null":
        return value is None
    if name == "boolean":
        return isinstance(value, bool)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return name == "number" or isinstance(value, int) or value.is_integer()


def _date_time(value: str) -> bool:
    if not _RFC3339.match(value):
        return False
    try:
        datetime.fromisoformat(value.replace("z", "Z").replace("Z", "+00:00").replace("t", "T"))
    except ValueError:
        return False
    return True


class _Compiler:
    def __init__(self, root: dict[str, Any]):
        self.root = root
        self.required: set[Path] = set()  # the required fields' paths, "*" for any list index

    def compile(self, schema: Any, at: Path = ()) -> Check:
        if schema is True or schema == {}:
            return _nothing
        if not isinstance(schema, dict):
            raise SchemaUnsupported(f"schema node {schema!r}")
        unknown = set(schema) - SUPPORTED
        if unknown:
            raise SchemaUnsupported(f"keywords {sorted(unknown)}")
        if "$ref" in schema:
            return self._ref(schema["$ref"], at)
        self.required.update(at + (key,) for key in schema.get("required", ()))
        checks = [self._local(schema)]
        if "properties" in schema or "additionalProperties" in schema:
            checks.append(self._children(schema, at))
        if "items" in schema:
            checks.append(self._items(self.compile(schema["items"], at + ("*",))))
        return _all(checks)

    def _ref(self, ref: str, at: Path) -> Check:
        if not ref.startswith("#/definitions/"):
            raise SchemaUnsupported(f"$ref {ref}")
        return self.compile(self.root["definitions"][ref.rsplit("/", 1)[-1]], at)

    def _local(self, schema: dict[str, Any]) -> Check:
        types = schema.get("type")
        types = [types] if isinstance(types, str) else types
        enum, required = schema.get("enum"), tuple(schema.get("required", ()))
        lo, hi = schema.get("minimum"), schema.get("maximum")
        min_len, max_len = schema.get("minLength"), schema.get("maxLength")
        pattern = re.compile(schema["pattern"]) if "pattern" in schema else None
        date_time = schema.get("format") == "date-time"

        def check(value: Any, path: Path) -> Iterator[Path]:
            if types is not None and not any(_is_type(value, t) for t in types):
                yield path
            elif enum is not None and not any(type(value) is type(e) and value == e for e in enum):
                yield path
            elif isinstance(value, str) and (
                    (min_len is not None and len(value) < min_len) or (max_len is not None and len(value) > max_len)
                    or (pattern is not None and not pattern.search(value)) or (date_time and not _date_time(value))):
                yield path
            elif isinstance(value, (int, float)) and not isinstance(value, bool) and (
                    (lo is not None and value < lo) or (hi is not None and value > hi)):
                yield path
            elif isinstance(value, dict):
                yield from (path + (key,) for key in required if key not in value)
        return check

    def _children(self, schema: dict[str, Any], at: Path) -> Check:
        props = {k: self.compile(v, at + (k,)) for k, v in schema.get("properties", {}).items()}
        extra_schema = schema.get("additionalProperties", True)
        extra = None if extra_schema is True else self.compile(extra_schema, at + ("*",))

        def check(value: Any, path: Path) -> Iterator[Path]:
            if not isinstance(value, dict):
                return
            if extra is None:
                for key, sub in props.items():
                    if key in value:
                        yield from sub(value[key], path + (key,))
                return
            for key, item in value.items():
                yield from props.get(key, extra)(item, path + (key,))
        return check

    @staticmethod
    def _items(sub: Check) -> Check:
        def check(value: Any, path: Path) -> Iterator[Path]:
            if isinstance(value, list):
                for i, item in enumerate(value):
                    yield from sub(item, path + (i,))
        return check


def _nothing(value: Any, path: Path) -> Iterator[Path]:
    return iter(())


def _all(checks: list[Check]) -> Check:
    if len(checks) == 1:
        return checks[0]

    def check(value: Any, path: Path) -> Iterator[Path]:
        for c in checks:
            yield from c(value, path)
    return check


class Schema:
    """A compiled schema: ``check(document, ())`` yields the path of every failing field;
    ``required`` holds the required fields' paths ("*" for a list index or any key)."""

    def __init__(self, schema: dict[str, Any]):
        compiler = _Compiler(schema)
        self.check = compiler.compile(schema)
        self.required = frozenset(compiler.required)

    def is_required(self, path: Path) -> bool:
        shape = tuple("*" if isinstance(p, int) else p for p in path)
        return shape in self.required or shape[:-1] + ("*",) in self.required


@functools.lru_cache(maxsize=1)
def workflow_log_schema() -> Schema:
    text = (resources.files("otel_bridge.schemas") / "workflow-log.v1.json").read_text(encoding="utf-8")
    return Schema(json.loads(text))


def invalid_paths(document: Any, schema: Schema | None = None) -> list[Path]:
    """The paths of the fields of ``document`` that fail the schema ([] when it is valid)."""
    return list((schema or workflow_log_schema()).check(document, ()))


def drop_invalid_fields(document: dict[str, Any], schema: Schema | None = None) -> list[str]:
    """Drop every field of ``document`` that fails the schema, until none does; an item of a
    list that misses a required field is dropped from its list. Returns the dropped paths,
    dotted. The top-level sections and a required field outside a list are never dropped (the
    log is nothing without them): the collector then says which field is wrong."""
    schema = schema or workflow_log_schema()
    dropped: list[str] = []
    for _ in range(MAX_ROUNDS):
        targets = {t for t in (_target(document, p, schema) for p in invalid_paths(document, schema)) if t}
        if not targets:
            break
        # deepest and last first, so the indexes of a list's earlier items stay right
        for path in sorted(targets, key=lambda p: (len(p), p[-1] if isinstance(p[-1], int) else -1), reverse=True):
            parent = _node(document, path[:-1])
            try:
                del parent[path[-1]]
            except (KeyError, IndexError, TypeError):
                continue
            dropped.append(".".join(map(str, path)))
    return dropped


def _target(document: Any, path: Path, schema: Schema) -> Path | None:
    """What to drop for a failing ``path``: the field itself; for a required field (missing or
    failing) the list item holding it; None when only a required section would do."""
    if schema.is_required(path):
        path = path[:-1]
        if not path or not isinstance(path[-1], int):
            return None
    if len(path) < 2:
        return None
    parent = _node(document, path[:-1])
    if isinstance(parent, dict) and path[-1] in parent:
        return path
    if isinstance(parent, list) and isinstance(path[-1], int) and path[-1] < len(parent):
        return path
    return None


def _node(document: Any, path: Path) -> Any:
    node = document
    for part in path:
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            return None
    return node
