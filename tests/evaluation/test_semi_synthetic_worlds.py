"""The semi-synthetic world generator of benchmarks/semi_synthetic.py: its law lies outside the
model's family, its targets sit where they are said to, its valley templates are sane and its
sweeps bracket the true optimum. NumPy only: nothing is fitted."""

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def ss():
    path = REPO / "benchmarks" / "semi_synthetic.py"
    spec = importlib.util.spec_from_file_location("semi_synthetic_benchmark", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def templates(ss):
    lib, note = ss.template_library("bundled")
    assert "cpu_ladder_v1" in note
    return lib


@pytest.fixture(scope="module")
def worlds(ss, templates):
    return [ss.draw_world(i, templates, seed=3, max_cells=6) for i in range(8)]


def _law_derivatives(law, log_n, log_d, h=1e-3):
    f = lambda a, b: float(law.log_lr_opt(np.exp(a), np.exp(b)))  # noqa: E731
    cross = (f(log_n + h, log_d + h) - f(log_n + h, log_d - h) - f(log_n - h, log_d + h)
             + f(log_n - h, log_d - h)) / (4 * h * h)
    return cross


def _ladder_curvature(world, n, h=1e-2):
    """d^2 ln LR* / d (ln N)^2 along the world's fixed tokens-per-parameter ladder."""
    r = world.tokens_per_param
    f = lambda ln: float(world.law.log_lr_opt(np.exp(ln), r * np.exp(ln)))  # noqa: E731
    ln = np.log(n)
    return (f(ln + h) - 2 * f(ln) + f(ln - h)) / h**2


def test_law_is_not_additive_in_n_and_d(worlds):
    for w in worlds:
        for n in (1e7, 1e8, 1e9):
            cross = _law_derivatives(w.law, np.log(n), np.log(w.tokens_per_param * n))
            assert abs(cross - w.law.interaction) < 1e-4  # the u * w term's cross-derivative
            assert abs(cross) >= 0.03 - 1e-6


def test_law_curvature_changes_beyond_the_fitted_cells(worlds):
    for w in worlds:
        fitted_n, _ = w.ladder(6)
        assert w.law.knee > fitted_n.max()  # the knee lies past the largest fitted N
        inside = [_ladder_curvature(w, n) for n in fitted_n]
        at_knee = _ladder_curvature(w, w.law.knee)
        far = _ladder_curvature(w, 1e3 * w.law.knee)
        # softplus: |curvature| peaks at the knee (bend / (4 softness)) and vanishes far past it,
        # so it changes beyond the fitted cells, which a quadratic law's curvature never does
        peak = abs(w.law.bend) / (4 * w.law.softness)
        assert abs(at_knee) == pytest.approx(peak, rel=1e-3)
        assert abs(at_knee) >= max(abs(c) for c in inside)
        assert abs(far) < 1e-3
        assert abs(at_knee - far) > 0.99 * peak - 1e-3 and peak >= 0.05 / 6


def test_targets_sit_at_the_multiples_at_fixed_tokens_per_parameter(ss, worlds):
    for w in worlds:
        n, d = w.ladder(4)
        assert np.allclose(n, ss.N_MAX / 2.0 ** np.arange(4))
        assert np.allclose(d / n, w.tokens_per_param)
        t = w.targets()
        assert np.allclose(t["n_params"] / n.max(), ss.MULTIPLES)
        assert np.allclose(t["n_tokens"] / t["n_params"], w.tokens_per_param)
        assert np.allclose(t["true_log_lr_law"], w.law.log_lr_opt(t["n_params"], t["n_tokens"]))
        assert np.allclose(t["true_log_lr"] - t["true_log_lr_law"], w.target_deviations)
        assert 10.0 <= w.tokens_per_param <= 100.0


def test_templates_have_positive_width_and_noise(ss, templates):
    assert len(templates) >= 5
    for t in templates:
        assert t.width > 0 and np.isfinite(t.width)
        assert t.noise_sd > 0 and np.isfinite(t.noise_sd)
        assert t.noise_sd >= ss.MIN_NOISE_TO_WIDTH * t.width * (1 - 1e-12)
        assert t.asymmetry > 0
        lo, hi = t.ok_range
        assert lo < 0 < hi  # the fitted optimum lies inside the finished LRs
        assert np.all(np.diff(t.rel_log_lr) > 0) and np.all(t.counts >= 1)
    assert any(t.noise_source == "seeds" for t in templates)  # cpu_ladder_v1 repeats some LRs


def test_template_recovers_a_known_valley(ss):
    rng = np.random.default_rng(0)
    x = np.log(1e-3) + 0.35 * np.arange(9)
    m, width, k, noise = np.log(3e-3), 0.05, 1.0, 1e-3
    x_runs = np.repeat(x, 3)
    loss = 3.0 + width * ss.linex_rise(x_runs - m, k) + noise * rng.standard_normal(x_runs.size)
    t = ss.estimate_template("test", "known", x_runs, loss)
    assert t is not None and t.noise_source == "seeds"
    assert t.width == pytest.approx(width, rel=0.1)
    assert t.asymmetry == pytest.approx(ss.linex_asymmetry(k), rel=0.15)
    assert t.noise_sd == pytest.approx(noise, rel=0.3)
    assert np.allclose(t.rel_log_lr + m, x, atol=0.05)


def test_pair_valley_matches_the_asked_asymmetry(ss):
    for asym in (0.4, 0.7, 1.0, 1.4, 2.5):
        for rate in (0.2, 0.5, 0.8):
            p, q = ss.pair_rates(asym, rate)
            assert min(p, q) == rate
            r = ss.pair_rise(np.array([1.0, -1.0]), p, q)
            assert r[0] / r[1] == pytest.approx(asym, rel=1e-6)
            assert r.mean() == pytest.approx(1.0)


def test_simulated_sweeps_bracket_the_true_optimum(ss, worlds):
    for w in worlds:
        runs = ss.simulate_world(w)
        assert set(runs["rung"]) == set(range(6))
        for rung, g in runs.groupby("rung"):
            n, d = w.ladder(6)
            opt = float(w.true_log_lr(n[rung], d[rung], w.deviations[rung]))
            assert np.allclose(np.log(g["true_lr_opt"]), opt)
            ok = g[g["status"] == "ok"]
            assert np.isfinite(ok["final_loss"]).all()
            log_lr = np.log(ok["lr"].to_numpy())
            assert log_lr.min() < opt < log_lr.max()
            assert (g["loss_kind"] == "synthetic").all()
            assert (g["n_tokens"] / g["n_params"]).between(0.999 * w.tokens_per_param,
                                                            1.001 * w.tokens_per_param).all()


def test_worlds_are_reproducible(ss, templates):
    a, b = (ss.simulate_world(ss.draw_world(2, templates, seed=5)) for _ in range(2))
    assert a.equals(b)
    c = ss.simulate_world(ss.draw_world(2, templates, seed=6))
    assert not np.allclose(a["lr"].to_numpy()[:5], c["lr"].to_numpy()[:5])


def test_without_public_sweeps_the_bundled_ladder_is_used_and_said(ss, monkeypatch, tmp_path):
    absent = [(name, tmp_path / name / "runs.csv", loader) for name, _, loader in ss.PUBLIC_SOURCES]
    monkeypatch.setattr(ss, "PUBLIC_SOURCES", absent)
    lib, note = ss.template_library("auto")
    assert {t.dataset for t in lib} == {"cpu_ladder_v1"}
    assert "only" in note and "absent" in note
    with pytest.raises(FileNotFoundError):
        ss.template_library("public")
