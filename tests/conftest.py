"""Shared test setup: a compile cache CI can keep, the optional public data, one small fit."""

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"

os.environ.setdefault("SCALEFIT_CACHE", str(REPO / ".cache"))
from scalefit.sampling import SamplerSettings, use_compile_cache  # noqa: E402

use_compile_cache()

# Small but real sampling: enough draws for the recovery assertions, cheap on 2 cores.
FAST = SamplerSettings(draws=1000, tune=1000, chains=2, seed=1)


def shared_csv(name: str) -> Path:
    path = SHARED_DATA / name / "runs.csv"
    if not path.exists():
        pytest.skip(f"{path} absent (public data lives outside the project)")
    return path


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
