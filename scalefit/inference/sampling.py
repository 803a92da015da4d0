"""Posterior sampling: compile once per model structure, swap data, report convergence.

nutpie is the fast path: for a one-off fit compiling the model costs far more than sampling it,
so the compiled model is cached and reused (see the model page, docs/model.md, "Compiling once").
The default PyMC sampler is kept working for users without nutpie. The attempt order and the
stopping rule are on the same page, "Attempt order" and "Sampling and the stopping rule".
"""

from __future__ import annotations

import ast
import dataclasses
import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from scalefit.inference.cache import use_compile_cache  # noqa: F401  (re-exported for older imports)
from scalefit.model.config import ModelConfig
from scalefit.model.data import ModelData
from scalefit.model.graph import build_model, initial_values

__all__ = ["SamplerSettings", "sample", "attempt_order", "structure_key", "Convergence", "convergence",
           "SAMPLERS", "CONVERGED_RHAT", "CONVERGED_ESS", "FEW_CELLS", "FALLBACK_WALK_CENTRING"]

SAMPLERS = ("nutpie", "pymc")
"""Values of `SamplerSettings.sampler`."""
CONVERGED_RHAT = 1.01
"""The largest r_hat of a converged fit."""
CONVERGED_ESS = 400
"""The smallest bulk ESS of a converged fit (and the default stopping target)."""

_COMPILED: dict[tuple, object] = {}


@dataclass(frozen=True)
class SamplerSettings:
    """How to draw from the posterior (not what the model is: that is `ModelConfig`).

    Parameters
    ----------
    draws : int, default 3000
        Draws per chain, at most: with nutpie sampling stops early once `target_ess` is reached.
    tune : int, default 1000
        Tuning (warm-up) draws per chain, discarded.
    chains : int, default 2
        Chains, run in parallel on up to as many cores.
    sampler : {"nutpie", "pymc"}, default "nutpie"
        nutpie (compiled once and cached) or PyMC's own NUTS, which always takes every draw.
    seed : int, default 0
        Random seed.
    progress : bool, default False
        Show the sampler's progress bar.
    target_accept : float, default 0.9
        NUTS target acceptance of the first attempt.
    retry_target_accept : float or None, default 0.99
        The level of the last attempts after divergences (`attempt_order`): smaller steps, which
        cost several times the sampling time, so they are paid only when needed. None (or a
        value not above the first level): no retries.
    few_cells_target_accept : float or None, default 0.95
        The first level for tables with fewer than FEW_CELLS cells with data, when higher than
        `target_accept`: their noise scale can make rare excursions towards small values that
        diverge at 0.9, while a large table is clean at 0.9 and would pay for the higher level
        in time. None: `target_accept` for every table.
    target_ess : int or None, default 400
        nutpie: stop at the first checkpoint where bulk and tail ESS both reach this and r_hat
        <= 1.01; most tables get there well before `draws`. None: always take every draw.
    check_every : int, default 250
        Draws per chain between checkpoints.

    Raises
    ------
    ValueError
        On an unknown sampler, fewer than 10 draws or tuning draws, no chains, or checkpoints
        under 10 draws apart.

    Examples
    --------
    >>> from scalefit.inference.sampling import SamplerSettings
    >>> quick = SamplerSettings(draws=500, tune=500, target_ess=None)
    >>> exact = SamplerSettings(sampler="pymc", chains=4, seed=1)
    """

    draws: int = 3000  # per chain, at most: nutpie stops early once target_ess is reached
    tune: int = 1000
    chains: int = 2
    sampler: str = "nutpie"
    seed: int = 0
    progress: bool = False
    # NUTS target acceptance; after divergences the fit is redrawn (attempt_order), in the end at
    # the retry level: smaller steps remove the divergences a lower level leaves, at several
    # times the sampling time, so pay it only when needed.
    target_accept: float = 0.9
    retry_target_accept: float | None = 0.99
    # The first level for tables with few cells (FEW_CELLS): with few cells a rare excursion to
    # a small noise scale diverges at 0.9 and not at 0.95, while a large table is clean at 0.9
    # and 0.95 would only cost it time. None: target_accept for every table.
    few_cells_target_accept: float | None = 0.95
    # nutpie: stop at the first multiple of check_every draws per chain where bulk and tail ESS
    # both reach target_ess and r_hat <= 1.01 (None: always every draw), usually well before
    # `draws`.
    target_ess: int | None = CONVERGED_ESS
    check_every: int = 250

    def __post_init__(self):
        if self.sampler not in SAMPLERS:
            raise ValueError(f"sampler must be one of {SAMPLERS}, got {self.sampler!r}")
        if self.draws < 10 or self.tune < 10 or self.chains < 1:
            raise ValueError("need draws >= 10, tune >= 10 and chains >= 1")
        if self.check_every < 10:
            raise ValueError(f"check_every must be >= 10 draws, got {self.check_every}")


