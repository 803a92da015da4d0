"""Posterior sampling: compile once per model structure, swap data, report convergence.

nutpie is the fast path (DESIGN.md, stack facts: compile dominates a one-off fit, sampling is
sub-second); the default PyMC sampler is kept working for users without nutpie.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from scalefit.config import ModelConfig
from scalefit.model import ModelData, build_model, initial_values

SAMPLERS = ("nutpie", "pymc")
CONVERGED_RHAT = 1.01
CONVERGED_ESS = 400

_COMPILED: dict[tuple, object] = {}


def use_compile_cache(directory: str | os.PathLike | None = None) -> Path:
    """Point pytensor's compile cache at a folder CI can keep (must run before pytensor loads)."""
    directory = Path(directory or os.environ.get("SCALEFIT_CACHE", Path.home() / ".cache" / "scalefit"))
    compiledir = directory / "pytensor"
    compiledir.mkdir(parents=True, exist_ok=True)
    flags = os.environ.get("PYTENSOR_FLAGS", "")
    if "base_compiledir" not in flags:
        os.environ["PYTENSOR_FLAGS"] = ",".join(f for f in (flags, f"base_compiledir={compiledir}") if f)
    return compiledir


@dataclass(frozen=True)
class SamplerSettings:
    draws: int = 3000  # small grids mix slowly in the width scale; sampling is ~1 s per 1000 draws
    tune: int = 1000
    chains: int = 2
    sampler: str = "nutpie"
    seed: int = 0
    progress: bool = False
    # NUTS target acceptance; after any divergence the fit is redrawn once at the retry level
    # (smaller steps). On steplaw_moe (80 cells, ln B in the law) 0.8 gave 72 divergences per
    # 6,000 draws, 0.95 gave 2, 0.99 none at 4x the sampling time: pay it only when needed.
    target_accept: float = 0.9
    retry_target_accept: float | None = 0.99

    def __post_init__(self):
        if self.sampler not in SAMPLERS:
            raise ValueError(f"sampler must be one of {SAMPLERS}, got {self.sampler!r}")
        if self.draws < 10 or self.tune < 10 or self.chains < 1:
            raise ValueError("need draws >= 10, tune >= 10 and chains >= 1")


def _compiled(data: ModelData, config: ModelConfig):
    """nutpie-compiled model for this structure; later calls only swap the data. The compiled
    code is cached on disk too (`scalefit.compiled_model`), so a new process loads it."""
    from scalefit.compiled_model import compile_cached

    key = (config.hash, data.structure())
    compiled = _COMPILED.get(key)
    if compiled is None:
        compiled = compile_cached(build_model(data, config), initial_points=initial_values(data),
                                  structure_key=structure_key(data, config))
        _COMPILED[key] = compiled
        return compiled
    return compiled.with_data(**data.arrays())


