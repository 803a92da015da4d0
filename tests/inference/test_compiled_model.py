"""The cacheable nutpie callbacks: same numbers as PyTensor's own function, data swaps reach
them, and a new process loads them from the disk cache instead of compiling."""

import ctypes
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from sf_testing import REPO

# A small model with every kind of shared data the scalefit model has (vectors of two dtypes,
# a 0-d scalar, an integer index), so the callbacks' pointer record is exercised fully.
TINY_MODEL = """
import numpy as np, pymc as pm
def tiny(x, y, cell, sd, n_cells=3):
    with pm.Model() as m:
        dx = pm.Data("x", x); dy = pm.Data("y", y); dc = pm.Data("cell", cell); dsd = pm.Data("sd", sd)
        mu = pm.Normal("mu", 0, 1, shape=n_cells)
        s = pm.HalfNormal("s", 1)
        slope = pm.Normal("slope", 0, dsd)
        pm.Normal("obs", mu=mu[dc] + slope * dx, sigma=s, observed=dy)
    return m
"""


def _tiny(seed=0, n=40):
    namespace = {}
    exec(TINY_MODEL, namespace)
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    cell = rng.integers(0, 3, size=n)
    return namespace["tiny"](x, 0.5 * x + cell + rng.normal(0, 0.3, n), cell, np.asarray(2.0))


def _call_logp(compiled, x):
    """Evaluate the compiled C callback the way nutpie does: (dim, x, grad out, logp out, record)."""
    fn = compiled.compiled_logp_func.ctypes
    grad = np.zeros(compiled.n_dim)
    logp = np.zeros(())
    code = fn(compiled.n_dim, x.ctypes.data_as(ctypes.POINTER(ctypes.c_double)),
              grad.ctypes.data_as(ctypes.POINTER(ctypes.c_double)),
              logp.ctypes.data_as(ctypes.POINTER(ctypes.c_double)), compiled.user_data.ctypes.data)
    return code, float(logp), grad


def _reference(model, x):
    """logp and gradient from PyMC's own compiled function, at the same unconstrained point."""
    point = model.initial_point()
    names = [v.name for v in model.value_vars]
    sizes = [int(np.size(point[n])) for n in names]
    parts = np.split(x, np.cumsum(sizes)[:-1])
    values = {n: p.reshape(np.shape(point[n])) for n, p in zip(names, parts)}
    logp = model.compile_logp()(values)
    dlogp = model.compile_dlogp()(values)
    return float(logp), np.asarray(dlogp)


def _assert_matches(compiled, model, x):
    code, logp, grad = _call_logp(compiled, x)
    ref_logp, ref_grad = _reference(model, x)
    assert code == 0
    assert logp == pytest.approx(ref_logp, rel=1e-9, abs=1e-9)
    np.testing.assert_allclose(grad, ref_grad, rtol=1e-8, atol=1e-9)


def test_callbacks_match_pymc_and_see_swapped_data():
    from scalefit.inference.compiled import compile_cached

    model = _tiny()
    compiled = compile_cached(model)
    rng = np.random.default_rng(1)
    for _ in range(3):
        _assert_matches(compiled, model, rng.normal(size=compiled.n_dim))

    # New data of another length (and another prior sd, a 0-d datum) reaches the callback.
    other = _tiny(seed=5, n=57)
    swapped = compiled.with_data(**{name: other[name].get_value() for name in ("x", "y", "cell", "sd")})
    x = rng.normal(size=compiled.n_dim)
    _, logp, grad = _call_logp(swapped, x)
    ref_logp, ref_grad = _reference(other, x)
    assert logp == pytest.approx(ref_logp, rel=1e-9, abs=1e-9)
    np.testing.assert_allclose(grad, ref_grad, rtol=1e-8, atol=1e-9)
    # ... and the original is untouched
    assert _call_logp(compiled, x)[1] == pytest.approx(_reference(model, x)[0], rel=1e-9, abs=1e-9)


CHILD = """
import sys, json, time
from scalefit.inference.sampling import use_compile_cache
use_compile_cache(sys.argv[1])  # before PyTensor is imported
""" + TINY_MODEL + """
from scalefit.inference.compiled import compile_cached
import nutpie
rng = np.random.default_rng(0)
x = rng.normal(size=30)
y = x + rng.normal(size=30)
cell = rng.integers(0, 3, size=30)
design = np.column_stack([x] + [cell == k for k in range(3)]).astype(float)
ols = float(np.linalg.lstsq(design, y, rcond=None)[0][0])
t = time.perf_counter()
c = compile_cached(tiny(x, y, cell, np.asarray(2.0)), structure_key=sys.argv[2])
compile_s = time.perf_counter() - t
tree = nutpie.sample(c, draws=500, tune=300, chains=1, seed=1, progress_bar=False)
print(json.dumps({"hits": [c.compiled_logp_func.cache_hits, c.compiled_expand_func.cache_hits],
                  "graph_built": c.logp_func is not None,
                  "compile_s": compile_s, "ols": ols,
                  "slope": float(tree["posterior"].to_dataset()["slope"].mean())}))
"""


