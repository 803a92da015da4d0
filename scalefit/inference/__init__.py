"""Floor 3 of the pipeline: sampling the model's posterior (nutpie or PyMC), its diagnostics and
the cache of compiled models. Importing it points PyTensor's compile cache at scalefit's folder
(`scalefit.inference.cache`)."""

from scalefit.inference.cache import use_compile_cache

use_compile_cache()

__all__ = ["use_compile_cache"]
