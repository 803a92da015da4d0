"""The shipped grid's eff_lr is step-weighted: it equals an independent recomputation from each
run's stored trajectory, and the recompute keeps the v1 values in their own, named columns."""

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from sf_testing import REPO
from scripts.experiments.recompute_eff_lr import recompute_dir
from scalefit.grids.schedule import lr_multiplier

GRID = REPO / "data" / "cpu_ladder_v1"


def _nearest_probe_eff_lr(run_dir, steps):
    """Independent of scalefit.train.probe: every step t takes theta/s of its nearest probed step
    (each probe weighted by the steps it stands for), with the exact schedule s(t); geometric
    mean over hidden matrices."""
    tr = pd.read_parquet(run_dir / "trajectory.parquet")
    sch = json.loads((run_dir / "config.json").read_text())["config"]["schedule"]
    h = tr[(tr.group == "hidden") & (tr.lr_mult > 1e-3)]  # s = 0: no step, theta/s undefined
    per = h.groupby("step").agg(theta=("theta", lambda x: float(np.exp(np.log(x).mean()))),
                                s=("lr_mult", "first"))
    probed = per.index.to_numpy()
    t = np.arange(steps)
    nearest = probed[np.abs(t[:, None] - probed[None, :]).argmin(axis=1)]
    q = (per.theta / per.s).loc[nearest].to_numpy()
    s = np.array([lr_multiplier(i, steps, **sch) for i in t])
    return float(q[s >= 0.1].mean()), float(np.sum(q * s))


@pytest.fixture(scope="module")
def runs():
    return pd.read_csv(GRID / "runs.csv")


def test_shipped_eff_lr_equals_a_step_weighted_recomputation(runs):
    ratios, sums = [], []
    for _, r in runs.iterrows():
        d = GRID / "cells" / r["run_id"]  # the shipped grid keeps the old layout
        if not (d / "trajectory.parquet").exists():
            continue
        eff, theta_sum = _nearest_probe_eff_lr(d, int(r["steps"]))
        ratios.append(r["eff_lr"] / eff)
        sums.append(r["theta_sum"] / theta_sum)
    assert len(ratios) == len(runs)  # every shipped run has a trajectory
    assert abs(np.median(ratios) - 1) < 0.10
    assert abs(np.median(sums) - 1) < 0.10
    # not just the median: nearest-probe and linear weighting agree run by run
    assert np.max(np.abs(np.log(ratios))) < np.log(1.02)  # measured 0.3%
    assert (runs["eff_lr_method"] == "interpolated").all()


def test_v1_probe_mean_is_kept_beside_and_was_biased_up_for_adamw(runs):
    aw = runs[runs["optimizer"] == "adamw"]
    ratio = aw["eff_lr_probe_mean_v1"] / aw["eff_lr"]
    assert ratio.min() > 1.2 and 1.5 < ratio.median() < 2.5  # the dense early probes weighed ~10x
    ah = runs[runs["optimizer"] == "adamh"]  # no transient: the v1 bias was small
    assert (ah["eff_lr_probe_mean_v1"] / ah["eff_lr"]).median() < 1.05
    assert (runs["theta_sum_probe_mean_v1"] > 0).all()


def test_recompute_is_idempotent_and_keeps_the_first_v1_value(tmp_path):
    ids = sorted(p.name for p in (GRID / "cells").iterdir())[:2]
    for i in ids:
        shutil.copytree(GRID / "cells" / i, tmp_path / "cells" / i)
    first = recompute_dir(tmp_path, tmp_path / "runs.csv")
    second = recompute_dir(tmp_path, tmp_path / "runs.csv")
    np.testing.assert_allclose(first["eff_lr"], second["eff_lr"], rtol=1e-12)
    for i in ids:
        shipped = json.loads((GRID / "cells" / i / "result.json").read_text())
        now = json.loads((tmp_path / "cells" / i / "result.json").read_text())
        assert now["eff_lr_probe_mean_v1"] == shipped["eff_lr_probe_mean_v1"]
        assert now["eff_lr"] == pytest.approx(shipped["eff_lr"], rel=1e-12)
    assert len(pd.read_csv(tmp_path / "runs.csv")) == 2
