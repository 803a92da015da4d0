"""The recipe a fit's runs were trained with: which grid spec and ladder to continue, the
candidate sizes they offer, and the one optimizer and weight decay a new spec must keep.

`scalefit suggest` reads the recipe from the fitted runs table (its ``grid`` and ``ladder``
columns name the files) unless the user names the files.
"""

from __future__ import annotations

import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from scalefit.design.suggest import Candidate, candidates_from_ladder
from scalefit.grids.spec import find_ladder, load_ladder

__all__ = ["Recipe", "find_recipe", "recorded_value"]

GRIDS_FOLDER = "runners/grids"  # where a recorded grid name is looked up, relative to the working folder
LADDERS_FOLDER = "models"


def recorded_value(fit, column: str) -> str | None:
    """The value every fitted run shares in `column` (e.g. the grid it was trained with).

    Parameters
    ----------
    fit : scalefit.fit.core.Fit
        The fit whose runs are read.
    column : str
        A runs-table column.

    Returns
    -------
    str or None
        The one value, or None when the column is absent or the fitted runs disagree.
    """
    runs = fit.table.runs
    if column not in runs:
        return None
    values = runs.loc[runs["cell"].isin(fit.fitted_cells()), column].dropna().astype(str).unique()
    return values[0] if len(values) == 1 else None


def _find(path: Path | None, recorded: str | None, folder: str, what: str, flag: str) -> Path | None:
    """An explicit path, else the file the fitted table names (``folder/<name>.toml``), else None."""
    if path is not None:
        if not path.is_file():
            raise FileNotFoundError(f"{flag} {path}: {what} not found")
        return path
    if recorded and (Path(folder) / f"{recorded}.toml").is_file():
        print(f"{what}: {folder}/{recorded}.toml (recorded in the fitted runs; pass {flag} to choose)", file=sys.stderr)
        return Path(folder) / f"{recorded}.toml"
    return None


@dataclass(frozen=True)
class Recipe:
    """What a new grid spec continues from.

    Attributes
    ----------
    spec_path : Path or None
        The grid spec that trained the fitted runs.
    ladder_path : Path or None
        The ladder of model sizes.
    base : dict
        The spec's parsed TOML (empty without a spec).
    """

    spec_path: Path | None
    ladder_path: Path | None
    base: dict = field(default_factory=dict)

    @property
    def lattice(self) -> dict | None:
        """The spec's LR lattice (``lr_lattice``), so suggested LRs land on trained ones."""
        return self.base.get("lr_lattice")

    def candidates(self, tokens) -> list[Candidate] | None:
        """Candidate cells: every ladder size at each of `tokens`; None without a ladder.

        Parameters
        ----------
        tokens : sequence of float
            Token budgets to offer.

        Returns
        -------
        list of Candidate or None
        """
        if self.ladder_path is None:
            return None
        data = self.base.get("data", {})
        vocab = int(data.get("vocab_size") or (50304 if data.get("kind") == "tokens" else 256))
        return candidates_from_ladder(load_ladder(self.ladder_path), tokens, vocab_size=vocab,
                                      seq_len=self.base.get("seq_len"))

    def continuation(self, fit) -> tuple[str, float]:
        """The optimizer and weight decay a new spec must keep: those of the fitted runs.

        Parameters
        ----------
        fit : scalefit.fit.core.Fit

        Returns
        -------
        tuple of (str, float)

        Raises
        ------
        ValueError
            When the spec or ladder is unknown, or the fitted runs mix weight decays.
        """
        if self.spec_path is None or self.ladder_path is None:
            raise ValueError("-o needs the recipe to continue: pass --spec (the grid spec that collected the "
                             "fitted runs) and --ladder; the fitted table names neither")
        runs = fit.table.runs
        optimizer = recorded_value(fit, "optimizer") or "adamw"
        wd = runs.loc[runs["cell"].isin(fit.fitted_cells()), "weight_decay"].dropna().unique() \
            if "weight_decay" in runs else np.array([])
        if len(wd) > 1:
            raise ValueError(f"the fitted runs mix weight decays {sorted(wd)}; fit one recipe to continue it")
        return optimizer, float(wd[0]) if len(wd) else 0.1


def find_recipe(fit, spec: Path | None = None, ladder: Path | None = None) -> Recipe:
    """The grid spec and ladder to continue: the given files, else those the fitted runs record.

    Parameters
    ----------
    fit : scalefit.fit.core.Fit
        The fit to continue.
    spec, ladder : Path, optional
        Explicit files (``--spec``, ``--ladder``); a missing file is an error.

    Returns
    -------
    Recipe

    Raises
    ------
    FileNotFoundError
        When an explicit file does not exist.
    """
    spec_path = _find(spec, recorded_value(fit, "grid"), GRIDS_FOLDER, "base spec", "--spec")
    ladder_path = _find(ladder, recorded_value(fit, "ladder"), LADDERS_FOLDER, "ladder", "--ladder")
    base = tomllib.loads(spec_path.read_text()) if spec_path else {}
    if ladder_path is None and spec_path is not None:
        ladder_path = find_ladder(str(base["ladder"]), spec_path)
    return Recipe(spec_path, ladder_path, base)
