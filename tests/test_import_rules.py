"""The one-way data flow of docs/architecture.md, checked on the source (ast, not at runtime)."""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def imports_of(package: str) -> dict[str, set[str]]:
    found = {}
    for path in (ROOT / package).rglob("*.py"):
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
        found[str(path.relative_to(ROOT))] = names
    return found


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
    allowed = ("collector_api.store.reads", "collector_api.store.db", "collector_api.store.accounts",
               "collector_api.store.credentials")  # header parsing only, shared with the collector
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


def test_collector_never_imports_viewer_or_bridge():
    for path, names in imports_of("collector_api").items():
        bad = {n for n in names if top(n) in ("viewer", "otel_bridge", "flusso_obs")}
        assert not bad, f"{path} imports {bad}"


def test_schema_copies_are_byte_identical():
    bridge = (ROOT / "otel_bridge/schemas/workflow-log.v1.json").read_bytes()
    collector = (ROOT / "collector_api/schemas/workflow-log.v1.json").read_bytes()
    assert bridge == collector, "copy otel_bridge/schemas/workflow-log.v1.json to collector_api/schemas/"
