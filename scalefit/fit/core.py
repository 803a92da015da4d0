"""One object for a fitted model: the runs table, the model config and the posterior, with
predict, save and load.

`fit_runs` samples the posterior of a runs table and returns a `Fit`; `Fit.save` writes it as a
fit file (netCDF) and `load_fit` (or `Fit.load`) reads it back, so `Fit.predict` on a loaded fit
gives the numbers the original fit gave.

Examples
--------
>>> from scalefit import load_runs, ModelConfig, fit_runs, load_fit
>>> table = load_runs("runs.csv")  # doctest: +SKIP
>>> fit = fit_runs(table, ModelConfig(axis="N"))  # doctest: +SKIP
>>> fit.predict(n_params=1e9, n_tokens=2e10).lr_median  # doctest: +SKIP
>>> fit.save("fit.nc")  # doctest: +SKIP
>>> load_fit("fit.nc").predict(n_params=1e9, n_tokens=2e10).lr_median  # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from scalefit.fit.baseline import BaselineFit, fit_baseline
from scalefit.fit.effective import EffectiveMap, fit_effective_map
from scalefit.fit.io import read_fit, save_fit
from scalefit.inference.sampling import Convergence, SamplerSettings, convergence, sample
from scalefit.model.config import ModelConfig
from scalefit.model.data import ModelData, prepare
from scalefit.model.standardize import Standardization
from scalefit.runs.table import RunsTable

__all__ = ["Fit", "fit_runs", "load_fit"]


@dataclass
class Fit:
    """A fitted model: the runs table, the model config and the posterior it gave.

    Made by `fit_runs` (sampling) or `load_fit` / `Fit.load` (reading a fit file); not usually
    built by hand. `predict` answers for a target scale, `save` writes a fit file.

    Attributes
    ----------
    config : scalefit.model.config.ModelConfig
        The model that was fitted (valley shape, law, axis, LR space, run window, priors).
    table : scalefit.runs.table.RunsTable
        The runs table the fit was made from: its runs and its cells (``table.cells``, one row
        per scale cell, indexed by cell id).
    std : scalefit.model.standardize.Standardization
        The affine maps between raw units (ln LR, loss, ln N, ln D, ln B) and the standardized
        units the model is written in.
    tree : xarray.DataTree
        The sampler's output: ``posterior`` and ``sample_stats`` groups, plus ``observed_data``,
        ``constant_data`` and ``runs`` once the fit has been saved and read back. Its ``attrs``
        record how the sampler got there (target_accept, retries, timings).
    convergence : scalefit.inference.sampling.Convergence or None
        r-hat, bulk and tail ESS and divergences of the posterior; ``None`` when a fit file
        holds no summary.
    baseline : scalefit.fit.baseline.BaselineFit
        The two-stage log-linear point fit on the same runs, shown beside the posterior.
    held_out : tuple of int
        Cells kept in the model without their data (backtests); empty for an ordinary fit.
    sampler : scalefit.inference.sampling.SamplerSettings
        The sampler settings the fit was made with.
    eff_map : scalefit.fit.effective.EffectiveMap or None
        Effective-LR fits only (``config.lr_kind == "effective"``): the fitted map
        eff_lr = f(lr, N, D) that carries the effective optimum back to the nominal LR to set.
        ``None`` for nominal-LR fits.
    data : scalefit.model.data.ModelData or None
        The arrays the posterior was sampled from (rebuilt from the runs table on load).
    posterior : xarray.DataTree
        ``tree["posterior"]``: one variable per model parameter, dims (chain, draw, ...).

    Examples
    --------
    >>> from scalefit import load_runs, ModelConfig, fit_runs
    >>> table = load_runs("runs.csv")  # doctest: +SKIP
    >>> fit = fit_runs(table, ModelConfig(axis="N"))  # doctest: +SKIP
    >>> fit.convergence.converged  # doctest: +SKIP
    True
    >>> p = fit.predict(n_params=1e9, n_tokens=2e10, prob=0.9)  # doctest: +SKIP
    >>> p.lr_median, p.lr_low, p.lr_high  # doctest: +SKIP
    >>> fit.save("fit.nc")  # doctest: +SKIP
    >>> Fit.load("fit.nc").fitted_cells()  # doctest: +SKIP
    """

    config: ModelConfig
    table: RunsTable
    std: Standardization
    tree: object  # xarray DataTree: posterior, sample_stats (+ data groups once saved)
    convergence: Convergence | None
    baseline: BaselineFit
    held_out: tuple[int, ...] = ()
    sampler: SamplerSettings = field(default_factory=SamplerSettings)
    eff_map: EffectiveMap | None = None  # effective-LR fits only: eff_lr = f(lr, N, D)
    data: ModelData | None = None  # the arrays the posterior was sampled from

    @property
    def posterior(self):
        """The posterior group of `tree` (dims chain, draw, ...)."""
        return self.tree["posterior"]

    def fitted_cells(self) -> np.ndarray:
        """Cells whose runs entered the likelihood.

        Returns
        -------
        numpy.ndarray
            Cell ids of ``table.cells`` that are not in `held_out`, in table order.
        """
        return np.array([c for c in self.table.cells.index if c not in set(self.held_out)])

    def z_range(self) -> dict[str, tuple[float, float]]:
        """The standardized range of the fitted cells along N and D.

        Returns
        -------
        dict
            ``{"N": (z_min, z_max), "D": (z_min, z_max)}`` over `fitted_cells`, in the units of
            `std` (a prediction compares its target's z with these to say how far it extrapolates).
        """
        cells = self.table.cells.loc[self.fitted_cells()]
        out = {}
        for axis, col in (("N", "n_params"), ("D", "n_tokens")):
            z = self.std.z(axis, cells[col].to_numpy(dtype=float))
            out[axis] = (float(z.min()), float(z.max()))
        return out

    def predict(self, n_params: float, n_tokens: float, prob: float = 0.9, seed: int = 0,
                batch_size: float | None = None):
        """Credible interval and decision for the optimal LR at a target scale.

        The same as `scalefit.fit.predict.predict` with this fit.

        Parameters
        ----------
        n_params : float
            Target model size N (the table's N column, e.g. non-embedding parameters).
        n_tokens : float
            Target training tokens D.
        prob : float, default 0.9
            Probability of the headline interval (``lr_low``, ``lr_high``), in (0, 1).
        seed : int, default 0
            Seed of the target's new-cell random effects; the same seed gives the same answer.
        batch_size : float, optional
            Tokens per step at the target. Needed when the law depends on batch size; otherwise
            it may only repeat the fitted table's single batch size.

        Returns
        -------
        scalefit.fit.predict.Prediction
            Median, intervals, recommended LR and curvature evidence, as the nominal LR to set.

        Raises
        ------
        ValueError
            When `prob` is outside (0, 1), `n_params` or `n_tokens` is not positive, the batch
            size does not fit the law, or an effective-LR fit's map cannot be inverted at the target.
        """
        from scalefit.fit.predict import predict

        return predict(self, n_params, n_tokens, prob=prob, seed=seed, batch_size=batch_size)

    def save(self, path) -> None:
        """Write this fit to a netCDF fit file (atomically; see `scalefit.fit.io.save_fit`).

        Parameters
        ----------
        path : str or os.PathLike
            Destination file, conventionally ``*.nc``.
        """
        save_fit(self, path)

    @classmethod
    def load(cls, path) -> "Fit":
        """Read a fit file written by `save` (or ``scalefit fit -o``).

        The runs table, config, standardization, posterior and sampler settings are read from the
        file; the model data, the baseline and the effective-LR map are rebuilt from them, so
        predictions match the fit that was saved.

        Parameters
        ----------
        path : str or os.PathLike
            A fit file.

        Returns
        -------
        Fit

        Raises
        ------
        FileNotFoundError
            When `path` does not exist.
        ValueError
            When `path` is not a scalefit fit file.
        """
        parts = read_fit(path)
        table, config, std, held_out = parts["table"], parts["config"], parts["std"], parts["held_out"]
        # The stored standardization's sds, so the rebuilt arrays are the ones that were sampled
        # even for a fit made with a z_scale override.
        z_scale = {a: sd for a, sd in (("N", std.log_n_sd), ("D", std.log_d_sd), ("B", std.log_b_sd)) if sd > 0}
        data = prepare(table.runs, table.cells, config, held_out=held_out, z_scale=z_scale)
        return cls(**parts, baseline=fit_baseline(table.runs, table.cells, config, held_out=held_out),
                   eff_map=effective_map(table, config, std, held_out), data=data)


def fit_runs(table: RunsTable, config: ModelConfig = ModelConfig(),
             settings: SamplerSettings = SamplerSettings(), held_out=(), z_scale: dict | None = None) -> Fit:
    """Sample the model's posterior for a runs table.

    Parameters
    ----------
    table : scalefit.runs.table.RunsTable
        The runs table to fit (from `scalefit.load_runs`).
    config : scalefit.model.config.ModelConfig, default ModelConfig()
        The model: valley shape, law and its axis (N, D or ND), LR space (nominal or
        effective), run window, priors.
    settings : scalefit.inference.sampling.SamplerSettings, default SamplerSettings()
        Sampler, chains, draws, stopping rule and seed.
    held_out : iterable of int, default ()
        Cell ids that keep their place in the model but contribute no data (a backtest predicts
        them from the rest).
    z_scale : dict, optional
        Overrides the standardization's sd per axis (``{"N": sd, "D": sd, "B": sd}``, in ln
        units). The posterior in natural units does not depend on it; the sampler's geometry does.

    Returns
    -------
    Fit
        The posterior with its convergence summary, the baseline point fit and, for
        effective-LR fits, the eff_lr map.

    Raises
    ------
    ValueError
        When the table cannot carry the configured model (e.g. fewer than 2 cells with usable
        runs, or fewer than 3 for a quadratic law), or the sampler settings are invalid.

    Examples
    --------
    >>> from scalefit import load_runs, ModelConfig, SamplerSettings, fit_runs
    >>> table = load_runs("data/cpu_ladder_v1/runs.csv", where={"optimizer": "adamw"})  # doctest: +SKIP
    >>> fit = fit_runs(table, ModelConfig(axis="ND"), SamplerSettings(chains=4, seed=1))  # doctest: +SKIP
    >>> fit.predict(n_params=2e6, n_tokens=4e6).lr_median  # doctest: +SKIP
    """
    held_out = tuple(int(c) for c in held_out)
    data = prepare(table.runs, table.cells, config, held_out=held_out, z_scale=z_scale)
    tree = sample(data, config, settings)
    return Fit(
        config=config, table=table, std=data.std, tree=tree, convergence=convergence(tree),
        baseline=fit_baseline(table.runs, table.cells, config, held_out=held_out),
        held_out=held_out, sampler=settings, eff_map=effective_map(table, config, data.std, held_out), data=data,
    )


def load_fit(path) -> Fit:
    """Read a fit file written by `Fit.save` (or ``scalefit fit -o``); the same as `Fit.load`.

    Parameters
    ----------
    path : str or os.PathLike
        A fit file (netCDF).

    Returns
    -------
    Fit
        The stored fit, ready to `Fit.predict`; its predictions match the fit that was saved.

    Raises
    ------
    FileNotFoundError
        When `path` does not exist.
    ValueError
        When `path` is not a scalefit fit file.

    Examples
    --------
    >>> from scalefit import load_fit
    >>> fit = load_fit("fit.nc")  # doctest: +SKIP
    >>> print(fit.predict(n_params=1.3e8, n_tokens=4e8).lr_median)  # doctest: +SKIP
    """
    return Fit.load(path)


def effective_map(table: RunsTable, config: ModelConfig, std, held_out=()) -> EffectiveMap | None:
    """The eff_lr map of an effective-LR fit (fitted on the same non-held-out runs); None otherwise."""
    return fit_effective_map(table.runs, std, held_out) if config.lr_kind == "effective" else None
