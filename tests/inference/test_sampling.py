"""The sampler's stopping rules and the vectorized convergence diagnostics.

What a fit keeps must depend only on the draws, never on when the sampler was looked at: an
early stop keeps exactly the first draws of the full run, at the first checkpoint whose rule
fires.
"""

import warnings

import numpy as np
import pytest

from scalefit.inference.diagnostics import ess_bulk, ess_tail, rhat


def _ar1_chains(seed=0, k=40, chains=2, n=601):
    rng = np.random.default_rng(seed)
    phi = rng.uniform(0.0, 0.95, k)[:, None]
    e = rng.standard_normal((k, chains, n))
    x = np.zeros_like(e)
    for t in range(1, n):
        x[:, :, t] = phi * x[:, :, t - 1] + e[:, :, t]
    x[:4] = np.exp(x[:4])  # skewed
    x[4:8, 1] += 1.5 * x[4:8].std(axis=(1, 2))[:, None]  # one chain off: r_hat must see it
    return x


def test_diagnostics_match_arviz_on_autocorrelated_and_unmixed_chains():
    from arviz_stats.base.array import array_stats

    x = _ar1_chains()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref_bulk = array_stats.ess(x, method="bulk")
        ref_tail = array_stats.ess(x, method="tail", prob=(0.05, 0.95))
        ref_rhat = array_stats.rhat(x)
    np.testing.assert_allclose(ess_bulk(x), ref_bulk, rtol=0.01)
    np.testing.assert_allclose(ess_tail(x), ref_tail, rtol=0.01)
    np.testing.assert_allclose(rhat(x), ref_rhat, atol=1e-3)
    assert rhat(x)[4:8].min() > 1.05 and np.median(rhat(x)[8:]) < 1.01


def _posterior_values(tree) -> np.ndarray:
    post = tree["posterior"].to_dataset()
    return np.concatenate([v.values.reshape(v.shape[0], v.shape[1], -1) for v in post.data_vars.values()], axis=-1)


@pytest.fixture(scope="module")
def compiled(default_table):
    from scalefit.model.config import ModelConfig
    from scalefit.model.data import prepare
    from scalefit.inference.sampling import _compiled

    config = ModelConfig(axis="N")
    return _compiled(prepare(default_table.runs, default_table.cells, config), config)


@pytest.mark.slow
def test_a_stop_at_the_ess_target_keeps_exactly_the_first_draws_of_the_full_run(compiled):
    from scalefit.inference.sampling import SamplerSettings, _draw_nutpie, convergence

    full = _draw_nutpie(compiled, SamplerSettings(draws=1500, tune=300, seed=3, target_ess=None), 0.9, False)
    rule = SamplerSettings(draws=1500, tune=300, seed=3, target_ess=100, check_every=100)
    stopped = _draw_nutpie(compiled, rule, 0.9, False)
    again = _draw_nutpie(compiled, rule, 0.9, False)
    k = stopped["posterior"].to_dataset().sizes["draw"]
    assert k % 100 == 0 and k < 1500
    assert again["posterior"].to_dataset().sizes["draw"] == k
    np.testing.assert_array_equal(_posterior_values(stopped), _posterior_values(full)[:, :k])
    from scalefit.inference.sampling import _first_draws, _reached

    assert _reached(stopped, 100) and convergence(stopped).min_ess_tail >= 100
    assert k == 100 or not _reached(_first_draws(full, k - 100), 100)  # the first checkpoint that qualifies


