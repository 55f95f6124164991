"""Imports only point down: cli -> server -> jobs -> engine. Checked by scanning the AST."""

from __future__ import annotations

import ast
from pathlib import Path

import tunesmith

PACKAGE = Path(tunesmith.__file__).parent
ENGINE = {
    "data",
    "models",
    "training",
    "evaluation",
    "inference",
    "settings",
    "errors",
    "tasks",
    "host_memory",
}
# What each layer may import from tunesmith (besides itself).
ALLOWED = {
    "engine": ENGINE,
    "jobs": ENGINE | {"jobs", "migrations"},
    "server": ENGINE | {"jobs", "server", "migrations"},
    "migrations": ENGINE | {"jobs", "migrations"},
}


def _layer(path: Path) -> str | None:
    top = path.relative_to(PACKAGE).parts[0].removesuffix(".py")
    if top in ENGINE:
        return "engine"
    return top if top in ALLOWED else None


def _tunesmith_imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.ImportFrom)
            and node.module
            and node.module.startswith("tunesmith.")
        ):
            found.append(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            found += [a.name.split(".")[1] for a in node.names if a.name.startswith("tunesmith.")]
    return found


def test_imports_only_point_down() -> None:
    violations = []
    for path in PACKAGE.rglob("*.py"):
        layer = _layer(path)
        if layer is None:
            continue
        for target in _tunesmith_imports(path):
            if target not in ALLOWED[layer]:
                violations.append(
                    f"{path.relative_to(PACKAGE)} ({layer}) imports tunesmith.{target}"
                )
    assert violations == []


def test_the_scan_sees_imports() -> None:
    # guards the test above against silently scanning nothing
    assert "settings" in _tunesmith_imports(PACKAGE / "training" / "run.py")
