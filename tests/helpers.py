"""Helpers shared by more than one folder of tests (each folder has its own helpers.py for the rest)."""
from __future__ import annotations

# The bridge's pure modules: importable with no side effects (no SDK, thread or provider),
# shared with the collector. Everything else of otel_bridge is the client runtime. The import
# rules (tests/test_import_rules.py) and the import probe (tests/bridge/test_pure_modules.py).
BRIDGE_PURE = ("otel_bridge.assemble", "otel_bridge.sections", "otel_bridge.pii", "otel_bridge.pii_keys",
               "otel_bridge.attributes", "otel_bridge.spanrecord", "otel_bridge.schemas")
