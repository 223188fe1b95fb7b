"""Attributes every workflow started in the current context carries on its root span.

``otel_bridge.experiments`` sets the experiment tags (experiment id and name, dataset, item)
around each call of the workflow; ``@workflow`` copies them onto the root span, and
``otel_bridge.assemble`` into the log's ``identification.experiment``. A context variable: each
asyncio task and each thread started with a copied context has its own.
"""
from __future__ import annotations

import contextvars
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

current_tags: contextvars.ContextVar[Mapping[str, str | int] | None] = contextvars.ContextVar(
    "otel_bridge.tags", default=None)


@contextmanager
def tagged(tags: Mapping[str, str | int]) -> Iterator[None]:
    """Workflows started inside the block carry `tags` as root-span attributes."""
    token = current_tags.set(dict(tags))
    try:
        yield
    finally:
        current_tags.reset(token)
