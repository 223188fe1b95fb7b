"""Figures derived from a workflow log once, when it is stored: its critical path, its LLM
usage by model and its draft excerpt. Pure (no I/O): the ingest path (`collector_api.contract.prepare`)
and the backfill jobs for logs stored before migrations 0013 and 0028 (`derive_rows` passed to
store.logs.backfill, `excerpt_rows` to store.logs.excerpt_backfill) call the same functions.

Everything in a log is untrusted: any shape, any size, cycles in the parent links. Both
functions are linear (after one sort) and never recurse.
"""
from __future__ import annotations

import math
from typing import Any

import orjson

from collector_api.contract.numbers import finite_number, non_negative
from collector_api.contract.spantree import known_parent, log_root

EXCERPT_CHARS = 240  # a draft excerpt's length (a session's timeline shows it beside each ticket)
MAX_SPANS = 5000  # spans considered (the viewer draws at most 2000)
MAX_NAME = 200
MAX_MODELS = 50
OTHER_MODELS = "(other models)"
UNKNOWN_MODEL = "(unknown)"


_ms = non_negative
_INF = math.inf


def _offset(value: Any) -> float:
    if type(value) is float and 0.0 <= value < _INF:  # the common case, without a call
        return value
    return _ms(value)


# A span as the walk needs it: (span_id, parent_span_id or None, start ms, end ms, the raw entry).
_Span = tuple[str, Any, float, float, dict]


def _spans_of(spans: Any) -> dict[str, _Span]:
    by_id: dict[str, _Span] = {}
    if not isinstance(spans, list):
        return by_id
    for raw in spans[:MAX_SPANS]:
        if type(raw) is not dict:
            continue
        sid = raw.get("span_id")
        if type(sid) is not str or sid in by_id:
            continue
        parent = raw.get("parent_span_id")
        start = _offset(raw.get("start_offset_ms"))
        by_id[sid] = (sid, parent if type(parent) is str and parent != sid else None, start,
                      start + _offset(raw.get("duration_ms")), raw)
    return by_id


def _kind(raw: dict) -> str:
    kind = raw.get("kind")
    return kind if isinstance(kind, str) else ""


def _root_of(by_id: dict[str, _Span]) -> _Span | None:
    """The log's root by the one rule (contract.spantree); None in a parent cycle."""
    spans = list(by_id.values())
    index = log_root([s[4] for s in spans])
    return None if index is None else spans[index]


def critical_path(spans: Any) -> list[dict[str, Any]]:
    """The chain of spans that determined when the ticket ended, root first, then by start.

    From the root's end walk back in time: at each point t the child of the current span that
    ended last by t is on the path; its own children are walked the same way within its end,
    and t moves to that child's start. A child running past its parent's end counts as ending
    there. Time no child covers is the parent's own work; a child that ran in parallel with the
    chosen one (still running at t) is not on the path. Each entry: span_id, name, kind."""
    by_id = _spans_of(spans)
    root = _root_of(by_id)
    if root is None:
        return []
    children: dict[str, list[_Span]] = {}
    for s in by_id.values():
        parent = known_parent(s[0], s[1], by_id)
        if parent is not None and s is not root:
            children.setdefault(parent, []).append(s)
    on_path: list[_Span] = []
    seen: set[str] = set()
    stack = [(root, root[3])]
    while stack:
        span, limit = stack.pop()
        if span[0] in seen:  # a parent cycle
            continue
        seen.add(span[0])
        on_path.append(span)
        t = end = min(span[3], limit)
        kids = children.get(span[0])
        if not kids:
            continue
        # A child running past its parent's end counts as ending there. Ordered by that end,
        # latest first, the first child that ended by t is the one that ended last before t;
        # t only moves back, so one pass over the children does.
        kids.sort(key=lambda k: (-min(k[3], end), -k[2]))
        for kid in kids:
            kid_end = min(kid[3], end)
            if kid_end <= t and kid[2] < t and kid[2] <= kid_end and kid[0] not in seen:
                stack.append((kid, kid_end))
                t = kid[2]
    on_path.sort(key=lambda s: (s is not root, s[2], -s[3]))
    return [{"span_id": s[0], "name": str(s[4].get("name") or "?")[:MAX_NAME], "kind": _kind(s[4])}
            for s in on_path]


