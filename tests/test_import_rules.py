"""The one-way data flow of docs/architecture.md, checked on the source (ast, not at runtime).

One table, ROOMS, says what each room of the code may import of ours. The check is transitive:
a module may reach (through any chain of our imports) only what its room allows, so a room
cannot borrow a forbidden module through a neighbour. Imports inside functions and
TYPE_CHECKING blocks count too.
"""
import ast
from functools import cache
from pathlib import Path

from tests.helpers import BRIDGE_PURE

ROOT = Path(__file__).resolve().parents[1]
OURS = ("config", "otel_bridge", "collector_api", "viewer", "flusso_obs")


# What the viewer may use of the store: its read side, and the writers a page needs.
STORE_READS = ("collector_api.store.logs.reads", "collector_api.store.logs.stats", "collector_api.store.logs.usage",
               "collector_api.store.logs.sessions", "collector_api.store.logs.recontact",
               "collector_api.store.core.db", "collector_api.store.core.scope",
               "collector_api.store.ingest_health.reads", "collector_api.store.reviews.reads",
               "collector_api.store.reviews.calibration",
               "collector_api.store.core.job_status", "collector_api.store.evals.reads",
               "collector_api.store.erasure.reads", "collector_api.store.datasets.reads")
VIEWER_WRITERS = ("collector_api.store.accounts.principals", "collector_api.store.reviews.writes",
                  "collector_api.store.alerts.rules", "collector_api.store.evals.evaluators",
                  "collector_api.store.datasets.writes")
# What the viewer may use of the alerts: rule validation (pure) and rule creation and listing.
VIEWER_ALERTS = ("collector_api.alerts.rules", "collector_api.alerts.admin")
# What the viewer may use of the evaluations: definitions (pure), creation and listing, calibration (pure).
VIEWER_EVALS = ("collector_api.evals.spec", "collector_api.evals.policy", "collector_api.evals.admin",
                "collector_api.evals.calibration")
# The pure evaluators: no store, no network (the job and the judge client are the I/O side).
EVALS_PURE = ("collector_api.evals.deterministic", "collector_api.evals.language", "collector_api.evals.policy",
              "collector_api.evals.rubric", "collector_api.evals.spec", "collector_api.evals.calibration")
EDGE = "collector_api.http"
STORE = "collector_api.store"
SHARED_RULES = "collector_api.contract"

