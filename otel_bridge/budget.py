"""One memory budget in bytes (FLUSSO_MEMORY_MAX_MB) for everything the bridge holds: spans
waiting for the worker, spans buffered for tickets still running, logs waiting for export and
logs waiting for a retry. The worker writes ``span_bytes`` (its own estimate); delivery writes
``log_bytes`` (exact serialized sizes). Each counter has one writer thread; readers tolerate a
slightly stale value (a bound, not an accounting ledger)."""

from __future__ import annotations

# What one finished span costs in memory beyond the text it carries (SDK objects, context,
# attribute and event containers); measured on the demo workflow (docs/client.md).
SPAN_OVERHEAD_BYTES = 2048
# What one queued log costs beyond its serialized bytes (the Item, list slots).
LOG_OVERHEAD_BYTES = 200


class MemoryBudget:
    def __init__(self, limit_bytes: int) -> None:
        self.limit = int(limit_bytes)
        self.span_bytes = 0  # written by the worker thread only
        self.log_bytes = 0  # written under the delivery lock only

    def free(self) -> int:
        return self.limit - self.span_bytes - self.log_bytes

    def used(self) -> int:
        return self.span_bytes + self.log_bytes
