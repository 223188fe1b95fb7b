"""Ingest health counters, kept in this process's memory and flushed to PostgreSQL by the
`ingest-counters` job (flusso_obs.jobs; per process, see store.core.jobs).

The hot path only adds to a dict: `count(tenant, reason, n)` is called through the collector's
Prometheus counters (telemetry.CollectorMetrics), so every rejection `/metrics` counts, with the
same reason code, is counted here too, and accepted logs as `stored` / `duplicate`. `take()`
hands the counts over for a flush and starts afresh; `give_back()` merges a batch whose flush
failed, so nothing counted is lost while the database is away.
"""
from __future__ import annotations

import time
from datetime import UTC, datetime

from collector_api.store.ingest_health.counts import CountBatch, flush_counts


def _utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


class IngestCounters:
    def __init__(self, clock=time.time):
        self._clock = clock
        self._counts: dict[tuple[str, int, str], list] = {}  # (tenant, minute number, reason) -> [n, last ts]
        self._keys: dict[str, float] = {}  # key id -> last used ts

    def count(self, tenant: str, reason: str, n: float = 1) -> None:
        """Add `n` events of `reason` for `tenant` ('' when no key identified it) to this minute."""
        if n <= 0:
            return
        now = self._clock()
        slot = self._counts.get(key := (tenant, int(now // 60), reason))
        if slot is None:
            self._counts[key] = [int(n), now]
        else:
            slot[0] += int(n)
            slot[1] = now

    def key_used(self, key_id: str) -> None:
        self._keys[key_id] = self._clock()

    def take(self) -> CountBatch:
        """Everything counted since the last take, as a batch for store.ingest_counts.flush_counts."""
        counts, keys = self._counts, self._keys
        self._counts, self._keys = {}, {}
        return CountBatch(
            counts={(t, _utc(m * 60), r): [n, _utc(last)] for (t, m, r), (n, last) in counts.items()},
            keys={k: _utc(ts) for k, ts in keys.items()})

    def give_back(self, batch: CountBatch) -> None:
        """Merge an unflushed batch back (its flush failed); it goes out with the next one."""
        for (tenant, minute, reason), (n, last) in batch.counts.items():
            key = (tenant, int(minute.timestamp() // 60), reason)
            slot = self._counts.setdefault(key, [0, last.timestamp()])
            slot[0] += n
            slot[1] = max(slot[1], last.timestamp())
        for key_id, used in batch.keys.items():
            self._keys[key_id] = max(self._keys.get(key_id, 0.0), used.timestamp())

    def pending(self) -> int:
        return len(self._counts) + len(self._keys)


async def flush_counters(counters: IngestCounters, pool) -> int:
    """The `ingest-counters` job: write what `counters` holds; on any failure (the database away,
    the job cancelled at shutdown) the batch goes back to memory for the next flush."""
    batch = counters.take()
    try:
        return await flush_counts(pool, batch)
    except BaseException:
        counters.give_back(batch)
        raise
