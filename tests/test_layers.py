"""Import layers, checked on the source text: serving and benchmarks load runs through
:mod:`fave.rundir` (and splits, devices from data and config), never through training."""

from __future__ import annotations

import ast
from pathlib import Path

import fave

PACKAGE = Path(fave.__file__).parent


def imported_modules(path: Path) -> set[str]:
    """Every module a file imports, at any depth (lazy imports inside functions too)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the file's package
                base = path.relative_to(PACKAGE.parent).with_suffix("").parts[: -node.level]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            names.add(module)
            names.update(f"{module}.{a.name}" for a in node.names)  # `from fave import training`
    return names


def test_the_walk_sees_lazy_and_from_imports() -> None:
    f = PACKAGE / "benchmark" / "cli.py"
    assert {"fave.rundir", "fave.data.load"} <= imported_modules(f)  # imported inside functions


def test_serving_and_benchmark_do_not_import_training() -> None:
    offenders = {
        f"{path.relative_to(PACKAGE)}: {name}"
        for part in ("serving", "benchmark")
        for path in sorted((PACKAGE / part).rglob("*.py"))
        for name in imported_modules(path)
        if name == "fave.training" or name.startswith("fave.training.")
    }
    assert not offenders, offenders
