"""Planted values must be nowhere in the database: staging (text and bytes) and logs."""
from __future__ import annotations

import psycopg


def assert_nowhere(dsn: str, planted: list[str], *, min_blobs: int = 1) -> None:
    with psycopg.connect(dsn) as conn:
        texts = [r[0] for t in ("trace_spans", "trace_state", "workflow_logs")
                 for r in conn.execute(f"SELECT t::text FROM {t} t").fetchall()]
        blobs = [bytes(r[0]) for r in conn.execute("SELECT payload FROM trace_spans").fetchall()]
    assert len(blobs) >= min_blobs and texts
    for value in planted:
        for text in texts:
            assert value.lower() not in text.lower(), f"{value!r} found in the database"
        for blob in blobs:
            assert value.encode() not in blob and value.lower().encode() not in blob.lower()
