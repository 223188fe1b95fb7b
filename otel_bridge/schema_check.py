"""The workflow-log schema, checked on the client before a log ships. Pure.

The same file the collector validates with (``otel_bridge/schemas/workflow-log.v1.json``),
compiled here into Python source for the JSON Schema keywords it uses (anything
else raises SchemaUnsupported, so a keyword added to the file cannot be ignored silently). A
field that would make the collector refuse the log is dropped and named
(``drop_invalid_fields``), so a privacy rule or a hostile value costs that field, never the
ticket.
"""

from __future__ import annotations

import functools
import json
import re
from datetime import datetime
from importlib import resources
from typing import Any

Path = tuple[Any, ...]
SUPPORTED = frozenset({"$schema", "$id", "title", "description", "type", "required", "properties",
                       "additionalProperties", "items", "minLength", "maxLength", "minItems", "maxItems",
                       "minimum", "maximum",
                       "enum", "pattern", "format", "$ref", "definitions"})
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}:\d{2})$")
MAX_ROUNDS = 8


class SchemaUnsupported(ValueError):
    """The schema uses a keyword this checker does not implement."""


def _date_time(value: str) -> bool:
    if not _RFC3339.match(value):
        return False
    try:
        datetime.fromisoformat(value.replace("z", "Z").replace("Z", "+00:00").replace("t", "T"))
    except ValueError:
        return False
    return True


_TYPE_TESTS = {
    "object": "isinstance({x}, dict)",
    "array": "isinstance({x}, list)",
    "string": "isinstance({x}, str)",
    "null": "{x} is None",
    "boolean": "({x} is True or {x} is False)",
    "number": "(isinstance({x}, (int, float)) and not isinstance({x}, bool))",
    "integer": "(isinstance({x}, int) and not isinstance({x}, bool) or isinstance({x}, float) and {x}.is_integer())",
}


