"""scalefit: which learning rate to use at a scale you cannot afford to sweep, with a credible interval.

The pipeline runs one way, one subpackage per floor: `scalefit.runs` (the runs table) ->
`scalefit.model` (the PyMC model) -> `scalefit.inference` (sampling) -> `scalefit.fit` (a fitted
model: predict, save, load) -> `scalefit.evaluation` and `scalefit.design` (backtests,
calibration, comparison; what to sweep next) -> `scalefit.report` -> `scalefit.cli`. The runner
side is `scalefit.grids` (torch-free specs and the run store) and `scalefit.train` (torch).

The names below load on first use, so ``import scalefit`` stays fast.

Examples
--------
>>> from scalefit import load_runs, ModelConfig, fit_runs
>>> table = load_runs("data/cpu_ladder_v1/runs.csv", where={"optimizer": "adamw"})  # doctest: +SKIP
>>> fit = fit_runs(table, ModelConfig(axis="ND"))  # doctest: +SKIP
>>> fit.predict(n_params=2e6, n_tokens=4e6).lr_median  # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__version__ = "0.1.0"

_EXPORTS = {
    "load_runs": "scalefit.runs.table",
    "RunsTable": "scalefit.runs.table",
    "RunsTableError": "scalefit.runs.table",
    "ModelConfig": "scalefit.model.config",
    "SamplerSettings": "scalefit.inference.sampling",
    "fit_runs": "scalefit.fit.core",
    "load_fit": "scalefit.fit.core",
    "Fit": "scalefit.fit.core",
    "Prediction": "scalefit.fit.predict",
}

__all__ = ["load_runs", "RunsTable", "RunsTableError", "ModelConfig", "SamplerSettings", "fit_runs", "load_fit",
           "Fit", "Prediction"]
assert set(__all__) == set(_EXPORTS)

if TYPE_CHECKING:  # for type checkers and documentation tools; at run time the names load lazily
    from scalefit.fit.core import Fit, fit_runs, load_fit
    from scalefit.fit.predict import Prediction
    from scalefit.inference.sampling import SamplerSettings
    from scalefit.model.config import ModelConfig
    from scalefit.runs.table import RunsTable, RunsTableError, load_runs


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'scalefit' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
