"""A fit file written by an earlier release (format scalefit-fit/1, flat package layout) still
loads, and predicts exactly what that release predicted from it."""

import json
from pathlib import Path

import numpy as np

from scalefit import Fit, load_fit

FIXTURES = Path(__file__).parent / "fixtures"
OLD = FIXTURES / "fit_format1_synthetic.nc"  # synthetic default grid, axis N, 2 x 150 draws
EXPECTED = json.loads((FIXTURES / "fit_format1_synthetic.json").read_text())


def test_old_fit_file_predicts_what_it_predicted():
    fit = Fit.load(OLD)
    p = fit.predict(n_params=1e9, n_tokens=2e10, prob=0.9)
    for name, value in EXPECTED.items():
        np.testing.assert_allclose(getattr(p, name), value, rtol=1e-10, err_msg=name)


def test_old_fit_file_rebuilds_its_model_data():
    fit = load_fit(OLD)
    assert fit.data is not None and fit.data.n_cells == len(fit.table.cells)
    # the rebuilt arrays are the ones the file stored
    stored = fit.tree["constant_data"].to_dataset()
    np.testing.assert_array_equal(stored["x_obs"].values, fit.data.arrays()["x_obs"])


def test_old_fit_file_round_trips(tmp_path):
    fit = Fit.load(OLD)
    fit.save(tmp_path / "again.nc")
    again = Fit.load(tmp_path / "again.nc")
    a, b = fit.predict(n_params=3e8, n_tokens=6e9), again.predict(n_params=3e8, n_tokens=6e9)
    assert (a.lr_median, a.lr_low, a.lr_high) == (b.lr_median, b.lr_low, b.lr_high)