# room (a module prefix; the longest prefix names a module's room) -> what it may reach of ours.
ROOMS: dict[str, tuple[str, ...]] = {
    "config": (),
    "otel_bridge": ("config", "otel_bridge"),
    **{pure: BRIDGE_PURE for pure in BRIDGE_PURE},
    "collector_api.store": (STORE,),
    "collector_api.store.datasets": (STORE,),  # datasets and experiments: SQL + psycopg, like the rest
    "collector_api.contract": (SHARED_RULES, *BRIDGE_PURE, "collector_api.store.logs.rows"),
    "collector_api.telemetry": ("collector_api.telemetry", STORE, "config"),
    "collector_api.http": (EDGE, "collector_api.telemetry", SHARED_RULES, STORE, "config", *BRIDGE_PURE),
    "collector_api.logs": ("collector_api.logs", EDGE, "collector_api.telemetry", SHARED_RULES, STORE, "config",
                           *BRIDGE_PURE),
    "collector_api.traces": ("collector_api.traces", EDGE, "collector_api.telemetry", SHARED_RULES, STORE, "config",
                             *BRIDGE_PURE),
    "collector_api.erasure": ("collector_api.erasure", EDGE, "collector_api.telemetry", SHARED_RULES, STORE, "config",
                              "collector_api.traces.sealing", *BRIDGE_PURE),
    "collector_api.alerts": ("collector_api.alerts", "collector_api.telemetry", SHARED_RULES, STORE, "config",
                             *BRIDGE_PURE),
    # Pure: the rules as people write them, and what a notification says (no store, no I/O).
    "collector_api.alerts.rules": ("collector_api.alerts.rules", SHARED_RULES, *BRIDGE_PURE),
    "collector_api.alerts.notify": ("collector_api.alerts.rules", SHARED_RULES, *BRIDGE_PURE),
    "collector_api.evals": ("collector_api.evals", SHARED_RULES, STORE, "config", *BRIDGE_PURE),
    **{pure: (*EVALS_PURE, SHARED_RULES, *BRIDGE_PURE) for pure in EVALS_PURE},
    "collector_api": ("collector_api", "config", *BRIDGE_PURE),
    # The bridge's pure modules only through collector_api.contract (see the test on direct imports).
    "viewer": ("viewer", "config", "collector_api.http.credentials", SHARED_RULES, *BRIDGE_PURE,
               *STORE_READS, *VIEWER_WRITERS, *VIEWER_ALERTS, *VIEWER_EVALS),
    "flusso_obs": OURS,
}
# Third-party packages a room must never import (directly; our own modules are checked above).
FORBIDDEN_THIRD_PARTY = {
    "collector_api.store": ("fastapi", "starlette", "jinja2", "httpx", "urllib", "csv"),
    "collector_api.alerts.rules": ("fastapi", "starlette", "psycopg", "psycopg_pool", "httpx"),
    "collector_api.alerts.notify": ("fastapi", "starlette", "psycopg", "psycopg_pool", "httpx"),
    "collector_api.contract": ("fastapi", "starlette", "psycopg", "psycopg_pool"),
    "config": ("fastapi", "psycopg"),
    **{pure: ("fastapi", "starlette", "psycopg", "psycopg_pool", "httpx") for pure in EVALS_PURE},
}
# Pure modules: no I/O library at all (they are imported by the bridge side or run in threads).
PURE_MODULES = ("collector_api.traces.otlp_spans", "collector_api.traces.decode", "collector_api.traces.mapping",
                "collector_api.logs.decode", "collector_api.http.otlp", *EVALS_PURE)


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_names(path: Path) -> list[tuple[str, str | None]]:
    """(module, imported name or None) of every import in `path`, relative ones resolved."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module_name(path).split(".") if path.name == "__init__.py" else module_name(path).split(".")[:-1]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(alias.name, None) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = ".".join([*package[:len(package) - node.level + 1], node.module] if node.level and node.module
                            else package[:len(package) - node.level + 1] if node.level else [node.module])
            out += [(base, alias.name) for alias in node.names]
    return out


@cache
def all_modules() -> dict[str, Path]:
    found = {}
    for top in OURS:
        for path in (ROOT / top).rglob("*.py"):
            found[module_name(path)] = path
    return found


def resolve(module: str, name: str | None) -> str:
    """`from a.b import c`: the module a.b.c when it is one, else a.b."""
    if name and f"{module}.{name}" in all_modules():
        return f"{module}.{name}"
    return module


@cache
def our_imports(module: str) -> frozenset[str]:
    path = all_modules().get(module)
    if path is None:
        return frozenset()
    return frozenset(resolve(m, n) for m, n in imported_names(path) if m.split(".")[0] in OURS)


def room_of(module: str) -> str:
    rooms = [r for r in ROOMS if module == r or module.startswith(r + ".")]
    return max(rooms, key=len)


def allowed(target: str, room: str) -> bool:
    return any(target == a or target.startswith(a + ".") for a in ROOMS[room])


def reachable(start: str) -> dict[str, str]:
    """Every module of ours `start` reaches, each with the module that imports it."""
    seen, todo = {}, [start]
    while todo:
        module = todo.pop()
        for target in our_imports(module):
            if target not in seen and target != start:
                seen[target] = module
                todo.append(target)
    return seen


def test_every_module_is_in_a_room():
    for module in all_modules():
        assert room_of(module), f"{module} has no room in ROOMS"


def test_each_room_reaches_only_what_it_may_transitive_imports_included():
    failures = []
    for module in sorted(all_modules()):
        room = room_of(module)
        for target, via in reachable(module).items():
            if not allowed(target, room) and target.split(".")[0] in OURS and target in all_modules():
                failures.append(f"{module} (room {room}) reaches {target} (imported by {via})")
    assert not failures, "\n".join(failures)


def test_no_module_imports_a_private_name_of_another():
    failures = []
    for module, path in all_modules().items():
        for source, name in imported_names(path):
            if name and name.startswith("_") and not name.startswith("__") and source.split(".")[0] in OURS:
                failures.append(f"{module} imports {source}.{name}")
    assert not failures, "\n".join(failures)


def test_the_viewer_imports_the_bridge_only_through_the_contract():
    """The viewer reaches the bridge's pure modules (rules shared with the client) only by way of
    collector_api.contract, never by importing otel_bridge itself."""
    for module, path in all_modules().items():
        if room_of(module) == "viewer":
            for source, _ in imported_names(path):
                assert source.split(".")[0] != "otel_bridge", f"{module} imports {source}"


def test_forbidden_third_party_imports():
    for module, path in all_modules().items():
        banned = next((v for k, v in sorted(FORBIDDEN_THIRD_PARTY.items(), key=lambda kv: -len(kv[0]))
                       if module == k or module.startswith(k + ".")), ())
        for source, _ in imported_names(path):
            assert source.split(".")[0] not in banned, f"{module} imports {source}"


def test_pure_modules_import_no_io_library():
    io = ("psycopg", "psycopg_pool", "fastapi", "starlette", "httpx", "socket", "asyncio", "threading", "urllib")
    for module in PURE_MODULES:
        for source, _ in imported_names(all_modules()[module]):
            assert source.split(".")[0] not in io, f"{module} is pure but imports {source}"


def test_the_viewers_read_modules_reach_no_writer():
    """A read module imports no writer, nor a module that imports one (no re-export)."""
    for start in STORE_READS:
        for target, via in reachable(start).items():
            harmless = not target.startswith(STORE) or target in STORE_READS or not _writes(target)
            assert harmless, f"{start} reaches the writer {target} via {via}"


def _writes(module: str) -> bool:
    """A store module that changes data (INSERT/UPDATE/DELETE/DDL in its SQL)."""
    text = all_modules()[module].read_text(encoding="utf-8").upper()
    return any(word in text for word in ("INSERT INTO", "UPDATE ", "DELETE FROM", "CREATE TABLE", "ALTER TABLE"))


def test_bridge_pure_modules_import_no_opentelemetry():
    for module in BRIDGE_PURE:
        for source, _ in imported_names(all_modules()[module]):
            assert source.split(".")[0] != "opentelemetry", f"{module} imports OpenTelemetry"


def test_the_collector_validates_with_the_bridges_one_schema_file():
    from collector_api.contract import schema

    assert not (ROOT / "collector_api/schemas").exists(), "the schema has one file: otel_bridge/schemas/"
    bridge = (ROOT / "otel_bridge/schemas/workflow-log.v1.json").read_text(encoding="utf-8")
    assert schema.schema_text() == bridge
