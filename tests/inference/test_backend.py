"""nutpie imported without ArviZ's plotting and statistics stacks, in a fresh process."""

import json
import subprocess
import sys

from sf_testing import REPO

CHILD = """
import json, sys
import numpy as np
from scalefit.inference.backend import import_nutpie

nutpie = import_nutpie()
heavy = [m for m in ("arviz_plots", "arviz_stats", "matplotlib", "scipy.stats") if m in sys.modules]
stand_in = sys.modules["nutpie.sample"].arviz
# what nutpie calls when it converts a trace
tree = stand_in.from_dict({"posterior": {"a": np.arange(20.0).reshape(2, 10)}})
converted = float(tree["posterior"]["a"].values.sum())
heavy_after = [m for m in ("arviz_plots", "matplotlib") if m in sys.modules]
import arviz
print(json.dumps({"heavy": heavy, "heavy_after_convert": heavy_after, "converted": converted,
                  "real_arviz_later": arviz is not stand_in and hasattr(arviz, "plot_dist"),
                  "other_names_served": callable(stand_in.ess)}))
"""


def test_nutpie_loads_without_arviz_plots_and_arviz_still_imports_in_full():
    out = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, cwd=REPO, check=True)
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["heavy"] == [] and got["heavy_after_convert"] == []
    assert got["converted"] == sum(range(20))
    assert got["real_arviz_later"]  # a later `import arviz` gets the package itself
    assert got["other_names_served"]  # a name outside arviz_base reaches the real package
