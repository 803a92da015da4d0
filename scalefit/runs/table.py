"""The runs table: one row per training run, the contract between data collection and fitting.

Columns and their meaning are defined in `scalefit.runs.schema`. This module reads a table (CSV, TSV
or Parquet), filters it, validates it (every problem names file, row and column and says how to fix
it), groups runs into scale cells and offers an xarray view for the model. See the model page,
docs/model.md, "The runs table".
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from scalefit.runs.schema import NUMERIC_COLUMNS as _NUMERIC
from scalefit.runs.schema import POSITIVE_COLUMNS as _POSITIVE
from scalefit.runs.schema import POSITIVE_IF_SET_COLUMNS as _POSITIVE_IF_SET
from scalefit.runs.schema import REQUIRED_COLUMNS, STATUSES

__all__ = ["Problem", "RunsTableError", "read_table", "validate", "load_runs", "batch_swept", "RunsTable"]

_HELPERS = ("log_lr", "log_eff_lr")                   # derived columns, not saved by to_frame
_MAX_SHOWN = 20


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a runs table, with where it is and how to fix it.

    ``str(problem)`` reads "file, row R, column 'C': message".

    Attributes
    ----------
    file : str
        The table's path, or ``"<dataframe>"`` / ``"<table>"`` for an in-memory table.
    row : int or None
        The 1-based data row (header excluded); None for a problem of the whole table or a cell.
    column : str or None
        The column at fault; None when no single column is.
    message : str
        What is wrong and how to fix it.
    """
    file: str
    row: int | None
    column: str | None
    message: str

    def __str__(self) -> str:
        where = [self.file]
        if self.row is not None:
            where.append(f"row {self.row}")
        if self.column is not None:
            where.append(f"column '{self.column}'")
        return f"{', '.join(where)}: {self.message}"


class RunsTableError(ValueError):
    """A runs table could not be read or is invalid.

    The message lists the problems (the first 20, then a count).

    Parameters
    ----------
    problems : list of Problem
        Every problem found.

    Attributes
    ----------
    problems : list of Problem
        Every problem found, not only those shown in the message.
    """

    def __init__(self, problems: list[Problem]):
        self.problems = list(problems)
        n = len(self.problems)
        lines = [f"{n} problem{'s' if n != 1 else ''} in runs table "
                 f"{self.problems[0].file if n else ''}:"]
        lines += [f"  - {p}" for p in self.problems[:_MAX_SHOWN]]
        if n > _MAX_SHOWN:
            lines.append(f"  ... and {n - _MAX_SHOWN} more")
        super().__init__("\n".join(lines))


# ----------------------------------------------------------------------------------------------- IO

def read_table(path) -> pd.DataFrame:
    """Read a CSV, TSV or Parquet runs table (chosen by suffix), as it is, plus a "row" column.

    An existing "row" column is replaced: row numbers always refer to the file being read, so
    that every problem can name the line to fix. Nothing is validated or normalized here.

    Parameters
    ----------
    path : str or PathLike
        A ``.csv``, ``.tsv``, ``.parquet`` or ``.pq`` file.

    Returns
    -------
    pandas.DataFrame
        The file's columns (names stripped of spaces) and "row", the 1-based data row.

    Raises
    ------
    RunsTableError
        If the suffix is unknown, the file does not exist or it cannot be parsed.
    """
    path = Path(path)
    name = str(path)
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".tsv", ".parquet", ".pq"):
        raise RunsTableError([Problem(name, None, None, f"unknown file type '{path.suffix}'; "
                                      "use .csv, .tsv, .parquet or .pq")])
    if not path.is_file():
        raise RunsTableError([Problem(name, None, None, "file not found")])
    try:
        if suffix in (".parquet", ".pq"):
            df = pd.read_parquet(path)
        else:
            df = pd.read_csv(path, sep="\t" if suffix == ".tsv" else ",", skipinitialspace=True)
    except Exception as e:  # pandas/pyarrow raise many types; all mean "cannot parse this file"
        raise RunsTableError([Problem(name, None, None,
                                      f"cannot parse file ({type(e).__name__}: {e})")]) from e
    df.columns = [str(c).strip() for c in df.columns]
    df["row"] = np.arange(1, len(df) + 1)
    return df


