"""Fixtures for the runner tests."""
from pathlib import Path

import pytest

from runner_helpers import BASE, write_grid


@pytest.fixture
def grid_file(tmp_path):
    def make(body: str = BASE, name: str = "grid.toml") -> Path:
        return write_grid(tmp_path / name, body)
    return make