def structure_key(data: ModelData, config: ModelConfig) -> str:
    """Everything the model's graph depends on: the config, the data's structure and dtypes, the
    code that builds and compiles it, and the library versions. Keys the compiled-model cache."""
    import numba
    import nutpie
    import pymc
    import pytensor

    import scalefit.compiled_model
    import scalefit.model

    parts = {
        "config": config.to_json(), "structure": repr(data.structure()),
        "arrays": {k: [np.asarray(v).dtype.str, np.ndim(v)] for k, v in data.arrays().items()},
        "versions": [pymc.__version__, pytensor.__version__, nutpie.__version__, numba.__version__, np.__version__],
        "code": [hashlib.sha256(Path(m.__file__).read_bytes()).hexdigest()
                 for m in (scalefit.model, scalefit.compiled_model)],
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def sample(data: ModelData, config: ModelConfig, settings: SamplerSettings = SamplerSettings()):
    """Draw from the posterior; returns an xarray DataTree (posterior, sample_stats).

    After any divergence (and with `settings.retry_target_accept` set) the draws are redone:
    first at that target acceptance, then, if they still diverge, with every cell's optimum
    non-centred as well (the geometry changes, the posterior does not). The tree's attrs say
    which attempt the draws come from, and how the time split between compiling (or loading
    the compiled model) and sampling.
    """
    attempts = [(settings.target_accept, data)]
    retry = settings.retry_target_accept
    if retry and retry > settings.target_accept:
        # Partly centred optima can funnel when tau is small (cpu_ladder_v1: 1-3 divergences per
        # 6,000 draws at 0.99); fully non-centred they did not.
        attempts += [(retry, data), (retry, dataclasses.replace(data, centring=np.zeros_like(data.centring)))]
    first_divergences = None
    compile_s = sampling_s = 0.0
    for i, (target, d) in enumerate(attempts):
        t0 = time.perf_counter()
        model = _compiled(d, config) if settings.sampler == "nutpie" else None
        t1 = time.perf_counter()
        tree = _draw(d, config, settings, target, model)
        compile_s, sampling_s = compile_s + t1 - t0, sampling_s + time.perf_counter() - t1
        n_div = int(np.sum(tree["sample_stats"].to_dataset()["diverging"].values))
        first_divergences = n_div if first_divergences is None else first_divergences
        if n_div == 0:
            break
    tree.attrs["target_accept"] = target
    tree.attrs["attempts"] = i + 1
    tree.attrs["compile_s"] = round(compile_s, 3)  # includes data swaps
    tree.attrs["sampling_s"] = round(sampling_s, 3)  # every attempt's draws
    if i:
        tree.attrs["retried_after_divergences"] = first_divergences
        tree.attrs["optima_noncentred"] = int(i == 2)
    return tree


def _draw(data: ModelData, config: ModelConfig, settings: SamplerSettings, target_accept: float, compiled):
    """One attempt's draws; `compiled` is the nutpie model (None for the PyMC sampler)."""
    if settings.sampler == "nutpie":
        import nutpie

        return nutpie.sample(
            compiled, draws=settings.draws, tune=settings.tune,
            chains=settings.chains, cores=min(settings.chains, os.cpu_count() or 1),
            seed=settings.seed, progress_bar=settings.progress, save_warmup=False, target_accept=target_accept,
        )
    import pymc as pm

    with build_model(data, config):
        return pm.sample(
            draws=settings.draws, tune=settings.tune, chains=settings.chains,
            cores=min(settings.chains, os.cpu_count() or 1), random_seed=settings.seed,
            progressbar=settings.progress, compute_convergence_checks=False, target_accept=target_accept,
        )


@dataclass(frozen=True)
class Convergence:
    max_rhat: float
    min_ess_bulk: float
    min_ess_tail: float
    divergences: int
    n_draws: int

    @property
    def converged(self) -> bool:
        return bool(self.max_rhat <= CONVERGED_RHAT and self.min_ess_bulk >= CONVERGED_ESS
                and self.divergences == 0)

    def describe(self) -> str:
        verdict = "converged" if self.converged else "NOT CONVERGED"
        return (f"{verdict}: max r_hat {self.max_rhat:.3f} (<= {CONVERGED_RHAT}), "
                f"min ess_bulk {self.min_ess_bulk:.0f} (>= {CONVERGED_ESS}), "
                f"min ess_tail {self.min_ess_tail:.0f}, divergences {self.divergences}")

    def to_dict(self) -> dict:
        return {"max_rhat": self.max_rhat, "min_ess_bulk": self.min_ess_bulk,
                "min_ess_tail": self.min_ess_tail, "divergences": self.divergences,
                "n_draws": self.n_draws, "converged": self.converged}


def convergence(tree) -> Convergence:
    """r_hat / ESS over every posterior variable, and the divergence count."""
    import arviz_stats as azs

    post = tree["posterior"].to_dataset()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ArviZ warns on short chains; the numbers speak for themselves
        rhat = azs.rhat(post)
        ess_bulk = azs.ess(post, method="bulk")
        ess_tail = azs.ess(post, method="tail")

    def extreme(ds, fn):
        values = [float(fn(v.values)) for v in ds.data_vars.values() if v.size]
        return fn(np.array(values)) if values else float("nan")

    div = tree["sample_stats"].to_dataset()["diverging"].values
    return Convergence(
        max_rhat=float(extreme(rhat, np.nanmax)),
        min_ess_bulk=float(extreme(ess_bulk, np.nanmin)),
        min_ess_tail=float(extreme(ess_tail, np.nanmin)),
        divergences=int(np.sum(div)),
        n_draws=int(post.sizes["chain"] * post.sizes["draw"]),
    )
