"""otel_bridge: one structured, privacy-safe workflow log per support ticket, over OpenTelemetry.

    from otel_bridge import configure, workflow, node, record
    configure()
    @workflow("flusso_ticket")
    async def handle_ticket(ticket): ...

See docs/client.md.
"""

from otel_bridge import record
from otel_bridge.assemble import build_workflow_log
from otel_bridge.decorators import node, workflow
from otel_bridge.runtime import BridgeError, ConfigurationError, configure, flush, shutdown

__all__ = [
    "configure", "workflow", "node", "record", "build_workflow_log", "flush", "shutdown",
    "BridgeError", "ConfigurationError", "stats", "schema_path",
]


def stats() -> dict:
    """Counters of the running bridge (drops, traces handled, logs emitted)."""
    from otel_bridge import runtime

    st = runtime.STATE
    if st is None:
        return {}
    out = dict(st.worker.stats)
    out["logs_emitted"] = st.shipper.emitted if st.shipper is not None else 0
    out["logs_exported"] = st.shipper.exporter.exported if st.shipper is not None else 0
    out["export_failures"] = st.shipper.exporter.failures if st.shipper is not None else 0
    out["queued_spans"] = len(st.worker._queue)
    out["open_traces"] = len(st.worker.active)
    return out


def schema_path():
    """Path of the packaged workflow-log JSON Schema (workflow-log.v1.json)."""
    from importlib.resources import files

    return files("otel_bridge.schemas") / "workflow-log.v1.json"
