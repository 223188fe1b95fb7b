"""The bridge's pure modules (shared with the collector) import with no side effects: in a
fresh interpreter, importing one starts no thread, sets no global tracer or logger provider
and does not load the OpenTelemetry SDK."""

import json
import subprocess
import sys

import pytest

from tests.helpers import BRIDGE_PURE

PROBE = r"""
import importlib, json, sys, threading
before = {t.ident for t in threading.enumerate()}
importlib.import_module(sys.argv[1])
if sys.argv[1] == "otel_bridge.schemas":
    import otel_bridge
    otel_bridge.schema_path().read_text()
trace = sys.modules.get("opentelemetry.trace")
logs = sys.modules.get("opentelemetry._logs._internal")
print(json.dumps({
    "new_threads": [t.name for t in threading.enumerate() if t.ident not in before],
    "sdk": sorted(m for m in sys.modules if m.startswith("opentelemetry.sdk")),
    "tracer_provider_set": bool(trace is not None and trace._TRACER_PROVIDER is not None),
    "logger_provider_set": bool(logs is not None and logs._LOGGER_PROVIDER is not None),
}))
"""


@pytest.mark.parametrize("module", BRIDGE_PURE + ("collector_api.traces.otlp_spans",
                                                  "collector_api.contract.schema"))
def test_importing_a_pure_module_has_no_side_effects(module):
    out = subprocess.run([sys.executable, "-c", PROBE, module], capture_output=True, text=True, timeout=60,
                         check=True)
    assert json.loads(out.stdout) == {"new_threads": [], "sdk": [], "tracer_provider_set": False,
                                      "logger_provider_set": False}


def test_the_probe_sees_side_effects():
    """The probe is not blind: the client runtime does load the SDK."""
    out = subprocess.run([sys.executable, "-c", PROBE, "otel_bridge.runtime"], capture_output=True, text=True,
                         timeout=60, check=True)
    assert json.loads(out.stdout)["sdk"] != []