def _child(cache, key="tiny-v1"):
    env = dict(os.environ, PYTENSOR_FLAGS="")
    out = subprocess.run([sys.executable, "-c", CHILD, str(cache), key], capture_output=True, text=True, env=env,
                         cwd=REPO, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_a_new_process_loads_the_callbacks_from_disk(tmp_path):
    cold = _child(tmp_path)
    warm = _child(tmp_path)
    assert cold["hits"] == [0, 0] and cold["graph_built"]
    assert warm["hits"] == [1, 1]  # both callbacks loaded, not compiled
    assert not warm["graph_built"]  # and, with the structure key's record, no PyTensor graph built
    # ... and they compute the model: the posterior mean slope sits at least squares' (flat-ish prior)
    assert warm["slope"] == pytest.approx(warm["ols"], abs=0.08)
    assert warm["compile_s"] < cold["compile_s"]


def test_a_stale_structure_key_falls_back_to_the_full_path():
    """A record whose shapes disagree with the model (a caller's key that failed to change) is
    not trusted: the model is compiled in full and computes its own logp."""
    import uuid

    from scalefit.inference.compiled import compile_cached

    key = f"stale-{uuid.uuid4().hex}"
    three = _tiny()
    first = compile_cached(three, structure_key=key)
    assert first.logp_func is not None
    rng = np.random.default_rng(3)
    exec_ns = {}  # same data, one more cell effect: n_dim 6 instead of 5
    exec(TINY_MODEL, exec_ns)
    four = exec_ns["tiny"](*(three[n].get_value() for n in ("x", "y", "cell", "sd")), n_cells=4)
    again = compile_cached(four, structure_key=key)
    assert again.logp_func is not None and again.n_dim == first.n_dim + 1
    x = rng.normal(size=again.n_dim)
    assert _call_logp(again, x)[1] == pytest.approx(_reference(four, x)[0], rel=1e-9, abs=1e-9)


GENERIC_MODEL = """
import numpy as np, pymc as pm
def generic(x, y, cell, n_cells):
    with pm.Model(coords={"cell": np.arange(n_cells)}) as m:
        dx = pm.Data("x", x); dy = pm.Data("y", y); dc = pm.Data("cell_of", cell)
        mu = pm.Normal("mu", 0, 1, dims="cell")
        s = pm.HalfNormal("s", 1)
        slope = pm.Normal("slope", 0, 2)
        pm.Normal("obs", mu=mu[dc] + slope * dx, sigma=s, observed=dy)
    return m
"""


def _generic(n_cells, n, seed):
    namespace = {}
    exec(GENERIC_MODEL, namespace)
    rng = np.random.default_rng(seed)
    x, cell = rng.normal(size=n), rng.integers(0, n_cells, size=n)
    return namespace["generic"](x, 0.5 * x + cell + rng.normal(0, 0.3, n), cell, n_cells)


def test_a_model_of_other_sizes_loads_the_same_compiled_code():
    """Sizes that the graph keeps symbolic (a dimension's length, data lengths) do not change
    the compiled code: a model with more cells and runs loads it from the disk cache, builds no
    graph, and computes its own logp and gradient."""
    import uuid

    import scalefit.inference.compiled as cm

    key = f"generic-{uuid.uuid4().hex}"
    small = _generic(3, 40, seed=0)
    first = cm.compile_cached(small, structure_key=key)
    assert first.logp_func is not None and first.n_dim == 3 + 2
    cm._CALLBACKS.clear()  # as in a new process: load from disk, not from this process's memo
    large = _generic(5, 57, seed=1)
    again = cm.compile_cached(large, structure_key=key)
    assert again.logp_func is None  # loaded: no PyTensor graph built
    assert [again.compiled_logp_func.cache_hits, again.compiled_expand_func.cache_hits] == [1, 1]
    assert again.n_dim == 5 + 2
    rng = np.random.default_rng(2)
    for model, compiled in ((large, again), (small, first)):
        _assert_matches(compiled, model, rng.normal(size=compiled.n_dim))
    # the expansion has the larger model's length too (the draws' trace variables)
    assert again.n_expanded > first.n_expanded


def test_the_scalefit_model_compiled_for_one_table_computes_another(default_table):
    """The real model (joint N,D law, both walks with interior positions): the code compiled for
    the default table, loaded for the table without its largest size, gives PyMC's own logp and
    gradient for both. Guards the symbolic sizes and the numba build against miscompiling."""
    from scalefit.model.config import ModelConfig
    from scalefit.runs.table import load_runs
    from scalefit.model.data import prepare
    from scalefit.model.graph import build_model
    from scalefit.inference.sampling import _compiled
    from scalefit.runs.synthetic import make_grid

    config = ModelConfig(axis="ND")
    frame = make_grid()
    smaller = load_runs(frame[frame["n_params"] < frame["n_params"].max()])
    rng = np.random.default_rng(4)
    sizes = []
    for table in (default_table, smaller):
        data = prepare(table.runs, table.cells, config)
        compiled = _compiled(data, config)
        sizes.append(compiled.n_dim)
        _assert_matches(compiled, build_model(data, config), 0.3 * rng.normal(size=compiled.n_dim))
    assert sizes[1] < sizes[0]
