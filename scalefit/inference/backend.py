"""nutpie without ArviZ's statistics and plotting stacks.

nutpie's `sample` module imports `arviz` at its top for two functions, `from_dict` and
`dict_to_dataset`, which live in `arviz_base`. The `arviz` package also imports arviz_stats
(scipy.stats) and arviz_plots (matplotlib), which would take most of the time of `import nutpie`,
a cost every fresh `scalefit fit` pays. While nutpie loads, `arviz` resolves to a stand-in that
serves arviz_base's names and imports the real package for anything else; afterwards
`import arviz` anywhere gets the real package as usual.
"""

from __future__ import annotations

import importlib
import sys
import types

__all__ = ["import_nutpie"]


class _ArvizStandIn(types.ModuleType):
    def __getattr__(self, name: str):
        if name.startswith("__"):  # module machinery (__path__, __spec__, ...): not a package
            raise AttributeError(name)
        base = importlib.import_module("arviz_base")
        if hasattr(base, name):
            return getattr(base, name)
        return getattr(importlib.import_module("arviz"), name)


def import_nutpie():
    """The `nutpie` module, imported without loading arviz_stats or arviz_plots.

    Returns
    -------
    module
        ``nutpie``; later imports of ``arviz`` get the real package.
    """
    if "nutpie.sample" not in sys.modules and "arviz" not in sys.modules:
        stand_in = _ArvizStandIn("arviz")
        sys.modules["arviz"] = stand_in
        try:
            import nutpie.sample  # noqa: F401
        finally:
            if sys.modules.get("arviz") is stand_in:
                del sys.modules["arviz"]
    import nutpie

    return nutpie