def _compiled(data: ModelData, config: ModelConfig):
    """nutpie-compiled model for this structure; later calls only swap the data. The compiled
    code is cached on disk too (`scalefit.inference.compiled`), so a new process loads it."""
    from scalefit.inference.compiled import compile_cached

    key = (config.hash, data.structure())
    compiled = _COMPILED.get(key)
    if compiled is None:
        compiled = compile_cached(build_model(data, config), initial_points=initial_values(data),
                                  structure_key=structure_key(data, config))
        _COMPILED[key] = compiled
        return compiled
    return compiled.with_data(**data.arrays())


def _code_only(source: str) -> str:
    """A module's syntax tree without docstrings or comments, so editing prose keeps the cache."""
    tree = ast.parse(source)
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (isinstance(body, list) and body and isinstance(body[0], ast.Expr)
                and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str)):
            node.body = body[1:] or [ast.Pass()]
    return ast.dump(tree)


def structure_key(data: ModelData, config: ModelConfig) -> str:
    """The on-disk compiled-model cache's key for this model.

    It covers everything the model's graph depends on: the config, the data's graph structure
    (not its sizes) and dtypes, the code that builds and compiles it, and the library versions.

    Parameters
    ----------
    data : ModelData
        The model's arrays.
    config : ModelConfig
        The model settings.

    Returns
    -------
    str
        A SHA-256 hex digest.
    """
    import numba
    import pymc
    import pytensor

    import scalefit.inference.compiled
    import scalefit.model.data
    import scalefit.model.graph
    import scalefit.model.law
    import scalefit.model.valley
    from scalefit.inference.backend import import_nutpie

    nutpie = import_nutpie()

    parts = {
        "config": config.to_json(), "structure": repr(data.graph_structure()),
        "arrays": {k: [np.asarray(v).dtype.str, np.ndim(v)] for k, v in data.arrays().items()},
        "versions": [pymc.__version__, pytensor.__version__, nutpie.__version__, numba.__version__, np.__version__],
        "code": [hashlib.sha256(_code_only(Path(m.__file__).read_text()).encode()).hexdigest()
                 for m in (scalefit.model.data, scalefit.model.graph, scalefit.model.law, scalefit.model.valley,
                           scalefit.inference.compiled)],
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def sample(data: ModelData, config: ModelConfig, settings: SamplerSettings = SamplerSettings()):
    """Draw from the posterior.

    Draws that diverge are redone (with `settings.retry_target_accept` set) in the order of
    `attempt_order`: the other geometry (the optima's centring flipped, or half-centred walks
    where the optima are all non-centred) at the same target acceptance, then both at the retry
    level (smaller steps).
    The geometry changes, the posterior does not. With nutpie an attempt that diverges is
    stopped at its first checkpoint, and a clean one at the
    first checkpoint where it has converged (`settings.target_ess`): what is kept depends only
    on the draws up to that checkpoint, never on when the sampler was looked at. The tree's
    attrs say which attempt the draws come from, how many draws it kept, and how the time split
    between compiling (or loading the compiled model) and sampling.

    Parameters
    ----------
    data : ModelData
        The model's arrays (`scalefit.model.data.prepare`).
    config : ModelConfig
        The model settings.
    settings : SamplerSettings, optional
        The sampler, draws, acceptance levels and stopping rule.

    Returns
    -------
    xarray.DataTree
        posterior and sample_stats groups; attrs target_accept, attempts, draws_kept, compile_s,
        sampling_s, optima_noncentred, walk_centring, and retried_after_divergences (the first
        attempt's divergences) when an attempt was redone.

    Examples
    --------
    >>> from scalefit.inference.sampling import SamplerSettings, convergence, sample
    >>> from scalefit.model.config import ModelConfig
    >>> from scalefit.model.data import prepare
    >>> from scalefit.runs.synthetic import make_grid
    >>> from scalefit.runs.table import load_runs
    >>> table, config = load_runs(make_grid()), ModelConfig(axis="N")
    >>> tree = sample(prepare(table.runs, table.cells, config), config, SamplerSettings())  # doctest: +SKIP
    >>> print(convergence(tree).describe())  # doctest: +SKIP
    """
    attempts = attempt_order(data, settings)
    first_divergences = None
    compile_s = sampling_s = 0.0
    for i, (target, d, nc) in enumerate(attempts):
        t0 = time.perf_counter()
        model = _compiled(d, config) if settings.sampler == "nutpie" else None
        t1 = time.perf_counter()
        last = i == len(attempts) - 1
        tree = _draw(d, config, settings, target, model, stop_on_divergence=not last)
        compile_s, sampling_s = compile_s + t1 - t0, sampling_s + time.perf_counter() - t1
        n_div = int(np.sum(tree["sample_stats"].to_dataset()["diverging"].values))
        first_divergences = n_div if first_divergences is None else first_divergences
        if n_div == 0:
            break
    tree.attrs["target_accept"] = target
    tree.attrs["attempts"] = i + 1
    tree.attrs["draws_kept"] = int(tree["posterior"].to_dataset().sizes["draw"])
    tree.attrs["compile_s"] = round(compile_s, 3)  # includes data swaps
    tree.attrs["sampling_s"] = round(sampling_s, 3)  # every attempt's draws
    tree.attrs["optima_noncentred"] = nc
    tree.attrs["walk_centring"] = float(d.walk_centring)
    if i:
        tree.attrs["retried_after_divergences"] = first_divergences
    return tree


# Below this many cells with data the law's residual sd tau is loosely pinned and its posterior
# reaches towards 0, where centred optima funnel, so such tables start non-centred; a large table
# is clean with each cell's own centring, where non-centring every optimum would take more
# leapfrog steps per draw. Trying the likelier geometry first saves a redraw and changes no
# answer (see the model page, docs/model.md, "Attempt order").
FEW_CELLS = 30
"""Tables with fewer cells with data start with non-centred optima, at `few_cells_target_accept`."""
# The walks' centring in the fallback geometry of a table whose optima are all non-centred
# (scalefit.model.graph._law_walk says why 0.5).
FALLBACK_WALK_CENTRING = 0.5
"""The walks' bridge centring in the fallback geometry of a table whose optima are all non-centred."""


def attempt_order(data: ModelData, settings: SamplerSettings) -> list[tuple[float, ModelData, int]]:
    """The attempts `sample` makes, in order, until one is free of divergences.

    The geometry and acceptance level that suit the table first, then the other geometry, then
    both at the retry level (none without a retry level). The other geometry flips the optima's
    centring; where they are non-centred anyway (the law pins them:
    `scalefit.model.centring.optimum_scatter` is 0), it half-centres the discrepancy walks
    instead. The posterior is the same in every geometry.

    Parameters
    ----------
    data : ModelData
        The model's arrays, with the cells' centring.
    settings : SamplerSettings
        The acceptance levels.

    Returns
    -------
    list of tuple
        (target acceptance, data in that geometry, 1 if the optima are all non-centred else 0)
        per attempt.
    """
    few = np.unique(data.cell[data.weight > 0]).size < FEW_CELLS
    noncentred = (dataclasses.replace(data, centring=np.zeros_like(data.centring)), 1)
    if np.any(data.centring > 0):
        geometries = [noncentred, (data, 0)] if few else [(data, 0), noncentred]
    elif data.walk_step:
        geometries = [noncentred, (dataclasses.replace(noncentred[0], walk_centring=FALLBACK_WALK_CENTRING), 1)]
    else:
        geometries = [noncentred]
    first = settings.target_accept
    if few and settings.few_cells_target_accept:
        first = max(first, settings.few_cells_target_accept)
    retry = settings.retry_target_accept
    if not retry or retry <= first:  # no retries asked for
        return [(first, *geometries[0])]
    return [(target, d, nc) for target in (first, retry) for d, nc in geometries]


def _draw(data: ModelData, config: ModelConfig, settings: SamplerSettings, target_accept: float, compiled,
          stop_on_divergence: bool = False):
    """One attempt's draws; `compiled` is the nutpie model (None for the PyMC sampler, which
    always takes every draw)."""
    if settings.sampler == "nutpie":
        return _draw_nutpie(compiled, settings, target_accept, stop_on_divergence)
    import pymc as pm

    with build_model(data, config):
        return pm.sample(
            draws=settings.draws, tune=settings.tune, chains=settings.chains,
            cores=min(settings.chains, os.cpu_count() or 1), random_seed=settings.seed,
            progressbar=settings.progress, compute_convergence_checks=False, target_accept=target_accept,
        )


def _draw_nutpie(compiled, settings: SamplerSettings, target_accept: float, stop_on_divergence: bool):
    """nutpie's draws, looked at every `check_every` draws per chain: stop early once converged
    (settings.target_ess), or, with `stop_on_divergence`, at the first divergence."""
    import threading

    from scalefit.inference.backend import import_nutpie

    nutpie = import_nutpie()
    adaptive = settings.target_ess is not None or stop_on_divergence
    kwargs = dict(draws=settings.draws, tune=settings.tune, chains=settings.chains,
                  cores=min(settings.chains, os.cpu_count() or 1), seed=settings.seed,
                  progress_bar=settings.progress, save_warmup=False, target_accept=target_accept)
    if not adaptive:
        return nutpie.sample(compiled, **kwargs)
    done = {"draws": 0}  # fewest post-warmup draws of any chain, from nutpie's progress thread
    moved = threading.Event()

    def on_progress(chains):
        done["draws"] = min(max(c.finished_draws - settings.tune, 0) if not c.tuning else 0 for c in chains)
        moved.set()

    sampler = nutpie.sample(compiled, **kwargs, blocking=False, progress_callback=on_progress, progress_rate=100)
    checkpoint, trace = min(settings.check_every, settings.draws), None
    while checkpoint < settings.draws:
        # Every checkpoint is judged on exactly its first draws, also those the sampler ran past
        # before we looked, so the kept draws never depend on the polling.
        if trace is None and _finished(sampler):
            trace = sampler.wait()
        if trace is None and done["draws"] < checkpoint:
            moved.wait(0.5)
            moved.clear()
            continue
        tree = _first_draws(trace if trace is not None else sampler.inspect(), checkpoint)
        if tree is None:  # the stored trace lags the progress report
            moved.wait(0.1)
            continue
        stop = bool(stop_on_divergence and np.sum(tree["sample_stats"].to_dataset()["diverging"].values))
        if stop or (settings.target_ess is not None and _reached(tree, settings.target_ess)):
            if trace is None:
                sampler.cancel()
            return tree
        checkpoint += settings.check_every
    return trace if trace is not None else sampler.wait()


def _finished(sampler) -> bool:
    try:
        return bool(sampler.is_finished)
    except TimeoutError:  # nutpie answers "not yet" this way while its threads hold the lock
        return False


def _first_draws(tree, n: int):
    """The tree cut to each chain's first `n` draws (a partial trace pads the slower chains
    with NaN); None while some chain has fewer."""
    import xarray as xr

    groups = {name: node.to_dataset() for name, node in tree.children.items()}
    if groups["posterior"].sizes["draw"] < n or not np.isfinite(groups["sample_stats"]["logp"].values[:, :n]).all():
        return None
    return xr.DataTree.from_dict({f"/{name}": ds.isel(draw=slice(0, n)) for name, ds in groups.items()})


def _reached(tree, target_ess: int) -> bool:
    c = convergence(tree)
    return c.max_rhat <= CONVERGED_RHAT and c.min_ess_bulk >= target_ess and c.min_ess_tail >= target_ess


@dataclass(frozen=True)
class Convergence:
    """Convergence of a posterior sample, over every posterior scalar.

    Attributes
    ----------
    max_rhat : float
        The largest rank-normalized split r_hat.
    min_ess_bulk : float
        The smallest bulk ESS.
    min_ess_tail : float
        The smallest tail ESS (at the 5% and 95% quantiles).
    divergences : int
        Divergent transitions.
    n_draws : int
        Draws over all chains.
    """

    max_rhat: float
    min_ess_bulk: float
    min_ess_tail: float
    divergences: int
    n_draws: int

    @property
    def converged(self) -> bool:
        """max r_hat <= CONVERGED_RHAT, min bulk ESS >= CONVERGED_ESS and no divergences."""
        return bool(self.max_rhat <= CONVERGED_RHAT and self.min_ess_bulk >= CONVERGED_ESS
                and self.divergences == 0)

    def describe(self) -> str:
        """A one-line verdict with the numbers and thresholds, as reports print it.

        Returns
        -------
        str
            "converged: ..." or "NOT CONVERGED: ...".
        """
        verdict = "converged" if self.converged else "NOT CONVERGED"
        return (f"{verdict}: max r_hat {self.max_rhat:.3f} (<= {CONVERGED_RHAT}), "
                f"min ess_bulk {self.min_ess_bulk:.0f} (>= {CONVERGED_ESS}), "
                f"min ess_tail {self.min_ess_tail:.0f}, divergences {self.divergences}")

    def to_dict(self) -> dict:
        """The fields and the verdict, for JSON.

        Returns
        -------
        dict
            The attributes plus "converged".
        """
        return {"max_rhat": self.max_rhat, "min_ess_bulk": self.min_ess_bulk,
                "min_ess_tail": self.min_ess_tail, "divergences": self.divergences,
                "n_draws": self.n_draws, "converged": self.converged}


def convergence(tree) -> Convergence:
    """r_hat, bulk ESS and tail ESS (at the 5% and 95% quantiles) over every posterior scalar,
    and the divergence count.

    Parameters
    ----------
    tree : xarray.DataTree
        A sample with posterior and sample_stats groups (`sample`).

    Returns
    -------
    Convergence
        The worst r_hat and ESS over the scalars that move (`stack_parameters`), and the
        divergences.
    """
    from scalefit.inference.diagnostics import ess_bulk, ess_tail, rhat, stack_parameters

    post = tree["posterior"].to_dataset()
    x = stack_parameters(post)
    div = tree["sample_stats"].to_dataset()["diverging"].values
    with np.errstate(invalid="ignore"):
        return Convergence(
            max_rhat=float(np.nanmax(rhat(x))) if len(x) else float("nan"),
            min_ess_bulk=float(np.nanmin(ess_bulk(x))) if len(x) else float("nan"),
            min_ess_tail=float(np.nanmin(ess_tail(x))) if len(x) else float("nan"),
            divergences=int(np.sum(div)),
            n_draws=int(post.sizes["chain"] * post.sizes["draw"]),
        )
