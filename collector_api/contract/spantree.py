"""The span tree of a stored workflow log (`trace.spans` entries: span_id, parent_span_id, kind,
start_offset_ms), by the bridge's one rule (`otel_bridge.spantree`): which parent link counts
and which span is the root. The critical path (contract.derived) and the viewer's waterfall
read the tree through here.
"""
from __future__ import annotations

from typing import Any

from collector_api.contract.numbers import non_negative
from otel_bridge.spantree import Node, known_parent, root_index

__all__ = ["known_parent", "log_root", "node_of"]


def node_of(entry: dict[str, Any]) -> Node:
    """A log's span entry as the rule reads it (a parent that is not an id counts as none)."""
    parent = entry.get("parent_span_id")
    return Node(entry.get("span_id"), parent if isinstance(parent, str) else None, entry.get("kind") == "workflow",
                non_negative(entry.get("start_offset_ms")))


def log_root(entries: list[dict[str, Any]]) -> int | None:
    """The index of the log's root span among `entries`, or None (every span in a parent cycle)."""
    return root_index([node_of(e) for e in entries])
