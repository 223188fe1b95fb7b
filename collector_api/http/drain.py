"""Graceful drain: once the process is told to stop, /readyz answers 503 and new ingest requests
(HTTP and gRPC) are refused with a retry delay, while requests already inside finish and commit
(flusso_obs.drain drives it).

The flag lives on the app (`app.state.drain`, set by install_collector) and is shared with the
gRPC server. The edge's pipeline checks it first (`refuse_if_draining`), so a refused request
costs no key lookup and no body read, whatever its transport.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

from collector_api.http.admission import CollectorState
from collector_api.http.errors import Unavailable


@dataclass
class Drain:
    draining: bool = False
    since: float | None = None  # time.monotonic() when the drain began
    rpcs_in_flight: int = 0  # gRPC calls in progress (uvicorn counts the HTTP ones itself)

    def begin(self) -> bool:
        """Start draining; False when it had already begun."""
        if self.draining:
            return False
        self.draining, self.since = True, time.monotonic()
        return True


def refuse_if_draining(drain: Drain | None, state: CollectorState) -> None:
    """Unavailable (HTTP 503 + Retry-After, gRPC UNAVAILABLE + RetryInfo) while the process drains,
    so the sender (OTLP exporters retry both) delivers to another replica or after the restart."""
    if drain is not None and drain.draining:
        state.metrics.rejected.labels("draining", "").inc()
        raise Unavailable("collector is shutting down; retry later",
                          retry_after=state.settings.flusso_retry_after_seconds)
