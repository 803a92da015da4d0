"""Constants and helpers shared by the fit-side tests (a uniquely named module: tests/train has
its own conftest, so `from sf_testing import ...` would be ambiguous)."""

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"

os.environ.setdefault("SCALEFIT_CACHE", str(REPO / ".cache"))
from scalefit.inference.sampling import SamplerSettings  # noqa: E402

# Small but real sampling: enough draws for the recovery assertions, cheap on 2 cores.
FAST = SamplerSettings(draws=1000, tune=1000, chains=2, seed=1)


def shared_csv(name: str) -> Path:
    path = SHARED_DATA / name / "runs.csv"
    if not path.exists():
        pytest.skip(f"{path} absent (public data lives outside the project)")
    return path


def assert_runs_table_matches_result_files(grid, runs, columns) -> None:
    """A shipped runs.csv is regenerated from the result files (``runs/*/result.json``, or
    ``cells/*/`` in an old-layout grid), never edited by hand."""
    import numpy as np

    from scalefit.runs.harvest import collect_runs
    from scalefit.runs.schema import RUN_ID, runs_root

    fresh = collect_runs(grid)
    assert len(fresh) == len(runs)
    a, b = runs.sort_values(RUN_ID).reset_index(drop=True), fresh.sort_values(RUN_ID).reset_index(drop=True)
    for col in columns:
        if a[col].dtype.kind in "fi":
            np.testing.assert_allclose(a[col].to_numpy(float), b[col].to_numpy(float), rtol=1e-12, err_msg=col)
        else:
            assert (a[col].astype(str) == b[col].astype(str)).all(), col
    finished = {p.parent.name for p in runs_root(grid).glob("*/result.json")}
    assert finished == set(runs[RUN_ID])
