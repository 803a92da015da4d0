"""Fit files: one netCDF (xarray DataTree) per fit, no pickle.

Groups: posterior, sample_stats, observed_data, constant_data (the model's arrays), runs (the
runs table, one row per run). Root attributes hold the model config, the standardization,
the sampler settings, the convergence summary and the held-out cells, all as JSON. Reading
returns the stored parts; `scalefit.fit.core.Fit.load` rebuilds the runs table, the model data
and the baseline from them, so `predict` on a loaded fit gives the numbers the original fit gave.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

import scalefit
from scalefit.inference.sampling import Convergence, SamplerSettings
from scalefit.model.config import ModelConfig
from scalefit.model.data import prepare
from scalefit.model.standardize import Standardization
from scalefit.runs.table import load_runs

__all__ = ["save_fit", "read_fit", "FORMAT"]

FORMAT = "scalefit-fit/1"  # the root attribute "format"; read_fit refuses any other


def _table_to_dataset(frame: pd.DataFrame) -> xr.Dataset:
    """netCDF has no nullable strings: text columns store missing as "" and say so."""
    data = {}
    for name, col in frame.items():
        if pd.api.types.is_bool_dtype(col):
            data[name] = xr.Variable("run", col.to_numpy(dtype=np.int8), {"scalefit_dtype": "bool"})
        elif pd.api.types.is_numeric_dtype(col):
            data[name] = xr.Variable("run", col.to_numpy(dtype=float if col.isna().any() else col.dtype))
        else:
            text = np.array(["" if pd.isna(v) else str(v) for v in col], dtype=object)
            data[name] = xr.Variable("run", text.astype(str), {"scalefit_dtype": "text"})
    return xr.Dataset(data)


def _dataset_to_table(ds: xr.Dataset) -> pd.DataFrame:
    columns = {}
    for name, var in ds.data_vars.items():
        kind = var.attrs.get("scalefit_dtype")
        values = var.values
        if kind == "bool":
            columns[name] = values.astype(bool)
        elif kind == "text":
            columns[name] = pd.Series([None if v == "" else str(v) for v in values], dtype=object)
        else:
            columns[name] = values
    return pd.DataFrame(columns)


def save_fit(fit, path) -> None:
    """Write a fit to a netCDF fit file, atomically.

    Parameters
    ----------
    fit : scalefit.fit.core.Fit
        The fit to write (its runs table, model data, posterior and settings).
    path : str or os.PathLike
        Destination; written to a temporary name and renamed, so a crash never leaves half a
        fit under `path`.

    Examples
    --------
    >>> save_fit(fit, "fit.nc")  # doctest: +SKIP
    """
    path = Path(path)
    data = fit.data if fit.data is not None else prepare(fit.table.runs, fit.table.cells, fit.config,
                                                         held_out=fit.held_out)
    arrays = data.arrays()
    observed = {k: arrays.pop(k) for k in ("y_obs", "threshold_cens")}
    tree = xr.DataTree.from_dict({
        "posterior": fit.tree["posterior"].to_dataset(),
        "sample_stats": _numeric_only(fit.tree["sample_stats"].to_dataset()),
        "observed_data": xr.Dataset({k: (f"{k}_dim", v) for k, v in observed.items()}),
        "constant_data": xr.Dataset({k: (_dims(k, np.ndim(v)), v) for k, v in arrays.items()}),
        "runs": _table_to_dataset(fit.table.to_frame()),
    })
    tree.attrs = {
        "format": FORMAT,
        "scalefit_version": scalefit.__version__,
        "model_config": fit.config.to_json(),
        "standardization": fit.std.to_json(),
        "sampler": json.dumps(dataclasses.asdict(fit.sampler)),
        "convergence": json.dumps(fit.convergence.to_dict() if fit.convergence else None),
        "held_out": json.dumps(list(fit.held_out)),
        "table_options": json.dumps({"cell_by": list(fit.table.cell_by), "source": fit.table.source}),
        **{k: fit.tree.attrs[k] for k in ("target_accept", "retried_after_divergences", "optima_noncentred",
                                          "walk_centring", "attempts", "draws_kept", "compile_s", "sampling_s")
           if k in fit.tree.attrs},
    }
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tree.to_netcdf(tmp, engine="h5netcdf")
    os.replace(tmp, path)


def _dims(name: str, ndim: int) -> tuple[str, ...]:
    return ((f"{name}_dim",) if ndim == 1 else tuple(f"{name}_dim_{i}" for i in range(ndim)))


def _numeric_only(ds: xr.Dataset) -> xr.Dataset:
    """nutpie adds text diagnostics (divergence messages); keep the numbers."""
    return ds[[k for k, v in ds.data_vars.items() if v.dtype.kind in "biuf"]]


def read_fit(path) -> dict:
    """Read a fit file's parts into memory (the file is closed afterwards).

    Parameters
    ----------
    path : str or os.PathLike
        A file written by `save_fit` (``scalefit fit -o``).

    Returns
    -------
    dict
        ``config``, ``table``, ``std``, ``tree``, ``convergence``, ``held_out`` and ``sampler``:
        the keyword arguments of `scalefit.fit.core.Fit` that are stored, not derived.

    Raises
    ------
    FileNotFoundError
        When `path` does not exist.
    ValueError
        When `path` is not a scalefit fit file.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: fit file not found")
    with xr.open_datatree(path, engine="h5netcdf") as tree:
        tree = tree.load()
    attrs = tree.attrs
    if attrs.get("format") != FORMAT:
        raise ValueError(f"{path}: not a scalefit fit file (format {attrs.get('format')!r}, expected {FORMAT!r})")
    options = json.loads(attrs["table_options"])
    frame = _dataset_to_table(tree["runs"].to_dataset())
    table = load_runs(frame, cell_by=tuple(options["cell_by"]), min_lrs=0)
    table.source = options["source"]
    conv = json.loads(attrs["convergence"])
    if conv is not None:
        conv.pop("converged", None)
        conv = Convergence(**conv)
    return {
        "config": ModelConfig.from_json(attrs["model_config"]), "table": table,
        "std": Standardization.from_json(attrs["standardization"]), "tree": tree, "convergence": conv,
        "held_out": tuple(json.loads(attrs["held_out"])),
        "sampler": SamplerSettings(**json.loads(attrs["sampler"])),
    }
