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
                if not node.module:  # `from . import rollups` imports the module rollups
                    names.update(".".join((*base, alias.name)) for alias in node.names)
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


# The viewer reads through these store modules; accounts is its only writer (reviews and alert
# rules will join it). Every other store module that writes (ingest, rollups, partitions,
# migrations, roles, jobs) is out of the viewer's reach, also through a re-export.
VIEWER_READS = ("collector_api.store.reads", "collector_api.store.stats", "collector_api.store.db",
                "collector_api.store.scope",
                "collector_api.store.ingest_health",  # ingest health page (issue 14)
                "collector_api.store.usage",  # issue 19: usage report, critical-path nodes
                "collector_api.store.credentials",  # header parsing only, shared with the collector
                "collector_api.store.review_reads")  # issue 17: review history, queue, calibration
VIEWER_WRITERS = ("collector_api.store.accounts",
                  "collector_api.store.reviews",  # issue 17: records reviews (scrubbed by the bridge's pii)
                  "collector_api.store.alerts")  # alert rules page (issue 18)
STORE_WRITERS = ("collector_api.store.writes", "collector_api.store.rollups", "collector_api.store.partitions",
                 "collector_api.store.migrate", "collector_api.store.roles", "collector_api.store.jobs",
                 "collector_api.store.maintenance",
                 "collector_api.store.ingest_counts",  # ingest health counters (issue 14)
                 "collector_api.store.backfill",  # issue 19: derived-figures backfill job
                 "collector_api.store.staging", "collector_api.store.assembly",  # /v1/traces staging and assembly
                 "collector_api.store.alert_rollups", "collector_api.store.alert_eval",  # alerts (issue 18)
                 "collector_api.store.alert_deliveries")


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
        "collector_api.store.health", "collector_api.store.locks", "collector_api.store.rows"}
    assert modules - known == set(), "classify these store modules in tests/test_import_rules.py"


# Issue 17: the review writer scrubs notes with the bridge's free-text detectors; it alone
# may import the bridge, and only its pure modules.
STORE_BRIDGE_USERS = {"collector_api/store/reviews.py"}


def test_store_imports_no_web_framework():
    for path, names in imports_of("collector_api/store").items():
        bad = {n for n in names if top(n) in ("fastapi", "starlette", "viewer", "otel_bridge")
               and not (path in STORE_BRIDGE_USERS and n in BRIDGE_PURE_MODULES)}
        assert not bad, f"{path} imports {bad}"


# The bridge's pure modules: importable with no side effects (no SDK, thread or provider),
# shared with the collector. Everything else of otel_bridge is the client runtime.
BRIDGE_PURE_MODULES = (
    "otel_bridge.assemble", "otel_bridge.sections", "otel_bridge.pii", "otel_bridge.pii_keys", "otel_bridge.attributes",
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
