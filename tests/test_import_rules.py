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
                    if not node.module:  # `from . import rollups` imports the module rollups
                        names.update(".".join((*base, alias.name)) for alias in node.names)
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


# The viewer reads through these store modules; accounts is its only writer (reviews and alert
# rules will join it). Every other store module that writes (ingest, rollups, partitions,
# migrations, roles, jobs) is out of the viewer's reach, also through a re-export.
VIEWER_READS = ("collector_api.store.reads", "collector_api.store.stats", "collector_api.store.db")
VIEWER_WRITERS = ("collector_api.store.accounts",)
STORE_WRITERS = ("collector_api.store.writes", "collector_api.store.rollups", "collector_api.store.partitions",
                 "collector_api.store.migrate", "collector_api.store.roles", "collector_api.store.jobs",
                 "collector_api.store.maintenance")


def test_viewer_uses_only_the_stores_read_side_and_named_writers():
    allowed = VIEWER_READS + VIEWER_WRITERS
    for path, names in imports_of("viewer").items():
        bad = {n for n in names if top(n) in ("otel_bridge", "flusso_obs")
               or (top(n) == "collector_api" and n not in allowed and not n.startswith("collector_api.store.db."))}
        assert not bad, f"{path} imports {bad}"


def store_imports() -> dict[str, set[str]]:
    modules = imports_of("collector_api/store").items()
    return {path.removesuffix(".py").replace("/", "."): names for path, names in modules}


def test_the_viewers_read_modules_reach_no_writer():
    """Transitively: a read module imports no writer, nor a module that imports one (no re-export)."""
    graph = store_imports()
    for start in VIEWER_READS:
        seen, todo = set(), [start]
        while todo:
            module = todo.pop()
            if module in seen:
                continue
            seen.add(module)
            assert module not in STORE_WRITERS + VIEWER_WRITERS, f"{start} reaches the writer {module}"
            todo += [n for n in graph.get(module, ()) if n.startswith("collector_api.store")]


def test_every_store_module_is_classified():
    """A new store module is named here as read side or writer, so the two lists stay complete."""
    modules = {m for m in store_imports() if not m.endswith("__init__")}
    known = set(VIEWER_READS + VIEWER_WRITERS + STORE_WRITERS) | {
        "collector_api.store.health", "collector_api.store.locks"}
    assert modules - known == set(), "classify these store modules in tests/test_import_rules.py"


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