@pytest.mark.slow
def test_a_diverging_attempt_stops_at_the_first_checkpoint_past_its_first_divergence(compiled):
    from scalefit.inference.sampling import SamplerSettings, _draw_nutpie

    # a step size tuned for 30% acceptance diverges on a hierarchical model
    settings = SamplerSettings(draws=1200, tune=200, seed=5, target_ess=None, check_every=100)
    full = _draw_nutpie(compiled, settings, 0.3, False)
    div = full["sample_stats"].to_dataset()["diverging"].values
    assert div.any(), "precondition: this geometry diverges at 30% acceptance"
    first = int(np.flatnonzero(div.any(axis=0))[0])
    stopped = _draw_nutpie(compiled, settings, 0.3, True)
    k = stopped["posterior"].to_dataset().sizes["draw"]
    assert k == min((first // 100 + 1) * 100, 1200)
    np.testing.assert_array_equal(_posterior_values(stopped), _posterior_values(full)[:, :k])


def test_attempt_order_puts_the_geometry_that_suits_the_table_first():
    """Few cells: non-centred optima first (tau's posterior reaches towards 0), at 0.95; many:
    the table's own centring first, at 0.9. Both geometries are tried at the first level before
    either is retried at 0.99. A table whose optima are all non-centred anyway falls back to
    half-centred discrepancy walks, or, without walks, is tried once per level."""
    from scalefit.model.data import ModelData
    from scalefit.inference.sampling import FALLBACK_WALK_CENTRING, FEW_CELLS, SamplerSettings, attempt_order

    def table(n_cells, centring, walks=None):
        cell = np.repeat(np.arange(n_cells), 4)
        zeros = np.zeros(n_cells)
        return ModelData(x=np.zeros(cell.size), y=np.zeros(cell.size), cell=cell, censored=np.zeros(cell.size),
                         weight=np.ones(cell.size), threshold=np.zeros(cell.size), z_n=zeros, z_d=zeros, std=None,
                         centring=np.full(n_cells, centring), width_centring=zeros, walk_step=walks)

    settings = SamplerSettings()
    few = attempt_order(table(FEW_CELLS - 1, 0.9), settings)
    many = attempt_order(table(FEW_CELLS, 0.9), settings)
    assert [(t, nc) for t, _, nc in few] == [(0.95, 1), (0.95, 0), (0.99, 1), (0.99, 0)]
    assert [(t, nc) for t, _, nc in many] == [(0.9, 0), (0.9, 1), (0.99, 0), (0.99, 1)]
    assert all(np.all(d.centring == 0) == bool(nc) and d.walk_centring == 0 for _, d, nc in few + many)
    flat = attempt_order(table(FEW_CELLS, 0.0), settings)
    assert [(t, nc) for t, _, nc in flat] == [(0.9, 1), (0.99, 1)]
    walked = attempt_order(table(FEW_CELLS, 0.0, walks={"N": np.ones(3)}), settings)
    assert [(t, d.walk_centring) for t, d, _ in walked] == [
        (0.9, 0.0), (0.9, FALLBACK_WALK_CENTRING), (0.99, 0.0), (0.99, FALLBACK_WALK_CENTRING)]
    assert all(np.all(d.centring == 0) for _, d, _ in walked)
    # only cells with data count: held-out cells keep their place but do not pin tau
    held = table(FEW_CELLS, 0.9)
    held.weight[held.cell >= FEW_CELLS - 1] = 0.0
    assert attempt_order(held, settings)[0][2] == 1
    assert [t for t, _, _ in attempt_order(table(5, 0.9), SamplerSettings(retry_target_accept=None))] == [0.95]
    plain = SamplerSettings(few_cells_target_accept=None)
    assert [t for t, _, _ in attempt_order(table(5, 0.9), plain)] == [0.9, 0.9, 0.99, 0.99]


def test_the_cache_key_ignores_prose_but_not_code():
    """Editing a docstring or a comment keeps the compiled-model cache; editing code does not."""
    from scalefit.inference.sampling import _code_only

    base = 'def f(x):\n    """Doc."""\n    return x  # why\n'
    assert _code_only(base) == _code_only('def f(x):\n    """Another doc."""\n    return x\n')
    assert _code_only(base) != _code_only('def f(x):\n    """Doc."""\n    return x + 1\n')
    assert _code_only('"""Module."""\nA = 1\n') == _code_only("A = 1\n")
