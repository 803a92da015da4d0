"""One object for a fitted model: runs table + config + posterior, with predict/save/load.

    table = load_runs("runs.csv")
    fit = fit_runs(table, ModelConfig(axis="N"))
    fit.predict(n_params=1e9, n_tokens=2e10).lr_median
    fit.save("fit.nc"); Fit.load("fit.nc")
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
        return self.tree["posterior"]

    def fitted_cells(self) -> np.ndarray:
        """Cells whose runs entered the likelihood."""
        return np.array([c for c in self.table.cells.index if c not in set(self.held_out)])

    def z_range(self) -> dict[str, tuple[float, float]]:
        cells = self.table.cells.loc[self.fitted_cells()]
        out = {}
        for axis, col in (("N", "n_params"), ("D", "n_tokens")):
            z = self.std.z(axis, cells[col].to_numpy(dtype=float))
            out[axis] = (float(z.min()), float(z.max()))
        return out

    def predict(self, n_params: float, n_tokens: float, prob: float = 0.9, seed: int = 0,
                batch_size: float | None = None):
        from scalefit.fit.predict import predict

        return predict(self, n_params, n_tokens, prob=prob, seed=seed, batch_size=batch_size)

    def save(self, path) -> None:
        save_fit(self, path)

    @classmethod
    def load(cls, path) -> "Fit":
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
    """Sample the posterior for `table` (cells in `held_out` keep their place but no data).
    `z_scale` overrides the internal standardization's sd per axis (the posterior in natural
    units does not depend on it)."""
    held_out = tuple(int(c) for c in held_out)
    data = prepare(table.runs, table.cells, config, held_out=held_out, z_scale=z_scale)
    tree = sample(data, config, settings)
    return Fit(
        config=config, table=table, std=data.std, tree=tree, convergence=convergence(tree),
        baseline=fit_baseline(table.runs, table.cells, config, held_out=held_out),
        held_out=held_out, sampler=settings, eff_map=effective_map(table, config, data.std, held_out), data=data,
    )


def load_fit(path) -> Fit:
    """Read a fit file written by `Fit.save` (or ``scalefit fit -o``); the same as `Fit.load`."""
    return Fit.load(path)


def effective_map(table: RunsTable, config: ModelConfig, std, held_out=()) -> EffectiveMap | None:
    return fit_effective_map(table.runs, std, held_out) if config.lr_kind == "effective" else None
