"""The API reference names every library module (the CLI is documented as commands, not API), so
a new module cannot be left out of the docs."""

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_every_library_module_has_a_reference_entry():
    listed = {m for page in (REPO / "docs" / "reference").glob("*.md")
              for m in re.findall(r"^::: (scalefit[\w.]*)", page.read_text(), flags=re.M)}
    modules = {".".join(p.relative_to(REPO).with_suffix("").parts)
               for p in (REPO / "scalefit").rglob("*.py") if not p.name.startswith("__")}
    library = {m for m in modules if not m.startswith("scalefit.cli.")}
    assert library <= listed, sorted(library - listed)
