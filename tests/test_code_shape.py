"""The shape of the code, checked on the source (ast, not at runtime): short functions, no import
cycles among our modules, and docs/architecture.md naming only modules that exist."""
from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("config", "otel_bridge", "collector_api", "viewer", "flusso_obs")
MAX_FUNCTION_LINES = 60


def _modules() -> dict[str, Path]:
    """Dotted module name -> file, for every module of our packages."""
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = path
    return found


def _is_flat_data(node: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    """A function whose body is one return of a literal table (list/dict/tuple of constants and
    calls with constant arguments) counts as data, not logic."""
    body = [stmt for stmt in node.body if not (isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant))]
    if len(body) != 1 or not isinstance(body[0], ast.Return):
        return False
    return not any(isinstance(n, (ast.If, ast.For, ast.While, ast.Lambda, ast.comprehension))
                   for n in ast.walk(body[0]))


def test_no_function_is_longer_than_the_limit():
    too_long = []
    for module, path in _modules().items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES and not _is_flat_data(node):
                    too_long.append(f"{module}.{node.name}: {lines} lines")
    assert not too_long, f"functions over {MAX_FUNCTION_LINES} lines: split them into named steps: {too_long}"


def _imported_modules(module: str, path: Path, known: dict[str, Path]) -> set[str]:
    """Our modules that `module` imports anywhere in its file (top level or inside functions)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            names.add(prefix)
            names.update(f"{prefix}.{alias.name}" for alias in node.names)  # `from pkg import module`
    found = set()
    for name in names:
        while name and name not in known:
            name = name.rpartition(".")[0]
        if name and name != module:
            found.add(name)
    return found


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    result = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    result.append(sorted(component))
    return result


def _import_graph() -> dict[str, set[str]]:
    known = _modules()
    graph = {module: _imported_modules(module, path, known) for module, path in known.items()}
    # A package's __init__ importing its own submodules is not a cycle with them.
    for module in graph:
        if known[module].name == "__init__.py":
            graph[module] = {m for m in graph[module] if not m.startswith(module + ".")}
    return graph


def test_no_import_cycle_among_our_modules():
    cycles = _cycles(_import_graph())
    assert not cycles, f"import cycles (counting imports inside functions): {cycles}"


def test_the_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def architecture_doc_names() -> set[str]:
    """Every module path or dotted name docs/architecture.md mentions: in `code` spans and anywhere
    in fenced diagrams (a fence's backticks must not pair with a span's)."""
    text = (ROOT / "docs/architecture.md").read_text(encoding="utf-8")
    fences = re.findall(r"^```[^\n]*\n(.*?)^```", text, re.M | re.S)
    prose = re.sub(r"^```[^\n]*\n.*?^```", "", text, flags=re.M | re.S)
    alternatives = "|".join(PACKAGES)
    pattern = re.compile(rf"(?<![\w./-])(?:{alternatives})(?:[./][\w-]+)*/?")
    spans = re.findall(r"`([^`\n]+)`", prose) + fences
    return {name.rstrip(".") for span in spans for name in pattern.findall(span)}


def test_architecture_doc_names_every_package_of_the_collector():
    named = architecture_doc_names()
    for init in (ROOT / "collector_api").rglob("__init__.py"):
        folder = init.parent.relative_to(ROOT).as_posix()
        assert any(n.rstrip("/") == folder or n.startswith(folder.replace("/", ".")) or n.startswith(folder + "/")
                   for n in named), f"docs/architecture.md does not name {folder}/"


def test_architecture_doc_names_only_modules_that_exist():
    named = architecture_doc_names()
    assert len(named) > 40, f"docs/architecture.md names too few modules to be the map: {sorted(named)}"
    missing = []
    mapped = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"].get("package-dir", {})
    for name in sorted(named):
        path = name.rstrip("/")
        for package, folder in mapped.items():  # flusso_obs.examples is the folder examples/
            path = folder + path[len(package):] if path == package or path.startswith(package + ".") else path
        if path.endswith(".py") or "/" in path:
            candidates = [ROOT / path, ROOT / (path + ".py")]
        else:
            dotted = path.split(".")
            candidates = [ROOT.joinpath(*dotted).with_suffix(".py"), ROOT.joinpath(*dotted)]
            # `module.function`: the module must exist and define the name.
            if len(dotted) > 1:
                module = ROOT.joinpath(*dotted[:-1]).with_suffix(".py")
                if module.exists() and re.search(rf"^\s*(?:async def|def|class)\s+{dotted[-1]}\b|^{dotted[-1]}\s*=",
                                                 module.read_text(encoding="utf-8"), re.M):
                    candidates.append(module)
        if not any(c.exists() for c in candidates):
            missing.append(name)
    assert not missing, f"docs/architecture.md names modules that do not exist: {missing}"
