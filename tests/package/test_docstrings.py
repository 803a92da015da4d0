"""Every module says what it exports, every exported name has a docstring, and the headline API
has numpydoc sections (the API reference is generated from them). Read statically: no imports."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "scalefit"
MODULES = sorted(p for p in PACKAGE.rglob("*.py") if p.name != "__main__.py")
# name -> (module file, sections its docstring must have)
HEADLINE = {
    "load_runs": ("runs/table.py", ("Parameters", "Returns", "Examples")),
    "ModelConfig": ("model/config.py", ("Parameters", "Examples")),
    "SamplerSettings": ("inference/sampling.py", ("Parameters", "Examples")),
    "fit_runs": ("fit/core.py", ("Parameters", "Returns", "Examples")),
    "load_fit": ("fit/core.py", ("Parameters", "Returns")),
    "Fit": ("fit/core.py", ("Attributes", "Examples")),
    "Prediction": ("fit/predict.py", ("Attributes",)),
}


def _all(tree: ast.Module) -> list[str] | None:
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets):
            return [ast.literal_eval(e) for e in node.value.elts]
    return None


def _definitions(tree: ast.Module) -> dict[str, ast.AST]:
    return {n.name: n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}


def _imported(tree: ast.Module) -> set[str]:
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
    return names


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_module_has_docstring_and_all(path):
    tree = ast.parse(path.read_text())
    assert ast.get_docstring(tree), "module docstring missing"
    exported = _all(tree)
    assert exported is not None, "no __all__"
    defined = _definitions(tree)
    assigned = {t.id for n in tree.body if isinstance(n, (ast.Assign, ast.AnnAssign))
                for t in (n.targets if isinstance(n, ast.Assign) else [n.target]) if isinstance(t, ast.Name)}
    lazy = "__getattr__" in defined
    missing = [n for n in exported if n not in defined and n not in assigned and n not in _imported(tree) and not lazy]
    assert not missing, f"__all__ names not defined here: {missing}"
    undocumented = [n for n in exported if n in defined and not ast.get_docstring(defined[n])]
    assert not undocumented, f"exported without a docstring: {undocumented}"


@pytest.mark.parametrize("name", sorted(HEADLINE))
def test_headline_api_has_numpydoc_sections(name):
    file, sections = HEADLINE[name]
    tree = ast.parse((PACKAGE / file).read_text())
    doc = ast.get_docstring(_definitions(tree)[name]) or ""
    for section in sections:
        assert f"{section}\n{'-' * len(section)}" in doc, f"{name}: no {section} section"


def test_top_level_exports_the_headline_api():
    tree = ast.parse((PACKAGE / "__init__.py").read_text())
    assert set(HEADLINE) <= set(_all(tree))


def test_the_checks_catch_a_missing_docstring(tmp_path):
    """The static reading finds an undocumented export (so a pass above means something)."""
    tree = ast.parse('"""m."""\n__all__ = ["f"]\ndef f(x):\n    return x\n')
    assert _all(tree) == ["f"] and not ast.get_docstring(_definitions(tree)["f"])
