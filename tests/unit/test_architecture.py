"""The layout is the architecture: dependencies point one way, and nothing hides an import.

The product: `connector` <- `event`, `lifecycle` <- `job` <- `cli` (the job drains the
lifecycle inbox and heals its NewStore integration, so it may import `lifecycle`; `lifecycle`
imports neither app). The sandbox's emulators stand alone; its
stack, demo and CLI wire the apps for a clone.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROJECT_PACKAGES = {"connector", "event", "job", "lifecycle", "cli", "sandbox", "bench", "tests"}
# What each product package may import from the project.
ALLOWED = {
    "connector": {"connector"},
    "event": {"connector", "event"},
    "lifecycle": {"connector", "lifecycle"},
    "job": {"connector", "lifecycle", "job"},
    "cli": {"connector", "event", "job", "lifecycle", "cli"},
}


def imports(path: Path) -> list[tuple[str, bool]]:
    """(top-level package imported, whether at module level) for each project import."""
    tree = ast.parse(path.read_text(), str(path))
    module_level = {id(node) for node in tree.body}
    found = []
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        for name in names:
            top = name.split(".")[0]
            if top in PROJECT_PACKAGES:
                found.append((top, id(node) in module_level))
    return found


def modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_product_packages_import_only_downwards(package: str) -> None:
    wrong = [
        f"{path.relative_to(ROOT)} imports {top}"
        for path in modules(package)
        for top, _ in imports(path)
        if top not in ALLOWED[package]
    ]
    assert wrong == []


@pytest.mark.parametrize("package", [*sorted(ALLOWED), "sandbox"])
def test_no_project_import_hides_inside_a_function(package: str) -> None:
    hidden = [
        f"{path.relative_to(ROOT)} imports {top} inside a function"
        for path in modules(package)
        for top, at_module_level in imports(path)
        if not at_module_level
    ]
    assert hidden == []


def test_the_emulators_do_not_import_the_product() -> None:
    """Only the sandbox's stack, demo and CLI wire the apps; the emulators stand alone."""
    wiring = {"stack.py", "demo.py", "cli.py", "__main__.py"}
    wrong = [
        f"{path.relative_to(ROOT)} imports {top}"
        for path in modules("sandbox")
        if path.name not in wiring or path.parent.name != "sandbox"
        for top, _ in imports(path)
        if top in ALLOWED
    ]
    assert wrong == []


def test_modules_stay_small() -> None:
    large = [
        f"{path.relative_to(ROOT)}: {lines} lines"
        for package in [*ALLOWED, "sandbox"]
        for path in modules(package)
        if (lines := len(path.read_text().splitlines())) > 900
    ]
    assert large == []
