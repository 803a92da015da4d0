"""Session fixtures for the fit-side tests: one small synthetic table and one fit of it."""

import pytest

from sf_testing import FAST  # noqa: F401  (also points pytensor at the compile cache)


@pytest.fixture(scope="session")
def default_table():
    from scalefit.grid import load_runs
    from scalefit.synthetic import make_grid

    return load_runs(make_grid())


@pytest.fixture(scope="session")
def default_fit(default_table):
    from scalefit.config import ModelConfig
    from scalefit.fit import fit_runs

    return fit_runs(default_table, ModelConfig(axis="N"), FAST)
