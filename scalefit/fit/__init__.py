"""Floor 4 of the pipeline: a fitted model.

spec -> runner -> result files -> runs table -> model -> inference -> **fit** ->
evaluation/design -> report -> CLI. `fit_runs` samples the posterior of a runs table and
returns a `Fit` (runs table, config, posterior, convergence, the two-stage baseline and, for
effective-LR fits, the eff_lr map); `Fit.predict` answers for a target scale with a
`Prediction`; `save_fit` and `load_fit` write and read fit files (netCDF).

The function behind `Fit.predict` is `scalefit.fit.predict.predict`. It is not re-exported
here: the name would shadow the `scalefit.fit.predict` module.
"""

from scalefit.fit.core import Fit, fit_runs, load_fit
from scalefit.fit.io import save_fit
from scalefit.fit.predict import Prediction

__all__ = ["Fit", "fit_runs", "load_fit", "save_fit", "Prediction"]
