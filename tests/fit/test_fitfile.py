import numpy as np
import pytest

from scalefit.fit.core import Fit


def test_save_load_predict_identical(default_fit, tmp_path):
    path = tmp_path / "fit.nc"
    default_fit.save(path)
    loaded = Fit.load(path)
    assert loaded.config == default_fit.config
    assert loaded.std == default_fit.std
    assert loaded.held_out == default_fit.held_out
    assert loaded.convergence == default_fit.convergence
    np.testing.assert_array_equal(loaded.posterior["log_lr_opt"].values, default_fit.posterior["log_lr_opt"].values)
    np.testing.assert_array_equal(loaded.table.runs["cell"].to_numpy(), default_fit.table.runs["cell"].to_numpy())
    assert loaded.table.runs["optimizer"].tolist() == default_fit.table.runs["optimizer"].tolist()
    for target in [(128e6, 4e8), (3e6, 2e8)]:
        assert loaded.predict(*target, prob=0.8).to_dict() == default_fit.predict(*target, prob=0.8).to_dict()
    groups = set(loaded.tree.children)
    assert {"posterior", "sample_stats", "observed_data", "constant_data", "runs"} <= groups


def test_load_rejects_foreign_netcdf(tmp_path):
    import xarray as xr

    path = tmp_path / "other.nc"
    xr.DataTree(xr.Dataset({"a": ("x", [1.0])})).to_netcdf(path, engine="h5netcdf")
    with pytest.raises(ValueError, match="not a scalefit fit file"):
        Fit.load(path)
    with pytest.raises(FileNotFoundError, match="missing.nc"):
        Fit.load(tmp_path / "missing.nc")
