"""Packaging promises: the light client pulls only OpenTelemetry, every dependency has a lower
bound, and every data file the code reads at run time is shipped in the wheel."""
import fnmatch
import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_light_client_depends_on_opentelemetry_only():
    names = {re.split(r"[<>=\[ ]", d)[0] for d in PROJECT["project"]["dependencies"]}
    assert names == {"opentelemetry-api", "opentelemetry-sdk", "opentelemetry-exporter-otlp-proto-http",
                     "pydantic-settings"}


def test_every_dependency_has_a_lower_bound():
    deps = PROJECT["project"]["dependencies"] + [d for extra in PROJECT["project"]["optional-dependencies"].values()
                                                 for d in extra]
    for dep in deps:
        assert ">=" in dep, f"{dep} has no lower bound"


def test_every_package_file_is_shipped():
    setup = PROJECT["tool"]["setuptools"]
    mapping = setup.get("package-dir", {})
    for package in setup["packages"]:
        folder = ROOT / mapping.get(package, package.replace(".", "/"))
        assert folder.is_dir(), f"{package} is listed but {folder} does not exist"
        globs = setup["package-data"].get(package, [])
        for path in folder.iterdir():
            if path.is_file() and path.suffix not in (".py", ".pyc"):
                assert any(fnmatch.fnmatch(path.name, g) for g in globs), f"{path} is not in package-data"


def test_every_package_is_listed():
    """A new sub-package (a folder with __init__.py) is named in pyproject's packages, so the wheel has it."""
    listed = set(PROJECT["tool"]["setuptools"]["packages"])
    for top in ("config", "otel_bridge", "collector_api", "viewer", "flusso_obs"):
        for init in (ROOT / top).rglob("__init__.py"):
            package = ".".join(init.parent.relative_to(ROOT).parts)
            assert package in listed, f"{package} is not in pyproject.toml's [tool.setuptools] packages"
