"""Floor 2 of the pipeline: the statistical model, from a runs table to a PyMC model.

The pipeline runs spec -> runner -> result files -> runs table -> **model** -> inference -> fit ->
evaluation/design -> report -> CLI. This floor holds the settings and priors
(`scalefit.model.config`), the standardized units (`scalefit.model.standardize`), which runs enter
and the model's arrays (`scalefit.model.data`), the optimal-LR law and its discrepancy walk
(`scalefit.model.law`), the valley shapes (`scalefit.model.valley`), the cells' centring
(`scalefit.model.centring`) and the PyMC graph (`scalefit.model.graph`). It imports only
`scalefit.runs`; PyMC itself loads only when a model is built. The model page, docs/model.md,
describes the model in prose.

Examples
--------
>>> from scalefit.model import ModelConfig, prepare, build_model
>>> from scalefit.runs import load_runs
>>> table, config = load_runs("runs.csv"), ModelConfig(axis="ND")  # doctest: +SKIP
>>> model = build_model(prepare(table.runs, table.cells, config), config)  # doctest: +SKIP
"""

from scalefit.model.config import ModelConfig, default_priors
from scalefit.model.data import ModelData, prepare, run_weights
from scalefit.model.graph import build_model, initial_values
from scalefit.model.standardize import Standardization

__all__ = ["ModelConfig", "default_priors", "Standardization", "ModelData", "prepare", "run_weights",
           "build_model", "initial_values"]
