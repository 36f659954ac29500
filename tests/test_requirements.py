"""requirements.txt holds what the running code imports, requirements-dev.txt adds what only the tests import;
both pin every package they pull in, at the version these tests run with."""

import ast
from importlib import metadata
from pathlib import Path
import re
import sys
import tomllib

from packaging.requirements import Requirement
import pytest

ROOT = Path(__file__).resolve().parents[1]
RUNTIME_CODE = ["mittis", "messaging", "webhooks", "billing", "manage.py"]


def normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def local_project(folder: str) -> tuple[str, str]:
    """(name, version) of a project of this repository that a requirements file installs with `-e`."""
    project = tomllib.loads((ROOT / folder / "pyproject.toml").read_text())["project"]
    version_file = ROOT / folder / "src" / normal(project["name"]).replace("-", "_") / "_version.py"
    return normal(project["name"]), re.search(r'__version__ = "([^"]+)"', version_file.read_text()).group(1)


def pins(filename: str) -> dict[str, str]:
    """name: version, of this file alone (not of the files it includes with -r); a project of this repository
    (`-e ./sdk/python`) at its own version."""
    found = {}
    for line in (ROOT / filename).read_text().splitlines():
        line = line.split("#")[0].strip()
        if line.startswith("-e "):
            name, version = local_project(line.removeprefix("-e ").strip())
            found[name] = version
        elif line and not line.startswith("-r"):
            name, version = line.split("==")
            found[normal(name)] = version
    return found


RUNTIME, DEV = pins("requirements.txt"), pins("requirements-dev.txt")


def imported_distributions(paths: list[Path]) -> set[str]:
    owners = metadata.packages_distributions()
    found = set()
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                modules = [node.module]
            else:
                continue
            for module in modules:
                top = module.split(".")[0]
                if top not in sys.stdlib_module_names:
                    found |= {normal(owner) for owner in owners.get(top, [])}
    return found


def python_files(*names: str) -> list[Path]:
    return [path for name in names for path in ([ROOT / name] if name.endswith(".py") else (ROOT / name).rglob("*.py"))]


def requires(name: str, extras: frozenset = frozenset()) -> set[tuple[str, frozenset]]:
    """What an installed distribution pulls in here (markers evaluated), with the extras asked of each."""
    found = set()
    for text in metadata.distribution(name).requires or []:
        requirement = Requirement(text)
        if requirement.marker and not any(requirement.marker.evaluate({"extra": extra}) for extra in {"", *extras}):
            continue
        found.add((normal(requirement.name), frozenset(requirement.extras)))
    return found


def test_the_running_code_imports_only_runtime_packages():
    imported = imported_distributions(python_files(*RUNTIME_CODE))

    assert imported - set(RUNTIME) == set()


def test_the_tests_import_only_pinned_packages():
    assert imported_distributions(python_files("tests")) - set(RUNTIME) - set(DEV) == set()


def test_no_package_is_pinned_twice():
    assert set(RUNTIME) & set(DEV) == set()


@pytest.mark.parametrize("pinned", [RUNTIME, RUNTIME | DEV], ids=["runtime", "development"])
def test_every_dependency_is_pinned_with_what_it_pulls_in(pinned):
    for name in pinned:
        for dependency, extras in requires(name):
            assert dependency in pinned, f"{name} needs {dependency}"
            for extra_dependency, _ in requires(dependency, extras) - requires(dependency):
                assert extra_dependency in pinned, f"{name} needs {dependency}{sorted(extras)}: {extra_dependency}"


def test_the_pins_are_the_versions_installed():
    for name, version in (RUNTIME | DEV).items():
        assert metadata.version(name) == version, name