# --------------------------------------------------------------------------------------- helpers

def _lr_key(lr) -> np.ndarray:
    """LRs rounded to 10 significant digits, so that 0.00707106781186548 and ...476 are one LR."""
    lr = np.asarray(lr, dtype=float)
    with np.errstate(all="ignore"):
        return np.array([float(f"{x:.10g}") for x in lr]) if lr.size else lr


def _as_text(s: pd.Series) -> pd.Series:
    """Strings stripped, with empty strings as NaN (CSV cells holding only spaces are empty)."""
    return s.map(lambda x: np.nan if pd.isna(x) else (str(x).strip() or np.nan)).astype(object)


def _numeric(s: pd.Series) -> tuple[pd.Series, pd.Series]:
    """(values as float, mask of non-empty entries that are not numbers)."""
    if pd.api.types.is_numeric_dtype(s) or pd.api.types.is_bool_dtype(s):
        return s.astype(float), pd.Series(False, index=s.index)
    text = _as_text(s)
    num = pd.to_numeric(text, errors="coerce").astype(float)
    return num, text.notna() & num.isna()


def _status(df: pd.DataFrame, loss: pd.Series) -> tuple[pd.Series, pd.Series, pd.Series]:
    """(normalized status, mask of unknown values, mask of explicit status)."""
    inferred = pd.Series(np.where(np.isfinite(loss), "ok", "diverged"), index=df.index, dtype=object)
    if "status" not in df:
        false = pd.Series(False, index=df.index)
        return inferred, false, false
    text = _as_text(df["status"]).str.lower()
    explicit = text.notna()
    unknown = explicit & ~text.isin(STATUSES)
    return text.where(explicit & ~unknown, inferred), unknown, explicit


def _cell_keys(cell_by) -> list[str]:
    return ["n_params", "n_tokens", "batch_size", *cell_by]


def _prepare(df: pd.DataFrame, cell_by=()) -> tuple[pd.DataFrame, dict]:
    """Normalized copy (numerics as float, status/seed filled, "cell" ids) plus masks for validation."""
    out = df.copy()
    if "row" not in out:
        out["row"] = np.arange(1, len(out) + 1)
    bad_text = {}
    for c in _NUMERIC:
        if c in out:
            out[c], bad_text[c] = _numeric(out[c])
    status, unknown, explicit = _status(out, out["final_loss"] if "final_loss" in out
                                        else pd.Series(np.nan, index=out.index))
    out["status"] = status
    seed = out["seed"].fillna(0) if "seed" in out else pd.Series(0.0, index=out.index)
    out["seed"] = seed.astype(np.int64) if np.all(np.isfinite(seed) & (seed == np.round(seed))) else seed
    if "batch_size" not in out:
        out["batch_size"] = np.nan
    keys = [k for k in _cell_keys(cell_by) if k in out]
    out["cell"] = out.groupby(keys, sort=True, dropna=False).ngroup() if len(out) else []
    return out, {"bad_text": bad_text, "unknown_status": unknown, "explicit_status": explicit}


def _label(cell: pd.Series, cell_by=()) -> str:
    parts = [f"N={cell['n_params']:.1e}", f"D={cell['n_tokens']:.1e}"]
    if pd.notna(cell.get("batch_size")):
        parts.append(f"B={cell['batch_size']:.1e}")
    parts += [f"{c}={cell[c]}" for c in cell_by]
    return " ".join(parts)


def _show(v) -> str:
    """A cell value for messages: 'empty' for NaN/blank, plain numbers, quoted strings."""
    if isinstance(v, str):
        return repr(v) if v.strip() else "empty"
    if pd.isna(v):
        return "empty"
    return f"{v:g}" if isinstance(v, (float, np.floating)) else str(v)


def _rows(rows, limit=12) -> str:
    rows = [int(r) for r in rows]
    shown = ", ".join(map(str, rows[:limit]))
    return shown + (f", ... ({len(rows)} rows)" if len(rows) > limit else "")


