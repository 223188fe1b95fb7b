"""SQL shared by the additive rollup refreshes (store.logs.rollups, store.alerts.rollups): queued
new logs' figures added to stored rollup rows by an upsert."""
from __future__ import annotations


def added(*columns: str) -> str:
    """The SET list of `ON CONFLICT ... DO UPDATE` adding the new figures (`excluded`) to the
    stored row, whose table is aliased `r` in the INSERT."""
    return ", ".join(f"{c} = r.{c} + excluded.{c}" for c in columns)