def critical_nodes(path: list[dict[str, Any]]) -> list[str]:
    """The workflow's own nodes on a critical path (not the root, not host `otel.*` spans), once each."""
    names: list[str] = []
    for entry in path[1:]:
        if not entry["kind"].startswith("otel.") and entry["name"] not in names:
            names.append(entry["name"])
    return names[:MAX_MODELS]


# As collector_api.contract.prepare.FIGURE_MAX (not imported: ingest imports this module): a call claiming
# more counts as 0, so per-model sums stay far from float8/numeric trouble.
_FIGURE_MAX = 10**12


def _int(value: Any) -> int:
    number = _ms(value)
    return int(number) if number <= _FIGURE_MAX else 0


def _cost(value: Any) -> float:
    """As the bridge's metrics sum it: any finite number (a refund may be negative), else 0."""
    number = finite_number(value)
    return number if number is not None and abs(number) <= _FIGURE_MAX else 0.0


def usage_by_model(llm_calls: Any) -> dict[str, dict[str, Any]]:
    """`trace.llm_calls` summed per model: {model: {calls, input_tokens, output_tokens, cost_usd}}.

    A call without a model counts under "(unknown)"; beyond MAX_MODELS models the rest are summed
    under "(other models)". Tokens and cost count as the bridge's metrics do (negative or
    non-numeric values as 0), so summing the models gives the log's metrics."""
    out: dict[str, dict[str, Any]] = {}
    if not isinstance(llm_calls, list):
        return out
    for call in llm_calls:
        if not isinstance(call, dict):
            continue
        model = call.get("model")
        name = str(model)[:MAX_NAME] if isinstance(model, str) and model.strip() else UNKNOWN_MODEL
        if name not in out and len(out) >= MAX_MODELS:
            name = OTHER_MODELS
        acc = out.setdefault(name, {"calls": 0, "input_tokens": 0, "output_tokens": 0, "cost_usd": 0.0})
        acc["calls"] += 1
        acc["input_tokens"] += _int(call.get("input_tokens"))
        acc["output_tokens"] += _int(call.get("output_tokens"))
        acc["cost_usd"] += _cost(call.get("cost_usd"))
    return out


def derived_json(document: dict) -> tuple[str, str]:
    """(critical_path, usage_by_model) of a log as the JSON texts its row stores."""
    trace = document.get("trace")
    trace = trace if isinstance(trace, dict) else {}
    path = critical_path(trace.get("spans"))
    stored = {"spans": [e["span_id"] for e in path], "nodes": critical_nodes(path)}
    return orjson.dumps(stored).decode(), orjson.dumps(usage_by_model(trace.get("llm_calls"))).decode()


def derive_rows(rows: list[dict]) -> tuple[list[str], list[str]]:
    """The backfill's derivation: rows holding a log's `spans` and `llm_calls` -> (critical path
    texts, usage texts), as `derived_json` gives them, one of each per row."""
    paths, usages = [], []
    for r in rows:
        path, usage = derived_json({"trace": {"spans": r["spans"], "llm_calls": r["llm_calls"]}})
        paths.append(path)
        usages.append(usage)
    return paths, usages


def draft_excerpt(document: dict) -> str:
    """The first EXCERPT_CHARS characters of the log's `trace.output.draft` when it is a string,
    else '' (the row's `draft_excerpt`; NULL is kept for "not derived yet", migration 0028)."""
    trace = document.get("trace")
    output = trace.get("output") if isinstance(trace, dict) else None
    draft = output.get("draft") if isinstance(output, dict) else None
    return draft[:EXCERPT_CHARS] if isinstance(draft, str) else ""


def excerpt_rows(rows: list[dict]) -> list[str]:
    """The excerpt backfill's derivation: rows holding a log's `draft` (its trace.output.draft, any
    JSON value or None) -> one excerpt per row, as `draft_excerpt` gives it."""
    return [draft_excerpt({"trace": {"output": {"draft": r["draft"]}}}) for r in rows]
