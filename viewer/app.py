"""Placeholder replaced by the viewer implementation."""
from __future__ import annotations


def install_viewer(app, pool, settings) -> None:
    return None
