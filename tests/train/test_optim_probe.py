"""AdamH stays on its sphere with relative step = LR; the probe and eff_lr are what they claim
(every step counted once, whatever the probe cadence); a huge LR is recorded as diverged."""
import copy
import json
import math

import numpy as np
import pandas as pd
import pytest

torch = pytest.importorskip("torch")

from scalefit.train.run import RunContext, training_function  # noqa: E402
from scalefit.train.corpus import load_corpus  # noqa: E402
from scalefit.train.gpt import GPT, GPTConfig  # noqa: E402
from scalefit.train.optim import build_optimizer  # noqa: E402
from scalefit.train.probe import STEP_GROUP, WeightProbe, per_probe, summarize  # noqa: E402
from scalefit.grids.schedule import lr_multiplier  # noqa: E402
from scalefit.grids.spec import load_spec  # noqa: E402

OPT = dict(betas=[0.9, 0.95], eps=1e-8, weight_decay=0.0)


def _train(model, opt, probe, steps, lr_mults):
    c = load_corpus({"kind": "stdlib"})
    for t in range(steps):
        for g in opt.param_groups:
            g["lr"] = g["base_lr"] * lr_mults[t]
        x, y = (torch.from_numpy(a) for a in c.batch(t, 0, 8, model.config.seq_len))
        _, loss = model(x, y)
        loss.backward()
        probe.before()
        opt.step()
        probe.after(t, lr_mults[t])
        opt.zero_grad(set_to_none=True)
    return pd.DataFrame(probe.records)


@pytest.mark.parametrize("tie", [True, False])
def test_adamh_keeps_norms_and_relative_step_equals_lr(tie):
    torch.manual_seed(0)
    model = GPT(GPTConfig(d_model=32, n_layer=2, n_head=2, seq_len=32, tie_embeddings=tie))
    lr = 0.02
    opt = build_optimizer(model, dict(OPT, optimizer="adamh", lr=lr, adam_lr=3e-3))
    covered = {n for n, _ in model.hidden_matrices()} | (set() if tie else {"lm_head.weight"})
    hyper = [g for g in opt.param_groups if g["hyper"]][0]["params"]
    assert {id(p) for p in hyper} == {id(p) for n, p in model.named_parameters() if n in covered}
    init = {n: float(p.detach().double().norm()) for n, p in model.named_parameters()}
    mults = [lr_multiplier(t, 30, "cosine", warmup=3, min_ratio=0.1) for t in range(30)]
    tr = _train(model, opt, WeightProbe(model, every=1), 30, mults)
    for n, p in model.named_parameters():
        if n in covered:
            assert float(p.double().norm()) == pytest.approx(init[n], rel=1e-5), n
    assert float(model.wte.weight.detach().norm()) != pytest.approx(init["wte.weight"], rel=1e-5)  # plain Adam
    cov = tr[tr.matrix.isin(covered)]
    ratio = cov.rel_update / (lr * cov.lr_mult)
    theta_ratio = cov.theta / (lr * cov.lr_mult)
    # the step before projection is exactly lr * R; after it the chord is lr * sin(angle(W, u)) ~ lr
    assert ratio.max() <= 1 + 1e-3 and ratio.min() > 0.8
    assert ratio.mean() == pytest.approx(1.0, abs=0.05)
    assert theta_ratio.mean() == pytest.approx(1.0, abs=0.05)


def test_probe_angle_matches_independent_fp64_recomputation():
    torch.manual_seed(1)
    model = GPT(GPTConfig(d_model=32, n_layer=2, n_head=2, seq_len=32))
    opt = build_optimizer(model, dict(OPT, optimizer="adamw", lr=1e-3, weight_decay=0.1))
    probe = WeightProbe(model, every=1)
    before = {n: p.detach().double().clone() for n, p in model.hidden_matrices()}
    tr = _train(model, opt, probe, 1, [1.0])
    for n, p in model.hidden_matrices():
        w0, w1 = before[n], p.detach().double()
        cos = float((w0 * w1).sum() / (w0.norm() * w1.norm()))
        row = tr[tr.matrix == n].iloc[0]
        assert row.theta == pytest.approx(math.acos(cos), rel=1e-6)
        assert row.rel_update == pytest.approx(float((w1 - w0).norm() / w0.norm()), rel=1e-9)
        assert row.norm == pytest.approx(float(w1.norm()), rel=1e-12)
    assert set(tr.group) == {"hidden", "embedding", STEP_GROUP}
    # the cheap per-step row (fp32 work) is the geometric mean of the fp64 per-matrix angles
    hid = tr[tr.group == "hidden"]
    step_row = tr[tr.group == STEP_GROUP].iloc[0]
    assert step_row.theta == pytest.approx(float(np.exp(np.log(hid.theta).mean())), rel=1e-5)
    assert step_row.rel_update == pytest.approx(float(np.exp(np.log(hid.rel_update).mean())), rel=1e-5)


def _micro_run(optimizer="adamw", lr=3e-3):
    from runner_helpers import REPO

    spec = load_spec(REPO / "runners/grids/micro.toml")
    c = [c for c in spec.runs if c.config["optimizer"] == optimizer and c.meta["size"] == "u32"][0]
    c = copy.deepcopy(c.as_dict())
    c["config"]["lr"] = lr
    return c