class _Generator:
    """Python source for a schema: one function per object or array schema, the checks of its
    properties written inline (the log is checked for every ticket on the worker thread: a
    function call per field would cost more than building the log)."""

    def __init__(self, root: dict[str, Any]):
        self.root = root
        self.required: set[Path] = set()  # the required fields' paths, "*" for any list index
        self.sources: list[str] = []
        self.constants: dict[str, Any] = {"_date_time": _date_time, "MISSING": _MISSING}

    def function(self, schema: Any, at: Path) -> str:
        """The name of a function ``f(v, p, k, out)`` appending ``p + (k,)`` when ``v`` fails."""
        name = f"_f{len(self.sources)}"
        self.sources.append("")  # reserve the slot: nested functions come after
        body = self.statements(schema, "v", "p + (k,)", at, "    ")
        self.sources[int(name[2:])] = f"def {name}(v, p, k, out):\n" + ("\n".join(body) or "    pass")
        return name

    def statements(self, schema: Any, x: str, where: str, at: Path, ind: str) -> list[str]:
        schema = self.resolve(schema)
        if schema is True or schema == {}:
            return []
        out: list[str] = []
        types = schema.get("type")
        types = [types] if isinstance(types, str) else types
        if types is not None:
            test = " or ".join(_TYPE_TESTS[t].format(x=x) for t in types)
            out += [f"{ind}if not ({test}):", f"{ind}    out.append({where})", f"{ind}    return"]
        conds = [self.enum_fails(schema["enum"], x)] if "enum" in schema else []
        for cond in conds + self.scalar_fails(schema, x):
            out += [f"{ind}if {cond}:", f"{ind}    out.append({where})", f"{ind}    return"]
        self.required.update(at + (key,) for key in schema.get("required", ()))
        for key in schema.get("required", ()):
            out += [f"{ind}if isinstance({x}, dict) and {key!r} not in {x}:",
                    f"{ind}    out.append({where} + ({key!r},))"]
        out += self.children(schema, x, where, at, ind)
        return out

    def enum_fails(self, values: list[Any], x: str) -> str:
        if all(isinstance(e, str) for e in values):  # the common case, one set look-up
            return f"not (isinstance({x}, str) and {x} in {self.const(frozenset(values))})"
        return f"not any(type({x}) is type(e) and {x} == e for e in {self.const(tuple(values))})"

    def scalar_fails(self, schema: dict[str, Any], x: str) -> list[str]:
        """Conditions under which ``x`` fails the schema's length, pattern, format and bounds."""
        conds = []
        if "minLength" in schema:
            conds.append(f"isinstance({x}, str) and len({x}) < {int(schema['minLength'])}")
        if "maxLength" in schema:
            conds.append(f"isinstance({x}, str) and len({x}) > {int(schema['maxLength'])}")
        if "minItems" in schema:
            conds.append(f"isinstance({x}, list) and len({x}) < {int(schema['minItems'])}")
        if "maxItems" in schema:
            conds.append(f"isinstance({x}, list) and len({x}) > {int(schema['maxItems'])}")
        if "pattern" in schema:
            conds.append(f"isinstance({x}, str) and not {self.const(re.compile(schema['pattern']))}.search({x})")
        if schema.get("format") == "date-time":
            conds.append(f"isinstance({x}, str) and not _date_time({x})")
        number = f"isinstance({x}, (int, float)) and not isinstance({x}, bool)"
        if "minimum" in schema:
            conds.append(f"{number} and {x} < {schema['minimum']!r}")
        if "maximum" in schema:
            conds.append(f"{number} and {x} > {schema['maximum']!r}")
        return conds

    def children(self, schema: dict[str, Any], x: str, where: str, at: Path, ind: str) -> list[str]:
        out: list[str] = []
        props = schema.get("properties", {})
        extra = schema.get("additionalProperties", True)
        if props or extra is not True:
            out.append(f"{ind}if isinstance({x}, dict):")
            for key, sub in props.items():
                y = f"_v{len(at)}"
                out += [f"{ind}    {y} = {x}.get({key!r}, MISSING)", f"{ind}    if {y} is not MISSING:"]
                out += self.call_or_inline(sub, y, f"{where}", repr(key), at + (key,), ind + "        ")
            if extra is not True:
                fn = self.function(extra, at + ("*",))
                out += [f"{ind}    for _k, _x in {x}.items():",
                        f"{ind}        if _k not in {self.const(frozenset(props))}:",
                        f"{ind}            {fn}(_x, {where}, _k, out)"]
        if "items" in schema:
            fn = self.function(schema["items"], at + ("*",))
            out += [f"{ind}if isinstance({x}, list):", f"{ind}    for _i, _x in enumerate({x}):",
                    f"{ind}        {fn}(_x, {where}, _i, out)"]
        return out

    def call_or_inline(self, schema: Any, y: str, where: str, key: str, at: Path, ind: str) -> list[str]:
        """A property's checks: inline when it is a leaf (no fields of its own), else a call."""
        leaf = self.resolve(schema)
        if leaf is True or leaf == {}:
            return [f"{ind}pass"]
        if "properties" in leaf or "items" in leaf or leaf.get("additionalProperties", True) is not True \
                or "required" in leaf:
            fn = self.function(schema, at)
            return [f"{ind}{fn}({y}, {where}, {key}, out)"]
        fails = []
        types = leaf.get("type")
        if types is not None:
            types = [types] if isinstance(types, str) else types
            fails.append("not (" + " or ".join(_TYPE_TESTS[t].format(x=y) for t in types) + ")")
        if "enum" in leaf:
            fails.append(self.enum_fails(leaf["enum"], y))
        fails += self.scalar_fails(leaf, y)
        lines = []
        for i, cond in enumerate(fails):
            lines += [f"{ind}{'if' if i == 0 else 'elif'} {cond}:", f"{ind}    out.append({where} + ({key},))"]
        return lines or [f"{ind}pass"]

    def resolve(self, schema: Any) -> Any:
        while isinstance(schema, dict) and "$ref" in schema:
            ref = schema["$ref"]
            if not ref.startswith("#/definitions/"):
                raise SchemaUnsupported(f"$ref {ref}")
            schema = self.root["definitions"][ref.rsplit("/", 1)[-1]]
        if schema is not True and not isinstance(schema, dict):
            raise SchemaUnsupported(f"schema node {schema!r}")
        unknown = set(schema) - SUPPORTED if isinstance(schema, dict) else set()
        if unknown:
            raise SchemaUnsupported(f"keywords {sorted(unknown)}")
        return schema

    def const(self, value: Any) -> str:
        name = f"_c{len(self.constants)}"
        self.constants[name] = value
        return name


_MISSING = object()


class Schema:
    """A compiled schema: ``check(document, ())`` yields the path of every failing field;
    ``required`` holds the required fields' paths ("*" for a list index or any key)."""

    def __init__(self, schema: dict[str, Any]):
        gen = _Generator(schema)
        body = gen.statements(schema, "v", "()", (), "    ")
        source = "def _root(v, out):\n" + ("\n".join(body) or "    pass") + "\n\n" + "\n\n".join(gen.sources)
        namespace = dict(gen.constants)
        exec(compile(source, "<workflow-log schema>", "exec"), namespace)  # noqa: S102 - our own schema file
        self._root = namespace["_root"]
        self.required = frozenset(gen.required)

    def check(self, document: Any, path: Path = ()) -> list[Path]:
        out: list[Path] = []
        self._root(document, out)
        return out

    def is_required(self, path: Path) -> bool:
        shape = tuple("*" if isinstance(p, int) else p for p in path)
        return shape in self.required or shape[:-1] + ("*",) in self.required


@functools.lru_cache(maxsize=1)
def workflow_log_schema() -> Schema:
    text = (resources.files("otel_bridge.schemas") / "workflow-log.v1.json").read_text(encoding="utf-8")
    return Schema(json.loads(text))


def invalid_paths(document: Any, schema: Schema | None = None) -> list[Path]:
    """The paths of the fields of ``document`` that fail the schema ([] when it is valid)."""
    return (schema or workflow_log_schema()).check(document)


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
