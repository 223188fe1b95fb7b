"""How a trace's spans form a tree: which parent link counts, and which span is the root.

One rule for the bridge's log builder (sections.find_root), the collector's /v1/traces mapping
and the stored log's critical path and waterfall (collector_api.contract.spantree). Pure: no
I/O, no OpenTelemetry import.

- A span hangs under its parent only when the parent is among the spans and is not the span
  itself; otherwise it is a top (no parent, a parent that never arrived or was dropped, a
  self-loop).
- The root is, in this order: a span with no parent of the workflow kind; a span with no parent
  (the workflow log's contract: `parent_span_id` is null for the root); a top of the workflow
  kind; any top. Among equals, the one that started first. When every span hangs under another
  (a parent cycle) there is no root.
"""
from __future__ import annotations

from collections.abc import Collection, Hashable, Sequence
from typing import NamedTuple


class Node(NamedTuple):
    span_id: Hashable
    parent_id: Hashable | None
    workflow: bool  # of the workflow kind (flusso.kind = "workflow")
    start: float  # any clock, the same for every span


def known_parent(span_id: Hashable, parent_id: Hashable | None, ids: Collection[Hashable]) -> Hashable | None:
    """The parent `span_id` hangs under: `parent_id` when it is one of `ids` and not the span
    itself, else None (the span is a top)."""
    if parent_id is None or parent_id == span_id or parent_id not in ids:
        return None
    return parent_id


def root_index(nodes: Sequence[Node]) -> int | None:
    """The index of the root among `nodes` (see the module's rule), or None (a parent cycle)."""
    ids = {n.span_id for n in nodes}
    best: tuple[tuple[int, float, int], int] | None = None
    for i, n in enumerate(nodes):
        if n.parent_id is None:
            rank = 0 if n.workflow else 1
        elif known_parent(n.span_id, n.parent_id, ids) is None:
            rank = 2 if n.workflow else 3
        else:
            continue
        key = (rank, n.start, i)
        if best is None or key < best[0]:
            best = (key, i)
    return None if best is None else best[1]
