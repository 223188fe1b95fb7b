"""The one-way data flow of docs/architecture.md, checked on the source (ast, not at runtime)."""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def imports_of_file(path: Path) -> set[str]:
    """Every module `path` imports, at any depth (inside functions and TYPE_CHECKING too)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the module's package
                base = path.relative_to(ROOT).with_suffix("").parts[:-node.level]
                names.add(".".join((*base, node.module)) if node.module else ".".join(base))
            else:
                names.add(node.module)
    return names


def imports_of(package: str) -> dict[str, set[str]]:
    return {str(path.relative_to(ROOT)): imports_of_file(path) for path in (ROOT / package).rglob("*.py")}


def top(name: str) -> str:
    return name.split(".")[0]


def test_bridge_imports_nothing_of_the_provider_side():
    for path, names in imports_of("otel_bridge").items():
        bad = {n for n in names if top(n) in ("collector_api", "viewer", "flusso_obs")}
        assert not bad, f"{path} imports {bad}"


def test_config_imports_nothing_of_ours():
    for path, names in imports_of("config").items():
        bad = {n for n in names if top(n) in ("otel_bridge", "collector_api", "viewer", "flusso_obs")}
        assert not bad, f"{path} imports {bad}"


def test_viewer_uses_only_the_stores_read_side():
    allowed = ("collector_api.store.reads", "collector_api.store.db", "collector_api.store.accounts")
    for path, names in imports_of("viewer").items():
        bad = {n for n in names if top(n) in ("otel_bridge", "flusso_obs")
               or (top(n) == "collector_api" and not n.startswith(allowed))}
        assert not bad, f"{path} imports {bad}"
        writes = {n for n in names if n.startswith("collector_api.store.writes")}
        assert not writes, f"{path} imports the write path"


def test_store_imports_no_web_framework():
    for path, names in imports_of("collector_api/store").items():
        bad = {n for n in names if top(n) in ("fastapi", "starlette", "viewer", "otel_bridge")}
        assert not bad, f"{path} imports {bad}"


# The bridge's pure modules: importable with no side effects (no SDK, thread or provider),
# shared with the collector. Everything else of otel_bridge is the client runtime.
BRIDGE_PURE_MODULES = (
    "otel_bridge.assemble", "otel_bridge.sections", "otel_bridge.pii", "otel_bridge.attributes",
    "otel_bridge.spanrecord", "otel_bridge.schemas",
)


def test_collector_imports_only_the_bridges_pure_modules():
    for path, names in imports_of("collector_api").items():
        bad = {n for n in names if top(n) in ("viewer", "flusso_obs")
               or (top(n) == "otel_bridge" and n not in BRIDGE_PURE_MODULES)}
        assert not bad, f"{path} imports {bad}"


def test_bridge_pure_modules_import_only_each_other():
    for module in BRIDGE_PURE_MODULES:
        rel = module.replace(".", "/")
        path = f"{rel}/__init__.py" if (ROOT / rel).is_dir() else f"{rel}.py"
        names = imports_of_file(ROOT / path)
        ours = {n for n in names if top(n) in ("otel_bridge", "collector_api", "viewer", "flusso_obs", "config")}
        assert ours <= set(BRIDGE_PURE_MODULES) | {"otel_bridge"}, f"{path} imports {ours}"
        assert not {n for n in names if top(n) == "opentelemetry"}, f"{path} imports OpenTelemetry"


def test_otlp_span_converter_imports_only_pure_modules_and_the_proto():
    names = imports_of_file(ROOT / "collector_api/otlp_spans.py")
    for n in names:
        assert n in BRIDGE_PURE_MODULES or n.startswith("opentelemetry.proto.") or top(n) in (
            "__future__", "collections", "typing"), f"collector_api/otlp_spans.py imports {n}"


def test_the_collector_validates_with_the_bridges_one_schema_file():
    from collector_api import validate

    assert not (ROOT / "collector_api/schemas").exists(), "the schema has one file: otel_bridge/schemas/"
    bridge = (ROOT / "otel_bridge/schemas/workflow-log.v1.json").read_text(encoding="utf-8")
    assert validate.schema_text() == bridge
