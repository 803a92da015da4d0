"""The package's import structure: floors import only the floors below them, no module cycles,
torch only under scalefit/train. Function-local imports count: they are still dependencies."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "scalefit"

# floor -> the floors it may import (besides itself)
ALLOWED = {
    "runs": set(),
    "grids": {"runs"},
    "model": {"runs"},
    "inference": {"model", "runs"},
    "fit": {"inference", "model", "runs"},
    "evaluation": {"fit", "inference", "model", "runs"},
    "design": {"fit", "inference", "model", "runs", "grids"},
    "report": {"evaluation", "design", "fit", "inference", "model", "runs"},
    "train": {"grids", "runs"},
    "cli": {"report", "evaluation", "design", "fit", "inference", "model", "runs", "grids"},
}
HEAVY = ("torch", "accelerate")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, package: str | None = None) -> set[str]:
    """Every module `path` imports, at any depth of its code (TYPE_CHECKING blocks excluded)."""
    tree = ast.parse(path.read_text())
    skip = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip |= {id(n) for stmt in node.body for n in ast.walk(stmt)}
    found = set()
    if package is None:
        package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            found.add(base)
            found |= {f"{base}.{a.name}" for a in node.names}
    return found


def graph() -> dict[str, set[str]]:
    files = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    return {name: {m for m in imports(p) if m in files} - {name} for name, p in files.items()}


def floor(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in ALLOWED else None


def test_every_subpackage_has_a_floor():
    subpackages = {p.parent.name for p in PACKAGE.glob("*/__init__.py")}
    assert subpackages == set(ALLOWED)


def test_floors_import_only_the_floors_below():
    bad = []
    for module, deps in graph().items():
        own = floor(module)
        if own is None:
            continue
        for dep in deps:
            other = floor(dep)
            if other is not None and other != own and other not in ALLOWED[own]:
                bad.append(f"{module} imports {dep}")
    assert not bad, "\n".join(sorted(bad))


def test_no_import_cycles():
    g = {m: {d for d in deps if d != "scalefit" and not m.startswith(d + ".")} for m, deps in graph().items()}
    seen, on_stack, cycles = set(), [], []

    def visit(m):
        if m in on_stack:
            cycles.append(on_stack[on_stack.index(m):] + [m])
            return
        if m in seen:
            return
        seen.add(m)
        on_stack.append(m)
        for d in sorted(g.get(m, ())):
            visit(d)
        on_stack.pop()

    for m in sorted(g):
        visit(m)
    assert not cycles, "\n".join(" -> ".join(c) for c in cycles)


def test_only_train_imports_torch():
    bad = [f"{module_name(p)} imports {m}" for p in PACKAGE.rglob("*.py") if p.parent.name != "train"
           for m in imports(p) if m.split(".")[0] in HEAVY]
    assert not bad, "\n".join(bad)


def test_top_level_stays_small():
    assert len(list(PACKAGE.glob("*.py"))) <= 8


@pytest.mark.parametrize("floor_name", sorted(ALLOWED))
def test_subpackages_are_small(floor_name):
    modules = [p for p in (PACKAGE / floor_name).glob("*.py") if not p.name.startswith("__")]
    assert 1 <= len(modules) <= 7, [p.name for p in modules]


def test_the_checker_sees_hidden_imports(tmp_path):
    """Function-local and relative imports are found (where a hidden upward import would sit);
    a TYPE_CHECKING block is not a run-time dependency."""
    f = tmp_path / "m.py"
    f.write_text("from typing import TYPE_CHECKING\n"
                 "if TYPE_CHECKING:\n    from scalefit.report import text\n"
                 "def g():\n    from scalefit.cli.main import main\n    import torch.nn\n"
                 "    from ..model import data\n")
    found = imports(f, package="scalefit.fit")
    assert {"scalefit.cli.main", "torch.nn", "scalefit.model.data"} <= found
    assert "scalefit.report.text" not in found