def _run(tmp_path, run, every, dense_until=0):
    run = copy.deepcopy(run)
    run["run"].update(probe_every=every, probe_dense_until=dense_until)
    d = tmp_path / f"every{every}"
    d.mkdir()
    res = training_function(run, RunContext(run_dir=d))
    return res, pd.read_parquet(d / "trajectory.parquet")


def test_adamw_eff_lr_is_the_step_weighted_mean_of_the_per_step_angle(tmp_path):
    torch.set_num_threads(1)
    run = _micro_run("adamw", 3e-3)
    res, tr = _run(tmp_path, run, every=10, dense_until=5)
    steps = run["config"]["steps"]
    assert res["status"] == "ok" and res["steps"] == steps
    per_step = tr[tr.group == STEP_GROUP].set_index("step")
    assert list(per_step.index) == list(range(steps))  # every step once, however sparse the cadence
    sch = run["config"]["schedule"]
    for step, s in per_step.lr_mult.items():  # logged s(t) is the schedule's
        assert s == pytest.approx(lr_multiplier(step, steps, **sch))
    q = per_step.theta / per_step.lr_mult
    assert res["eff_lr"] == pytest.approx(float(q[per_step.lr_mult >= 0.1].mean()), rel=1e-12)
    assert res["theta_sum"] == pytest.approx(float(per_step.theta.sum()), rel=1e-12)
    assert res["eff_lr_whole_run"] == pytest.approx(float(per_step.theta.mean()), rel=1e-12)
    # cadence rows still hold every hidden matrix, and agree with the per-step rows there
    cad = per_probe(tr)
    assert list(cad["step"]) == [0, 1, 2, 3, 4] + list(range(10, steps, 10)) + [steps - 1]
    np.testing.assert_allclose(per_step.theta.loc[cad["step"]], cad["theta"], rtol=1e-5)
    on_disk = json.loads((tmp_path / "every10" / "result.json").read_text())
    assert on_disk["eff_lr"] == pytest.approx(res["eff_lr"], rel=1e-12)
    # the theory's ballpark for AdamW's early angle: c * lr / rho_0 with c ~ 0.2, rho_0 ~ 0.02
    assert 0.1 * 3e-3 / 0.02 < res["eff_lr"] < 10 * 3e-3 / 0.02


def test_eff_lr_does_not_depend_on_the_probe_cadence(tmp_path):
    """The same run probed every step and every 25 steps: same training, eff_lr within 2%. A plain
    mean over probed steps (which over-weights the densely probed start) fails this on the same
    two trajectories."""
    torch.set_num_threads(1)
    run = _micro_run("adamw", 1e-2)
    dense, tr_dense = _run(tmp_path, run, every=1)
    sparse, tr_sparse = _run(tmp_path, run, every=25)
    assert dense["final_loss"] == sparse["final_loss"]  # probing does not touch training
    assert tr_dense.step.nunique() == run["config"]["steps"] > 4 * tr_sparse[tr_sparse.group == "hidden"].step.nunique()
    for key in ("eff_lr", "theta_sum", "eff_lr_stable", "rel_update_eff"):
        assert sparse[key] == pytest.approx(dense[key], rel=0.02), key

    def probe_mean(tr):  # the plain mean over probed steps, for contrast
        p = per_probe(tr)
        ok = p["s"] >= 0.1
        return float(np.mean(p["theta"][ok] / p["s"][ok]))

    assert abs(probe_mean(tr_sparse) / probe_mean(tr_dense) - 1) > 0.02


def test_interpolated_aggregates_from_cadence_rows_match_every_step_ones(tmp_path):
    """Old trajectories have cadence rows only: the interpolated estimate used to recompute them
    is close to the every-step value at the default cadence (20 dense, then every 10), and far
    closer than a plain mean over probed steps. The micro model's 32-wide matrices make the
    per-step angle noisy, hence the loose tolerance; wider matrices agree more closely."""
    torch.set_num_threads(1)
    run = _micro_run("adamw", 3e-3)
    res, tr = _run(tmp_path, run, every=10, dense_until=20)
    cadence_only = tr[tr.group != STEP_GROUP]
    est = summarize(cadence_only, steps=res["steps"], lr=res["lr"], weight_decay=0.1, optimizer="adamw")
    assert est["eff_lr"] == pytest.approx(res["eff_lr"], rel=0.08)
    assert est["theta_sum"] == pytest.approx(res["theta_sum"], rel=0.08)
    p = per_probe(cadence_only)
    ok = p["s"] >= 0.1
    plain = float(np.mean(p["theta"][ok] / p["s"][ok]))
    assert abs(plain / res["eff_lr"] - 1) > 3 * abs(est["eff_lr"] / res["eff_lr"] - 1)


def test_huge_lr_is_recorded_as_diverged(tmp_path):
    run = _micro_run("adamw", 100.0)
    res = training_function(run, RunContext(run_dir=tmp_path))
    assert res["status"] == "diverged"
    assert res["steps"] < run["config"]["steps"]
    on_disk = json.loads((tmp_path / "result.json").read_text())  # valid JSON even with NaN loss
    assert on_disk["status"] == "diverged" and on_disk["steps"] == res["steps"]
    assert on_disk["final_loss"] is None or not np.isfinite(on_disk["final_loss"]) or \
        on_disk["final_loss"] > 2 * on_disk["first_loss"]
