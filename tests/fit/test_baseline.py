"""The two-stage point fit on a tokens-per-parameter ladder, where ln N and ln D are collinear up to
the rounding of D to whole tokens."""

import numpy as np
import pandas as pd

from scalefit import ModelConfig, load_runs
from scalefit.fit.baseline import fit_baseline


def _ladder(ratio=20.0, sizes=(1.1e7, 2.3e7, 4.7e7, 9.6e7), slope=-0.4, scatter=(0.03, -0.02, 0.01, -0.03)):
    rows = []
    for n, e in zip(sizes, scatter):
        d = float(round(ratio * n + 7))  # whole tokens, a little off the exact ratio
        opt = slope * np.log(n) + e  # optima scattered around the law, as measured ones are
        for x in opt + np.linspace(-1.5, 1.5, 7):
            rows.append({"n_params": n, "n_tokens": d, "lr": np.exp(x), "final_loss": 3.0 + 0.2 * (x - opt) ** 2})
    return load_runs(pd.DataFrame(rows))


def test_joint_baseline_on_a_ladder_extrapolates_along_it():
    table = _ladder()
    nd = fit_baseline(table.runs, table.cells, ModelConfig(axis="ND"))
    n_only = fit_baseline(table.runs, table.cells, ModelConfig(axis="N"))
    assert np.all(np.abs(nd.coef) < 100), nd.coef  # no blown-up coefficients from a near-singular design
    for n in (3e8, 1e9, 1e10):
        target = (n, 20.0 * n)
        assert abs(nd.predict_log_lr(*target) - n_only.predict_log_lr(*target)) < 1e-3


def test_joint_baseline_keeps_a_genuine_two_axis_design():
    """Independent N and D variation still gets both slopes (the cut-off only drops a tiny direction)."""
    rows = []
    for n in (1e7, 4e7, 1.6e8):
        for d in (2e8, 8e8, 3.2e9):
            opt = -0.4 * np.log(n) + 0.2 * np.log(d)
            for x in opt + np.linspace(-1.5, 1.5, 7):
                rows.append({"n_params": n, "n_tokens": d, "lr": np.exp(x), "final_loss": 3 + 0.2 * (x - opt) ** 2})
    table = load_runs(pd.DataFrame(rows))
    fit = fit_baseline(table.runs, table.cells, ModelConfig(axis="ND"))
    np.testing.assert_allclose(fit.coef[1:], [-0.4, 0.2], atol=1e-6)
