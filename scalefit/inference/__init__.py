"""Floor 3 of the pipeline: sampling the model's posterior, its diagnostics and the compiled-model
cache.

The pipeline runs spec -> runner -> result files -> runs table -> model -> **inference** -> fit ->
evaluation/design -> report -> CLI. This floor draws from the PyMC model of `scalefit.model`
with nutpie or PyMC (`scalefit.inference.sampling`: settings, attempt order, stopping rule,
convergence), computes r_hat and ESS fast enough to check at every checkpoint
(`scalefit.inference.diagnostics`), keeps compiled models across processes
(`scalefit.inference.compiled`, `scalefit.inference.cache`) and imports nutpie without ArviZ's
heavy stacks (`scalefit.inference.backend`). It imports only `scalefit.model` and
`scalefit.runs`.

Importing it points PyTensor's compile cache at scalefit's folder (`use_compile_cache`), before
anything can import PyTensor, which reads the setting only once.

Examples
--------
>>> from scalefit.inference import SamplerSettings, sample, convergence
>>> tree = sample(data, config, SamplerSettings(chains=4))  # doctest: +SKIP
>>> convergence(tree).converged  # doctest: +SKIP
True
"""

from scalefit.inference.cache import use_compile_cache

use_compile_cache()

from scalefit.inference.diagnostics import ess_bulk, ess_tail, rhat  # noqa: E402
from scalefit.inference.sampling import Convergence, SamplerSettings, convergence, sample  # noqa: E402

__all__ = ["SamplerSettings", "sample", "Convergence", "convergence", "rhat", "ess_bulk", "ess_tail",
           "use_compile_cache"]
