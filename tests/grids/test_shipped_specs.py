"""Every shipped grid spec still loads, and expands to exactly the run ids it had when its runs were
trained (`fixtures/spec_run_ids.json`, recorded from the released runner): a changed id would
train a finished run again."""

import json
from pathlib import Path

import pytest

from scalefit.grids.spec import load_spec, sweep_runs

REPO = Path(__file__).resolve().parents[2]
RECORDED = json.loads((Path(__file__).parent / "fixtures" / "spec_run_ids.json").read_text())


def test_every_shipped_spec_is_recorded():
    assert {p.name for p in (REPO / "runners" / "grids").glob("*.toml")} == set(RECORDED)


@pytest.mark.parametrize("name", sorted(RECORDED))
def test_shipped_spec_expands_to_its_recorded_run_ids(name):
    spec = load_spec(REPO / "runners" / "grids" / name)
    ids = sorted({run.id for sweep in spec.sweeps for run in sweep_runs(spec, sweep)})
    assert ids == RECORDED[name]
    assert sorted(r.id for r in spec.runs) == ids
