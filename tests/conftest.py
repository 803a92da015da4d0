"""Fixtures shared by the test folders: a small synthetic table and one fit of it (fit side), and
grid specs written on the fly (runner side)."""

from pathlib import Path

import pytest
from runner_helpers import BASE, write_grid
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


@pytest.fixture
def grid_file(tmp_path):
    """Write a grid spec (default: a tiny micro-ladder grid) whose ladder path is absolute."""
    def make(body: str = BASE, name: str = "grid.toml") -> Path:
        return write_grid(tmp_path / name, body)
    return make
