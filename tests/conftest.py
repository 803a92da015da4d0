"""Session fixtures for the fit-side tests: one small synthetic table and one fit of it."""

import pytest

from sf_testing import FAST  # noqa: F401  (also points pytensor at the compile cache)


@pytest.fixture(scope="session")
def default_table():
    from scalefit.runs.table import load_runs
    from scalefit.runs.synthetic import make_grid

    return load_runs(make_grid())


@pytest.fixture(scope="session")
def default_fit(default_table):
    from scalefit.model.config import ModelConfig
    from scalefit.fit.core import fit_runs

    return fit_runs(default_table, ModelConfig(axis="N"), FAST)
