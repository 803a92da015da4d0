"""Setup shared by the notebooks: the repository root, the compile cache, the sampler settings.

Each notebook starts with::

    import sys
    from pathlib import Path

    sys.path.insert(0, str(next(p for p in (Path.cwd(), Path.cwd() / "notebooks") if (p / "nbsetup.py").exists())))
    from nbsetup import FAST, ROOT, settings

so it runs from the repository root or from ``notebooks/``. ``SCALEFIT_FAST=1`` asks for a quick
run (300 tune + 300 draws per chain): intervals are then noisier and a fit may report that it
did not converge.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["FAST", "ROOT", "settings"]

ROOT = Path(__file__).resolve().parents[1]
# The repository's own compile cache, shared with the scripts and tests (set before scalefit loads).
os.environ.setdefault("SCALEFIT_CACHE", str(ROOT / ".cache"))
FAST = bool(os.environ.get("SCALEFIT_FAST"))


def settings(**full):
    """Sampler settings: `full` (keyword arguments of SamplerSettings) normally, 300 + 300 when FAST."""
    from scalefit import SamplerSettings

    return SamplerSettings(draws=300, tune=300) if FAST else SamplerSettings(**full)
