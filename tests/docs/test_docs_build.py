"""The documentation site builds with `mkdocs build --strict`, and strict really is strict.

The build renders the API reference from the package's docstrings (mkdocstrings, numpy style), so
it also fails when a `::: scalefit.x.y` directive names an object that does not exist or a
docstring cannot be parsed. Skipped when the docs toolchain (the `dev` extra) is not installed.
"""

from __future__ import annotations

import ast
import html
import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "mkdocs.yml"

TOOLS = ("mkdocs", "material", "mkdocstrings", "mkdocstrings_handlers.python")
MISSING = [name for name in TOOLS if importlib.util.find_spec(name.split(".")[0]) is None
           or (name == "mkdocstrings_handlers.python" and importlib.util.find_spec(name) is None)]
pytestmark = pytest.mark.skipif(
    bool(MISSING), reason=f"docs toolchain not installed ({', '.join(MISSING)}): pip install -e '.[dev]'")

# Phrases about how the software was built, which user documentation must not contain.
# Development-history phrases that must not reach user docs (written with character classes so
# this file does not match itself).
HISTORY = re.compile(r"\b(stop|issue) [0-9]+|CI [r]ehearsal|lent [H]100|this [s]top|this [s]ession")


def build(root: Path, site: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(root / "mkdocs.yml"), "-d", str(site)],
        cwd=root, capture_output=True, text=True, timeout=600,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})


def docstring_first_line(module: Path, name: str) -> str | None:
    """First docstring line of top-level class or function `name` in `module`, read without importing."""
    for node in ast.parse(module.read_text()).body:
        if isinstance(node, (ast.ClassDef, ast.FunctionDef)) and node.name == name:
            doc = ast.get_docstring(node)
            return doc.strip().splitlines()[0] if doc else None
    raise AssertionError(f"{name} is not defined in {module}")


def text_of(html_file: Path) -> str:
    raw = re.sub(r"<[^>]+>", " ", html_file.read_text())
    return re.sub(r"\s+", " ", html.unescape(raw))


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site")
    result = build(REPO, out)
    assert result.returncode == 0, f"mkdocs build --strict failed:\n{result.stdout}\n{result.stderr}"
    return out


def test_strict_build_succeeds_and_renders_key_pages(site):
    for page in ("index.html", "getting-started/index.html", "model/index.html", "theory/index.html",
                 "runners/index.html", "calibration/index.html", "performance/index.html",
                 "data/index.html", "data/cpu_ladder_v1/index.html", "data/cpu_ladder_v2_h100/index.html",
                 "reference/index.html", "reference/fit/index.html", "reference/scalefit/index.html"):
        assert (site / page).is_file(), f"{page} missing from the built site"

    fit_page = (site / "reference" / "fit" / "index.html").read_text()
    assert 'id="scalefit.fit.core.Fit"' in fit_page, "the Fit class is not rendered in the API reference"
    assert 'id="scalefit.fit.core.fit_runs"' in fit_page
    fit_text = text_of(site / "reference" / "fit" / "index.html")
    core = REPO / "scalefit" / "fit" / "core.py"
    for name in ("Fit", "fit_runs"):
        first = docstring_first_line(core, name)
        if first:  # the rendered docstring, not just a heading
            words = " ".join(re.sub(r"[`*]", "", first).split()[:6])
            assert words in fit_text, f"{name}'s docstring ({words!r}) is not rendered"

    top = (site / "reference" / "scalefit" / "index.html").read_text()
    for name in ("load_runs", "ModelConfig", "SamplerSettings", "fit_runs", "Fit", "Prediction"):
        assert f'id="scalefit.{name}"' in top or f'.{name}"' in top, f"top-level {name} not documented"


def test_a_broken_link_fails_the_strict_build(tmp_path):
    """Copy the site's sources, add one link to a page that does not exist: strict must refuse it."""
    root = tmp_path / "src"
    root.mkdir()
    shutil.copy(CONFIG, root / "mkdocs.yml")
    shutil.copytree(REPO / "docs", root / "docs")
    (root / "scalefit").symlink_to(REPO / "scalefit", target_is_directory=True)  # the reference still resolves
    page = root / "docs" / "theory.md"
    page.write_text(page.read_text() + "\n\nSee [nowhere](no-such-page-xyz.md).\n")
    result = build(root, tmp_path / "site")
    assert result.returncode != 0, "a broken link did not fail mkdocs build --strict"
    assert "no-such-page-xyz.md" in result.stdout + result.stderr


def test_docs_describe_the_software_not_its_history():
    files = [CONFIG, *sorted((REPO / "docs").rglob("*.md")), *sorted((REPO / "data").glob("*/DATA_CARD.md"))]
    hits = [f"{p.relative_to(REPO)}:{i}: {line.strip()}" for p in files
            for i, line in enumerate(p.read_text().splitlines(), 1) if HISTORY.search(line)]
    assert not hits, "history words in user docs:\n" + "\n".join(hits)
    outside = [f"{p.relative_to(REPO)}:{i}" for p in files
               for i, line in enumerate(p.read_text().splitlines(), 1)
               if "../shared" in line or "THEORY.md" in line or "DESIGN.md" in line]
    assert not outside, "references to files outside the repository:\n" + "\n".join(outside)
