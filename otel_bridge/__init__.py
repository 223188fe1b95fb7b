"""otel_bridge: one structured, privacy-safe workflow log per support ticket, over OpenTelemetry.

    from otel_bridge import configure, workflow, node, record
    configure()
    @workflow("flusso_ticket")
    async def handle_ticket(ticket): ...

See docs/client.md.

The public names are imported on first use (PEP 562), so importing a pure module of the
package (``otel_bridge.assemble``, ``sections``, ``spanrecord``, ``pii``, ``attributes``,
``schemas``) loads no OpenTelemetry SDK and starts nothing: the collector imports those.
"""

from __future__ import annotations

import importlib
from importlib.abc import Traversable
from importlib.resources import files
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from otel_bridge import experiments, record
    from otel_bridge.assemble import build_workflow_log
    from otel_bridge.decorators import node, workflow
    from otel_bridge.erasure import erasure_tokens
    from otel_bridge.runtime import BridgeError, ConfigurationError, configure, flush, shutdown, stats

__all__ = [
    "configure", "workflow", "node", "record", "build_workflow_log", "flush", "shutdown",
    "BridgeError", "ConfigurationError", "stats", "schema_path", "erasure_tokens", "experiments",
]

# public name -> module that defines it
_LAZY = {
    "record": "otel_bridge.record",
    "experiments": "otel_bridge.experiments",
    "build_workflow_log": "otel_bridge.assemble",
    "node": "otel_bridge.decorators",
    "workflow": "otel_bridge.decorators",
    "BridgeError": "otel_bridge.runtime",
    "ConfigurationError": "otel_bridge.runtime",
    "configure": "otel_bridge.runtime",
    "flush": "otel_bridge.runtime",
    "shutdown": "otel_bridge.runtime",
    "stats": "otel_bridge.runtime",
    "erasure_tokens": "otel_bridge.erasure",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'otel_bridge' has no attribute {name!r}")
    loaded = importlib.import_module(module)
    value = loaded if name in ("record", "experiments") else getattr(loaded, name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


def schema_path() -> Traversable:
    """Path of the packaged workflow-log JSON Schema (workflow-log.v1.json)."""
    return files("otel_bridge.schemas") / "workflow-log.v1.json"
