"""A suggestion as a runnable one-file grid spec for the runner (``runners/train_grid.py``).

The shared settings (batch, schedule, optimizer constants, data, cadences, LR lattice) come from
the spec that collected the fitted grid, so the new runs continue the same recipe; each proposed
cell becomes one [[sweep]] with its own lattice window.

Examples
--------
>>> from scalefit.design.spec_writer import write_spec
>>> write_spec(suggestion, "runners/grids/next.toml", base_spec="runners/grids/base.toml",
...            optimizer="adamw", weight_decay=0.1)  # doctest: +SKIP
"""

from __future__ import annotations

import os
from pathlib import Path

from scalefit.grids.spec import SWEEP_KEYS, find_ladder, load_spec

__all__ = ["write_spec", "spec_dict"]

EXTEND = {"max": 3, "cliff": 0.1}  # the runner's bracket extension for each proposed sweep
SHARED_KEYS = ("ladder", "batch_size", "seq_len", "order", "lr_lattice", "schedule", "optim", "data", "run")


def spec_dict(suggestion, base_spec: str | os.PathLike, optimizer: str, weight_decay: float,
              out_path: str | os.PathLike, ladder: str | os.PathLike | None = None, name: str | None = None) -> dict:
    """The TOML tables of the new spec (see the module doc).

    Parameters
    ----------
    suggestion : scalefit.design.suggest.Suggestion
        From `scalefit.design.suggest.suggest` with ladder candidates.
    base_spec : str or os.PathLike
        The grid spec that collected the fitted runs: its recipe is copied.
    optimizer : str
        Optimizer of the new sweeps.
    weight_decay : float
        Weight decay of the new sweeps.
    out_path : str or os.PathLike
        Where the spec will be written (the ladder is referenced relative to it).
    ladder : str or os.PathLike, optional
        The ladder file (default: the one `base_spec` names).
    name : str, optional
        The spec's name (default: the base spec's name + "_suggested").

    Returns
    -------
    dict

    Raises
    ------
    ValueError
        When a proposal has no ladder size.
    """
    import tomllib

    base_path = Path(base_spec)
    base = tomllib.loads(base_path.read_text())
    out_path = Path(out_path)
    raw = {k: base[k] for k in SHARED_KEYS if k in base}
    raw["name"] = name or f"{base.get('name', base_path.stem)}_suggested"
    raw["description"] = (f"scalefit suggest: {len(suggestion.proposals)} cells for the target N={suggestion.n_params:.4g} "
                          f"D={suggestion.n_tokens:.4g}; expected 90% width {suggestion.width_now:.2f} -> "
                          f"{suggestion.width_after:.2f} decades for {suggestion.flops:.3g} FLOPs")
    ladder_file = Path(ladder) if ladder else find_ladder(str(base["ladder"]), base_path)
    raw["ladder"] = _ladder_ref(ladder_file.resolve(), out_path)
    raw["lr_lattice"] = dict(suggestion.lattice)
    raw["order"] = "large_first"
    for k in SWEEP_KEYS:
        raw.pop(k, None)
    raw["sweep"] = []
    for i, p in enumerate(suggestion.proposals, 1):
        if p.size is None:
            raise ValueError("the suggestion has no ladder sizes; suggest with a ladder to write a spec")
        raw["sweep"].append({
            "name": f"suggest{i}_{p.size}_{p.n_tokens:.3g}".replace("+", ""),
            "priority": len(suggestion.proposals) - i,  # the best cell runs first
            "optimizer": optimizer, "weight_decay": weight_decay, "sizes": [p.size],
            "seeds": list(range(p.seeds)), "tokens": {"absolute": [float(p.n_tokens)]},
            "lr": {"k": [int(p.k_range[0]), int(p.k_range[1])]},
            # the window is centred on a prediction, which can miss: let the runner widen it if
            # the best LR lands on an edge
            "extend": dict(EXTEND),
        })
    return raw


def _ladder_ref(ladder_file: Path, out_path: Path) -> str:
    """A bare ladder name when the runners will find it from the new spec's place, else a path."""
    try:
        if find_ladder(ladder_file.stem, out_path).resolve() == ladder_file:
            return ladder_file.stem
    except ValueError:
        pass
    return str(ladder_file)


def write_spec(suggestion, out_path, **kwargs) -> Path:
    """Write the spec (atomically) and check that it parses and plans the proposed cells.

    Parameters
    ----------
    suggestion : scalefit.design.suggest.Suggestion
        From `scalefit.design.suggest.suggest` with ladder candidates.
    out_path : str or os.PathLike
        The TOML file to write.
    **kwargs
        ``base_spec``, ``optimizer``, ``weight_decay`` and optionally ``ladder`` and ``name``,
        as for `spec_dict`.

    Returns
    -------
    pathlib.Path
        `out_path`.

    Raises
    ------
    ValueError
        When a proposal has no ladder size, or the written spec does not load (nothing is
        left behind then).
    """
    import tomli_w

    out_path = Path(out_path)
    raw = spec_dict(suggestion, out_path=out_path, **kwargs)
    tmp = out_path.with_name(f".{out_path.name}.tmp{os.getpid()}")
    header = ("# Written by `scalefit suggest`: the cells expected to shrink the target's interval most per FLOP.\n"
              f"#   scalefit grid plan {out_path.name} --out DIR\n"
              f"#   accelerate launch runners/train_grid.py {out_path.name} --out DIR\n")
    tmp.write_text(header + tomli_w.dumps(raw))
    try:
        load_spec(tmp)
    except ValueError:
        tmp.unlink()
        raise
    os.replace(tmp, out_path)
    return out_path
