"""How tests share code: through fixtures (a folder's conftest.py; tests/conftest.py for the
databases) or through one helpers module per folder (tests/helpers.py for what several folders
use, tests/<folder>/helpers.py for the rest). Never by importing a test module or a conftest:
that imports the other file's tests and fixtures into this one's namespace, and ties two files
that should change independently. Checked on the source (ast)."""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent


def _package(path: Path) -> list[str]:
    return list(path.relative_to(ROOT).parent.parts)


def imported_test_modules(path: Path, source: str | None = None) -> list[tuple[int, str]]:
    """(line, dotted name) of every module of the `tests` package that `path` (or `source`, as
    if it were the file `path`) imports."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8") if source is None else source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = _package(path)[: len(_package(path)) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            found.append((node.lineno, module))
            # `from tests.x import helpers`: the names may be modules themselves
            package_dir = ROOT.joinpath(*module.split("."))
            found += [(node.lineno, f"{module}.{alias.name}") for alias in node.names
                      if (package_dir / f"{alias.name}.py").exists() or (package_dir / alias.name).is_dir()]
    return [(line, name) for line, name in found if name == "tests" or name.startswith("tests.")]


def forbidden(name: str) -> bool:
    """A module of `tests` other than a helpers module or a package (`tests`, `tests.viewer`)."""
    if (ROOT.joinpath(*name.split("."))).is_dir():
        return False
    return name.rsplit(".", 1)[-1] != "helpers"


def test_test_modules_share_code_only_through_helpers_modules():
    bad = []
    for path in sorted(TESTS.rglob("*.py")):
        if "node_modules" in path.parts:
            continue
        for line, name in imported_test_modules(path):
            if forbidden(name):
                bad.append(f"{path.relative_to(ROOT)}:{line} imports {name}")
    assert not bad, ("move what is shared to a fixture or the folder's helpers.py "
                     "(tests/helpers.py if several folders use it):\n" + "\n".join(bad))


@pytest.mark.parametrize("source, expected", [
    ("from tests.cli.test_cli import cli", ["tests.cli.test_cli"]),
    ("from .conftest import login", ["tests.viewer.conftest"]),
    ("from .test_pages import login", ["tests.viewer.test_pages"]),
    ("from . import conftest", ["tests.viewer.conftest"]),
    ("from . import helpers", []),
    ("from .helpers import login", []),
    ("from tests.collector.helpers import make_log", []),
    ("from tests.helpers import LiveServer", []),
    ("import tests.conftest", ["tests.conftest"]),
])
def test_the_check_sees_each_kind_of_import(source, expected):
    as_if = TESTS / "viewer" / "test_probe.py"  # need not exist
    assert [name for _, name in imported_test_modules(as_if, source) if forbidden(name)] == expected


ISSUE_NUMBER = re.compile(r"\bissues?\s*#?\s*\d+", re.I)


def test_tests_name_the_concept_not_an_issue_number():
    """A test, its docstring and its comments say what is checked ("stored dates are bounded"),
    not the number of the ticket that asked for it: the number tells a later reader nothing."""
    found = [f"{path.relative_to(ROOT)}:{n}: {line.strip()}"
             for path in sorted(TESTS.rglob("*.py")) if "node_modules" not in path.parts
             for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if ISSUE_NUMBER.search(line)]
    assert not found, "\n".join(found)


def test_the_issue_number_check_sees_the_usual_spellings():
    for number in ("12 point 2", "#7", " 14)"):
        for word in ("Issue ", "issue", "issues "):
            assert ISSUE_NUMBER.search(word + number), word + number
    assert not ISSUE_NUMBER.search("the issue is the 2 slow tests")