def _dup_hint(df: pd.DataFrame, a: int, b: int, candidates: list[str]) -> str:
    """Say which grouping-like columns differ between duplicate rows a and b (by index)."""
    diff = [c for c in candidates if not (pd.isna(df.at[a, c]) and pd.isna(df.at[b, c]))
            and df.at[a, c] != df.at[b, c]]
    if not diff:
        return "if they are repeats, give them distinct 'seed' values; otherwise remove one"
    hint = f"the rows differ in {', '.join(repr(c) for c in diff[:5])}"
    n_like = [c for c in diff if c.startswith("n_params")]
    if n_like:
        hint += f"; if {n_like[0]!r} is the model size to fit, pass n_column={n_like[0]!r}"
    other = next((c for c in diff if not c.startswith("n_params")), None)
    if other:
        hint += (f"; if {other!r} separates sweeps, add it to cell_by or keep one value with "
                 f"where={{{other!r}: ...}} (CLI --where {other}=...)")
    return hint


# ------------------------------------------------------------------------------------ validation

def validate(df: pd.DataFrame, file: str = "<table>", *, cell_by=(), min_lrs: int = 3) -> list[Problem]:
    """Every problem in a runs table, at once; an empty list if it is valid.

    Checks the required columns, numbers, positive N, D and LR, statuses (an ok run needs a
    finite loss), effective LRs, mixed optimizers, duplicate runs (same cell, LR and seed) and
    cells with too few distinct LRs. Diverged runs are data, not problems.

    Parameters
    ----------
    df : pandas.DataFrame
        The table as read (`read_table`), before normalization.
    file : str, default "<table>"
        The name problems report.
    cell_by : tuple of str, default ()
        Extra columns that define cells, beyond N, D and batch size.
    min_lrs : int, default 3
        The fewest distinct LRs among a cell's ok runs: three are needed to locate a minimum.

    Returns
    -------
    list of Problem
        Every problem found; it never raises for bad data.

    Examples
    --------
    >>> from scalefit.runs.table import read_table, validate
    >>> for problem in validate(read_table("runs.csv"), "runs.csv"):  # doctest: +SKIP
    ...     print(problem)
    """
    df = df.reset_index(drop=True)
    P = lambda row, col, msg: Problem(file, None if row is None else int(row), col, msg)  # noqa: E731
    missing = [c for c in REQUIRED_COLUMNS if c not in df]
    problems = [P(None, None, f"missing required column(s) {', '.join(map(repr, missing))}; the table "
                f"has columns {', '.join(map(repr, (c for c in df.columns if c != 'row')))}. Rename the "
                "matching columns (or choose the size column with n_column=...)")] if missing else []
    problems += [P(None, c, f"cell_by column {c!r} is not in the table") for c in cell_by if c not in df]
    if problems:
        return problems
    if len(df) == 0:
        return [P(None, None, "the table has no data rows")]
    d, m = _prepare(df, cell_by)
    rows = d["row"]
    invalid = pd.Series(False, index=d.index)   # rows whose cell or lr is unusable

    for c, bad in m["bad_text"].items():
        for i in d.index[bad]:
            problems.append(P(rows[i], c, f"not a number (got {_show(df.at[i, c])}); write a plain number "
                              "or leave the cell empty"))
        invalid |= bad if c in _POSITIVE else False
    for c in _POSITIVE:
        v = d[c]
        if v.isna().all():
            problems.append(P(None, c, f"column is empty in all {len(d)} rows; fill it in "
                              + ("(or choose another size column with n_column=...)" if c == "n_params"
                                 else "(it is required to define the scale cells and LR grid)")))
            invalid[:] = True
            continue
        bad = ~(np.isfinite(v) & (v > 0)) & ~m["bad_text"][c]
        for i in d.index[bad]:
            problems.append(P(rows[i], c, f"must be a finite number > 0 (got {_show(df.at[i, c])}); "
                              "fix the value or remove the row"))
        invalid |= bad
    for c in _POSITIVE_IF_SET:
        if c in d:
            bad = d[c].notna() & ~(np.isfinite(d[c]) & (d[c] > 0))
            problems += [P(rows[i], c, f"must be > 0 when given (got {_show(df.at[i, c])}); fix it or leave "
                           "it empty") for i in d.index[bad]]
    for i in d.index[m["unknown_status"]]:
        problems.append(P(rows[i], "status", f"unknown status {df.at[i, 'status']!r}; use one of "
                          f"{', '.join(STATUSES)} (or leave it empty to infer it from final_loss)"))
    ok = d["status"] == "ok"
    bad = m["explicit_status"] & ok & ~np.isfinite(d["final_loss"]) & ~m["bad_text"]["final_loss"]
    for i in d.index[bad]:
        problems.append(P(rows[i], "final_loss", f"status is 'ok' but final_loss is {_show(df.at[i, 'final_loss'])}; "
                          "set status to 'diverged' (or 'failed'), or fill in the loss"))
    if "eff_lr" in d:
        bad = ok & d["eff_lr"].notna() & ~(np.isfinite(d["eff_lr"]) & (d["eff_lr"] > 0))
        problems += [P(rows[i], "eff_lr", f"must be > 0 on an ok run (got {_show(df.at[i, 'eff_lr'])}); fix it "
                       "or leave it empty") for i in d.index[bad]]

    if "optimizer" in d and "optimizer" not in cell_by:
        opts = _as_text(d["optimizer"]).str.lower().dropna().value_counts()
        if len(opts) > 1:
            first = opts.index[0]
            problems.append(P(None, "optimizer", f"the table mixes {len(opts)} optimizers ("
                              + ", ".join(f"{k}: {n} rows" for k, n in opts.items())
                              + "); optimal LRs are not comparable across optimizers. Keep one with "
                              f"where={{'optimizer': {first!r}}} (CLI --where optimizer={first}), "
                              "or add 'optimizer' to cell_by"))

    # Cell-level checks only on rows whose cell and lr are well defined.
    good = d[~invalid].copy()
    good["lr_key"] = _lr_key(good["lr"])
    labels = {c: _label(g.iloc[0], cell_by) for c, g in good.groupby("cell")}
    # Failed runs are ignored by fits, so a rerun after a failure is not a duplicate.
    live = good[good["status"] != "failed"]
    candidates = [c for c in df.columns if c not in (*REQUIRED_COLUMNS, "row", "status", "seed", "cell")
                  and "loss" not in c
                  and (c.startswith("n_params") or df[c].nunique() <= max(2, len(df) // 2))]
    for _, g in live.groupby(["cell", "lr_key", "seed"], sort=True):
        for i in g.index[1:]:
            a = g.index[0]
            problems.append(P(rows[i], "lr", f"duplicate run: same cell ({labels[d.at[i, 'cell']]}), "
                              f"lr={d.at[i, 'lr']:g} and seed={d.at[i, 'seed']} as row {rows[a]}; "
                              + _dup_hint(df, a, i, candidates)))
    for c, g in good.groupby("cell", sort=True):
        n = g.loc[g["status"] == "ok", "lr_key"].nunique()
        if n < min_lrs:
            problems.append(P(None, "lr", f"cell {labels[c]} has only {n} distinct LR(s) among its ok "
                              f"runs (rows {_rows(g['row'])}); at least {min_lrs} are needed to locate "
                              "the loss minimum. Add LR points, filter the cell out with where=..., or "
                              "load with min_lrs=0 and drop it with RunsTable.subset"))
    return problems


# --------------------------------------------------------------------------------------- loading

def _match(col: pd.Series, value, name: str, file: str) -> pd.Series:
    """Equality mask for a `where` filter, value cast to the column's dtype (CLI passes strings)."""
    try:
        if pd.api.types.is_bool_dtype(col):
            if isinstance(value, str):
                v = value.strip().lower()
                if v not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError(value)
                value = v in ("true", "1", "yes")
            return col == bool(value)
        if pd.api.types.is_numeric_dtype(col):
            return pd.Series(np.isclose(col.astype(float), float(value), rtol=1e-9, atol=0), index=col.index)
    except (TypeError, ValueError):
        raise RunsTableError([Problem(file, None, name, f"where value {value!r} does not match the "
                                      f"column's type ({col.dtype})")]) from None
    # Text columns: compare stripped, case-insensitively ("MuonH" == "muonh", "True" == True).
    return _as_text(col).str.lower() == str(value).strip().lower()


def load_runs(path_or_df, *, where: dict[str, object] | None = None, n_column: str | None = None,
              cell_by: tuple[str, ...] = (), min_lrs: int = 3, split_optimizers: bool = False) -> "RunsTable":
    """Read, filter, validate and normalize a runs table: the fitter's entry point.

    Parameters
    ----------
    path_or_df : str, PathLike or pandas.DataFrame
        A ``.csv``, ``.tsv``, ``.parquet`` or ``.pq`` file, or a DataFrame with the same columns.
    where : dict, optional
        Keep only rows whose column equals the value, per item (the value is cast to the column's
        type, so the CLI's strings work; text compares case-insensitively).
    n_column : str, optional
        The column to fit as model size N (e.g. active parameters of an MoE); the original
        ``n_params`` is kept as ``n_params_source``.
    cell_by : tuple of str, default ()
        Extra columns that define cells, beyond N, D and batch size.
    min_lrs : int, default 3
        The fewest distinct LRs among a cell's ok runs; 0 accepts any cell (drop thin ones with
        `RunsTable.subset`).
    split_optimizers : bool, default False
        If the rows mix optimizers, make "optimizer" a cell key instead of a problem: valid data
        for ``scalefit check``, though a fit must still choose one optimizer.

    Returns
    -------
    RunsTable
        The validated runs, with statuses, seeds and cell ids filled in, and one row per cell.

    Raises
    ------
    RunsTableError
        Listing every problem at once (file, row, column, how to fix it), or naming a
        `where` / `n_column` column that is not in the table.

    Examples
    --------
    >>> from scalefit.runs.table import load_runs
    >>> table = load_runs("data/cpu_ladder_v1/runs.csv", where={"optimizer": "adamw"})  # doctest: +SKIP
    >>> table.cells[["n_params", "n_tokens", "best_lr", "bracketed"]]  # doctest: +SKIP
    """
    if isinstance(path_or_df, pd.DataFrame):
        df, file = path_or_df.copy(), "<dataframe>"
        if "row" not in df or not pd.api.types.is_integer_dtype(df["row"]):
            df["row"] = np.arange(1, len(df) + 1)
    else:
        df, file = read_table(path_or_df), str(path_or_df)
    cell_by = tuple(cell_by)
    if n_column is not None and n_column != "n_params":
        if n_column not in df:
            raise RunsTableError([Problem(file, None, n_column, "n_column is not in the table; columns: "
                                          + ", ".join(c for c in df.columns if c != "row"))])
        if "n_params" in df:
            df["n_params_source"] = df["n_params"]
        df["n_params"] = df[n_column]
    for col, value in (where or {}).items():
        if col not in df:
            raise RunsTableError([Problem(file, None, col, "where= names a column that is not in the "
                                          "table; columns: " + ", ".join(c for c in df.columns if c != "row"))])
        df = df[_match(df[col], value, col, file)]
    if where and len(df) == 0:
        raise RunsTableError([Problem(file, None, None, f"no rows match where={where!r}")])
    if (split_optimizers and "optimizer" in df and "optimizer" not in cell_by
            and _as_text(df["optimizer"]).str.lower().dropna().nunique() > 1):
        cell_by = (*cell_by, "optimizer")
    problems = validate(df, file, cell_by=cell_by, min_lrs=min_lrs)
    if problems:
        raise RunsTableError(problems)
    runs, _ = _prepare(df, cell_by)
    runs = runs.reset_index(drop=True)
    runs["log_lr"] = np.log(runs["lr"])
    if "eff_lr" in runs:
        runs["log_eff_lr"] = np.log(runs["eff_lr"].where(runs["eff_lr"] > 0))
    return RunsTable(runs=runs, cells=_cells(runs, cell_by), source=file, cell_by=cell_by)


def _cells(runs: pd.DataFrame, cell_by) -> pd.DataFrame:
    """One row per cell; best LR = lowest mean ok loss over seeds at one LR."""
    recs = []
    for c, g in runs.groupby("cell", sort=True):
        okr = g[g["status"] == "ok"]
        per_lr = okr.groupby(_lr_key(okr["lr"]))["final_loss"].mean()
        rec = {k: g[k].iloc[0] for k in _cell_keys(cell_by)}
        best = per_lr.idxmin() if len(per_lr) else np.nan
        rec.update(cell=c, n_runs=len(g), n_ok=len(okr), n_diverged=int((g["status"] == "diverged").sum()),
                   n_lrs=len(per_lr), best_lr=best, best_loss=per_lr.min() if len(per_lr) else np.nan,
                   lr_min=per_lr.index.min() if len(per_lr) else np.nan,
                   lr_max=per_lr.index.max() if len(per_lr) else np.nan,
                   bracketed=bool(len(per_lr) >= 3 and per_lr.index.min() < best < per_lr.index.max()))
        rec["label"] = _label(pd.Series(rec), cell_by)
        recs.append(rec)
    cols = ["cell", *_cell_keys(cell_by), "n_runs", "n_ok", "n_diverged", "n_lrs", "best_lr", "best_loss",
            "lr_min", "lr_max", "bracketed", "label"]
    return pd.DataFrame(recs, columns=cols).set_index("cell")


def batch_swept(cells: pd.DataFrame) -> bool:
    """Whether batch size is swept: some (N, D) has several batch sizes.

    A recipe that grows the batch with the model is not a sweep: only a sweep lets the law tell
    B's effect apart from N's and D's.

    Parameters
    ----------
    cells : pandas.DataFrame
        One row per cell, with "n_params", "n_tokens" and (optionally) "batch_size".

    Returns
    -------
    bool
        False when the batch size is missing, unknown for some cell, or one per (N, D).
    """
    if "batch_size" not in cells or not np.isfinite(cells["batch_size"].to_numpy(dtype=float)).all():
        return False
    return bool((cells.groupby(["n_params", "n_tokens"])["batch_size"].nunique() > 1).any())


# --------------------------------------------------------------------------------------- the table

_STATUS_CODE = {s: i for i, s in enumerate(STATUSES)}   # -1 = not run


@dataclass
class RunsTable:
    """A validated runs table, as `load_runs` returns it.

    Attributes
    ----------
    runs : pandas.DataFrame
        One row per run: the table's columns, numeric ones as float, "status" filled in
        (ok / diverged / failed), "seed" (0 when absent), "row" (the 1-based row in the source),
        "cell" (the cell id) and the derived "log_lr" (and "log_eff_lr" with an eff_lr column).
    cells : pandas.DataFrame
        One row per cell, indexed by "cell": its keys (n_params, n_tokens, batch_size and the
        `cell_by` columns), n_runs, n_ok, n_diverged, n_lrs, best_lr and best_loss (the lowest mean
        ok loss over seeds at one LR), lr_min, lr_max, bracketed (best LR strictly inside the swept
        range) and a readable label.
    source : str
        The file the runs came from, or ``"<dataframe>"``.
    cell_by : tuple of str
        Extra columns that define cells, beyond N, D and batch size.
    """
    runs: pd.DataFrame
    cells: pd.DataFrame
    source: str
    cell_by: tuple[str, ...] = ()   # extra columns that define cells (beyond N, D, batch size)

    def ok(self) -> pd.DataFrame:
        """The runs with status "ok".

        Returns
        -------
        pandas.DataFrame
            The rows of `runs` whose status is "ok".
        """
        return self.runs[self.runs["status"] == "ok"]

    def to_xarray(self, lr_kind: str = "nominal") -> xr.Dataset:
        """A dense (cell, lr, seed) view of the runs.

        The lr coordinate is the union of LRs across cells; where a run does not exist,
        final_loss is NaN and status is -1. Status is an int code (its attrs["status_codes"]
        names them). A failed run loses to an ok or diverged run at the same (cell, lr, seed).

        Parameters
        ----------
        lr_kind : {"nominal", "effective"}, default "nominal"
            With "effective", eff_lr is the lr coordinate (the nominal LR is kept as
            lr_nominal) and non-ok runs without eff_lr are left out.

        Returns
        -------
        xarray.Dataset
            final_loss, status and row (and eff_lr / lr_nominal when present) over (cell, lr,
            seed), with the cells' keys and labels as coordinates along cell.

        Raises
        ------
        ValueError
            If `lr_kind` is unknown, or "effective" on a table without eff_lr on every ok run.
        """
        if lr_kind not in ("nominal", "effective"):
            raise ValueError(f"lr_kind must be 'nominal' or 'effective', not {lr_kind!r}")
        r = self.runs.copy()
        if lr_kind == "effective":
            if "eff_lr" not in r:
                raise ValueError(f"lr_kind='effective' needs an 'eff_lr' column; {self.source} has none")
            missing = r["eff_lr"].isna() & (r["status"] == "ok")
            if missing.any():
                raise ValueError(f"lr_kind='effective': ok runs without eff_lr in {self.source} "
                                 f"(rows {_rows(r.loc[missing, 'row'])})")
            r = r[r["eff_lr"].notna()].rename(columns={"lr": "lr_nominal", "eff_lr": "lr"})
        r["lr"] = _lr_key(r["lr"])
        r["status"] = r["status"].map(_STATUS_CODE)
        r = r.sort_values("status", key=lambda s: s == _STATUS_CODE["failed"], kind="stable")
        r = r.drop_duplicates(["cell", "lr", "seed"])
        data = ["final_loss", "status", "row"] + [c for c in ("eff_lr", "lr_nominal") if c in r]
        ds = r.set_index(["cell", "lr", "seed"])[data].to_xarray()
        ds["status"] = ds["status"].fillna(-1).astype(np.int8)
        ds["row"] = ds["row"].fillna(-1).astype(np.int64)
        ds["status"].attrs["status_codes"] = "-1=not run, " + ", ".join(f"{i}={s}" for s, i in _STATUS_CODE.items())
        cells = self.cells.reindex(ds["cell"].values)
        for c in ["n_params", "n_tokens", "batch_size", *self.cell_by, "label"]:
            if c != "batch_size" or cells[c].notna().any():
                ds = ds.assign_coords({c: ("cell", cells[c].to_numpy())})
        ds.attrs.update(source=self.source, lr_kind=lr_kind)
        return ds

    def subset(self, cell_mask) -> "RunsTable":
        """A table with only some cells, renumbered 0..k-1 in their old order.

        Parameters
        ----------
        cell_mask : array_like of bool or int
            A boolean mask over `cells`, or the ids of the cells to keep.

        Returns
        -------
        RunsTable
            The kept cells and their runs, with the same source and cell_by.

        Raises
        ------
        ValueError
            If a boolean mask's length is not the number of cells.
        """
        mask = np.asarray(cell_mask)
        if mask.dtype == bool and len(mask) != len(self.cells):
            raise ValueError(f"cell_mask has {len(mask)} entries; the table has {len(self.cells)} cells")
        keep = self.cells.index[mask] if mask.dtype == bool else pd.Index(mask.astype(int))
        new_id = {old: new for new, old in enumerate(sorted(keep))}
        runs = self.runs[self.runs["cell"].isin(keep)].copy()
        runs["cell"] = runs["cell"].map(new_id)
        cells = self.cells.loc[sorted(keep)].copy()
        cells.index = pd.Index(range(len(cells)), name="cell")
        return RunsTable(runs=runs.reset_index(drop=True), cells=cells, source=self.source,
                         cell_by=self.cell_by)

    def to_frame(self) -> pd.DataFrame:
        """The runs in contract form, e.g. for saving.

        Returns
        -------
        pandas.DataFrame
            `runs` without the derived log columns (log_lr, log_eff_lr); row and cell are kept.
        """
        return self.runs.drop(columns=[c for c in _HELPERS if c in self.runs])
