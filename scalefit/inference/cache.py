"""Where compiled models live: PyTensor's compile directory, inside scalefit's cache folder.

The folder is ``$SCALEFIT_CACHE`` (default ``~/.cache/scalefit``). Importing
`scalefit.inference` points PyTensor at it, so nobody has to; PyTensor reads the setting once,
when it is first imported, so a different folder must be chosen before that.
"""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path

__all__ = ["use_compile_cache"]

_KEY = "base_compiledir"
_ours: str | None = None  # the PYTENSOR_FLAGS entry this module wrote, so a later call may replace it


def use_compile_cache(directory: str | os.PathLike | None = None) -> Path:
    """Point PyTensor's compile cache at ``<directory>/pytensor``.

    Parameters
    ----------
    directory : str or PathLike, optional
        The cache folder; default ``$SCALEFIT_CACHE``, else ``~/.cache/scalefit``.

    Returns
    -------
    Path
        The compile directory PyTensor uses (or will use once imported).

    Notes
    -----
    A ``base_compiledir`` the user put in ``PYTENSOR_FLAGS`` wins. Once PyTensor is imported its
    compile directory is fixed: a call that asks for another one warns and returns the one in use.

    Examples
    --------
    >>> from scalefit.inference import use_compile_cache
    >>> use_compile_cache("/tmp/scalefit-cache")  # doctest: +SKIP
    PosixPath('/tmp/scalefit-cache/pytensor')
    """
    global _ours
    directory = Path(directory or os.environ.get("SCALEFIT_CACHE") or Path.home() / ".cache" / "scalefit")
    wanted = directory / "pytensor"
    if "pytensor" in sys.modules:
        current = Path(sys.modules["pytensor"].config.base_compiledir)
        if current != wanted:
            warnings.warn(f"PyTensor was imported before scalefit chose its compile cache; compiled models "
                          f"go to {current}, not {wanted}", stacklevel=2)
        return current
    flags = [f for f in os.environ.get("PYTENSOR_FLAGS", "").split(",") if f and f != _ours]
    if any(f.split("=", 1)[0].strip() == _KEY for f in flags):
        return Path(next(f for f in flags if f.split("=", 1)[0].strip() == _KEY).split("=", 1)[1])
    wanted.mkdir(parents=True, exist_ok=True)
    _ours = f"{_KEY}={wanted}"
    os.environ["PYTENSOR_FLAGS"] = ",".join(flags + [_ours])
    return wanted
