"""Graceful drain: once the process is told to stop, /readyz answers 503 and new ingest requests
503 + Retry-After, while requests already inside finish and commit (flusso_obs.drain drives it).

The flag lives on the app (`app.state.drain`, set by install_collector); the ingest routers carry
`refuse_when_draining` as their first dependency, so a refused request costs no key lookup and
no body read.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

from fastapi import Request

from collector_api.http.errors import Unavailable


@dataclass
class Drain:
    draining: bool = False
    since: float | None = None  # time.monotonic() when the drain began

    def begin(self) -> bool:
        """Start draining; False when it had already begun."""
        if self.draining:
            return False
        self.draining, self.since = True, time.monotonic()
        return True


def refuse_when_draining(request: Request) -> None:
    """Dependency of the ingest routes: 503 + Retry-After while the process drains, so the
    sender (the OTLP exporter retries 503) delivers to another replica or after the restart."""
    drain: Drain | None = getattr(request.app.state, "drain", None)
    if drain is not None and drain.draining:
        state = request.app.state.collector
        state.metrics.rejected.labels("draining", "").inc()
        raise Unavailable("collector is shutting down; retry later",
                          retry_after=state.settings.flusso_retry_after_seconds)
