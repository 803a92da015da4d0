"""Figures for fits and runner trajectories (matplotlib; no pyplot state outside a notebook).

Every function returns a `matplotlib.figure.Figure` and saves nothing. matplotlib is imported
inside the functions (it is in the `dev` extra only) so `import scalefit.report.plots` stays cheap.
Outside a Jupyter kernel, figures are built with `Figure()` rather than pyplot: rendering goes
through Agg (or the SVG backend), nothing registers with a GUI, and callers never need to close
figures. Inside a kernel they are pyplot figures, so `fig = plot_law(fit)` displays inline.

Examples
--------
>>> from scalefit.report.plots import plot_law, plot_valleys, save
>>> fig = plot_valleys(fit)  # doctest: +SKIP
>>> fig = plot_law(fit, targets=[(1.3e8, 4e8)])  # doctest: +SKIP
>>> save(fig, "law.svg")  # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from scalefit.model.config import AXIS_COLUMNS
from scalefit.model.data import lr_column, run_weights
from scalefit.model.law import law_terms, term_value
from scalefit.runs.schema import runs_root
from scalefit.model.valley import valley_rise

__all__ = ["plot_valleys", "plot_law", "plot_side_by_side", "plot_weight_norms", "save", "valley_band",
           "cell_optima", "law_fan", "trajectory_files", "load_trajectories", "hidden_rms", "equilibrium_rms"]

INSTALL_HINT = "pip install 'scalefit-lr[dev]'"
AXIS_LABELS = {"N": "N (non-embedding parameters)", "D": "D (training tokens)"}
DEFAULT_DRAWS = 200  # thinned posterior draws for curves: quantiles to ~1% at a fraction of the cost


def require_matplotlib():
    """Import matplotlib or fail with the install hint (it is an optional dependency)."""
    try:
        import matplotlib
    except ImportError as err:
        raise ImportError(f"scalefit plots need matplotlib: {INSTALL_HINT}") from err
    return matplotlib


def _in_kernel() -> bool:
    """True inside a Jupyter kernel (never imports IPython itself: the CLI must stay light)."""
    if "IPython" not in sys.modules:
        return False
    from IPython import get_ipython

    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


def _figure(width: float, height: float):
    require_matplotlib()
    if _in_kernel():
        # pyplot-managed in a notebook, so the inline backend shows the figure at the end of the
        # cell (`fig = plot_law(...)` displays) and then closes it
        import matplotlib.pyplot as plt

        return plt.figure(figsize=(width, height), layout="constrained")
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def save(fig, path) -> Path:
    """Write `fig` as PNG, SVG or PDF (by suffix, dpi 120) atomically: a temp file, then rename.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
        The figure.
    path : str or os.PathLike
        Destination; its folder is created.

    Returns
    -------
    pathlib.Path

    Raises
    ------
    ValueError
        When the suffix is not .png, .svg or .pdf.
    """
    path = Path(path)
    fmt = path.suffix.lower().lstrip(".")
    if fmt not in ("png", "svg", "pdf"):
        raise ValueError(f"plot file must end in .png, .svg or .pdf, got {path.name!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fig.savefig(tmp, format=fmt, dpi=120)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def si(value: float) -> str:
    """130000000 -> '130M' (axis and title labels)."""
    for mult, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K")):
        if abs(value) >= mult:
            return f"{value / mult:.3g}{suffix}"
    return f"{value:.3g}"


def _tidy_log_axis(axis, fmt=lambda v: f"{v:g}") -> None:
    """Readable labels on a log axis: 1-2-5 ticks when it spans under two decades (matplotlib
    otherwise labels every minor tick in overlapping 10^x notation), plain numbers."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    lo, hi = sorted(axis.get_view_interval())
    few = lo > 0 and np.log10(hi / lo) < 2
    axis.set_major_locator(LogLocator(base=10, subs=(1, 2, 5) if few else (1.0,)))
    axis.set_major_formatter(FuncFormatter(lambda v, _: fmt(v)))
    axis.set_minor_locator(LogLocator(base=10, subs=np.arange(2, 10)))
    axis.set_minor_formatter(NullFormatter())


def _eti_label(prob: float) -> str:
    return f"{prob:.0%} ETI"


def _is_synthetic(fit) -> bool:
    from scalefit.report.text import is_synthetic

    return is_synthetic(fit.table.runs)


def _lr_name(fit) -> str:
    return "effective LR" if fit.config.lr_kind == "effective" else "LR"


# ------------------------------------------------------------------------------------- posterior

def _flat(posterior, name: str) -> np.ndarray:
    """(chain*draw, ...) array of a posterior variable."""
    v = posterior[name]
    v = v.to_dataset()[name] if not hasattr(v, "dims") else v
    values = np.asarray(v.values)
    return values.reshape(-1, *values.shape[2:])


def _thin(n_total: int, n_draws: int | None) -> np.ndarray:
    if n_draws is None or n_draws >= n_total:
        return np.arange(n_total)
    return np.unique(np.linspace(0, n_total - 1, n_draws).round().astype(int))


def valley_band(fit, cell: int, lr, prob: float = 0.9, n_draws: int | None = DEFAULT_DRAWS) -> dict:
    """Posterior valley of `cell` at the LRs `lr` (raw units): low / median / high loss per LR.

    Per draw i: loss = y_center + y_scale * (floor_i + exp(log_width_i) * g(ln lr - x_center - m_i)),
    g the fit's valley shape (LINEX with the draw's asymmetry, or a parabola).

    Parameters
    ----------
    fit : scalefit.fit.core.Fit
        The fit.
    cell : int
        Cell id.
    lr : array_like
        LRs in the fit's LR space.
    prob : float, default 0.9
        Probability of the band (equal-tailed).
    n_draws : int or None, default DEFAULT_DRAWS
        Thinned posterior draws to use (None: all).

    Returns
    -------
    dict
        ``lr``, ``low``, ``median``, ``high`` (loss per LR), ``lr_opt_median`` and
        ``lr_opt_interval`` (the cell's optimum).
    """
    post, std = fit.posterior, fit.std
    idx = _thin(_flat(post, "floor").shape[0], n_draws)
    floor = _flat(post, "floor")[idx, cell]
    width = np.exp(_flat(post, "log_width")[idx, cell])
    m = _flat(post, "log_lr_opt")[idx, cell]
    asym = _flat(post, "valley_asymmetry")[idx][:, None] if fit.config.valley == "asymmetric" else None
    x = np.log(np.asarray(lr, dtype=float)) - std.x_center
    d = x[None, :] - m[:, None]
    with np.errstate(over="ignore", invalid="ignore"):
        y = floor[:, None] + width[:, None] * valley_rise(d, asym)
    loss = std.y_center + std.y_scale * y
    q = (1 - prob) / 2
    low, median, high = np.nanquantile(loss, [q, 0.5, 1 - q], axis=0)
    lr_opt = np.exp(np.quantile(m, [q, 0.5, 1 - q]) + std.x_center)
    return {"lr": np.asarray(lr, dtype=float), "low": low, "median": median, "high": high,
            "lr_opt_median": float(lr_opt[1]), "lr_opt_interval": (float(lr_opt[0]), float(lr_opt[2]))}


def cell_optima(fit, prob: float = 0.9) -> pd.DataFrame:
    """Per cell: posterior median and ETI of the optimal LR (raw units), with N, D, held-out flag.

    Parameters
    ----------
    fit : scalefit.fit.core.Fit
        The fit.
    prob : float, default 0.9
        Probability of the interval.

    Returns
    -------
    pandas.DataFrame
        Columns n_params, n_tokens, lr_median, lr_low, lr_high, held_out; indexed by cell.
    """
    m = _flat(fit.posterior, "log_lr_opt") + fit.std.x_center
    q = (1 - prob) / 2
    low, med, high = np.exp(np.quantile(m, [q, 0.5, 1 - q], axis=0))
    cells = fit.table.cells
    return pd.DataFrame({
        "n_params": cells["n_params"].to_numpy(dtype=float), "n_tokens": cells["n_tokens"].to_numpy(dtype=float),
        "lr_median": med[: len(cells)], "lr_low": low[: len(cells)], "lr_high": high[: len(cells)],
        "held_out": cells.index.isin(fit.held_out),
    }, index=cells.index)


def law_fan(fit, n_params, n_tokens, prob: float = 0.9, seed: int = 0, batch_size: float | None = None) -> pd.DataFrame:
    """The law at each (n_params[i], n_tokens[i]): posterior median of the law mean and the
    NEW-CELL predictive ETI (law + discrepancy + a fresh residual), both as raw LRs.

    Parameters
    ----------
    fit : scalefit.fit.core.Fit
        The fit.
    n_params, n_tokens : float or array_like
        The points (broadcast against each other).
    prob : float, default 0.9
        Probability of the interval.
    seed : int, default 0
        One seed for every point, so the fan is a smooth function of the covariate.
    batch_size : float, optional
        When the law has a batch-size term (default: the fitted cells' geometric-mean batch size).

    Returns
    -------
    pandas.DataFrame
        Per point: n_params, n_tokens, law_median, median, low, high.
    """
    from scalefit.model.law import fit_law_axes
    from scalefit.fit.predict import fit_target_draws

    n_params = np.broadcast_to(np.asarray(n_params, dtype=float), np.broadcast(n_params, n_tokens).shape)
    n_tokens = np.broadcast_to(np.asarray(n_tokens, dtype=float), n_params.shape)
    post, std, cfg = fit.posterior, fit.std, fit.config
    axes = fit_law_axes(cfg, std)
    if "B" in axes and batch_size is None:
        batch_size = float(np.exp(std.log_b_mean))
    terms = law_terms(cfg, axes)
    coef = {name: _flat(post, name) for name in ["law_intercept"] + [n for n, _, _ in terms]}
    q = (1 - prob) / 2
    rows = []
    for n, d in zip(n_params.ravel(), n_tokens.ravel()):
        z = {"N": float(std.z("N", n)), "D": float(std.z("D", d))}
        if "B" in axes:
            z["B"] = float(std.z("B", batch_size))
        mean = coef["law_intercept"].copy()
        for name, axis, power in terms:
            mean = mean + coef[name] * term_value(z, axis, power)
        # One seed for every point: the fan is then a smooth function of the covariate.
        m = fit_target_draws(fit, n, d, seed=seed, batch_size=batch_size)["m"]
        lo, med, hi = np.quantile(m, [q, 0.5, 1 - q])
        rows.append({"n_params": n, "n_tokens": d, "law_median": float(np.exp(np.median(mean) + std.x_center)),
                     "median": float(np.exp(med + std.x_center)), "low": float(np.exp(lo + std.x_center)),
                     "high": float(np.exp(hi + std.x_center))})
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------- valleys

def plot_valleys(fit, cells=None, prob: float = 0.9, n_draws: int = DEFAULT_DRAWS, ncols: int | None = None):
    """One panel per cell: observed final loss vs LR with the posterior valley and its band.

    Ok runs are dots, diverged runs 'x' at the panel's top edge, runs outside the model's window
    grey; the posterior median optimum is marked. Held-out cells say so in their title.

    Parameters
    ----------
    fit : scalefit.fit.core.Fit
        The fit.
    cells : list of int, optional
        Cell ids to plot (default: all).
    prob : float, default 0.9
        Probability of the band.
    n_draws : int, default DEFAULT_DRAWS
        Thinned posterior draws for the curves.
    ncols : int, optional
        Panels per row (default: up to 5).

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    ValueError
        For unknown cells or an empty list.
    ImportError
        Without matplotlib.
    """
    table, cfg = fit.table, fit.config
    cells = list(table.cells.index if cells is None else cells)
    unknown = [c for c in cells if c not in table.cells.index]
    if unknown:
        raise ValueError(f"unknown cells {unknown}; the fit has cells 0..{len(table.cells) - 1}")
    if not cells:
        raise ValueError("no cells to plot")
    ncols = ncols or min(5, len(cells))
    nrows = -(-len(cells) // ncols)
    fig = _figure(2.9 * ncols, 2.4 * nrows + 0.5)
    from matplotlib.transforms import blended_transform_factory

    col = lr_column(cfg)
    runs = table.runs
    weight, _, _ = run_weights(runs, cfg)  # window membership only: held-out cells keep theirs
    held = set(fit.held_out)
    lr_name = _lr_name(fit)
    for i, cell in enumerate(cells):
        ax = fig.add_subplot(nrows, ncols, i + 1)
        mask = (runs["cell"] == cell).to_numpy()
        r = runs[mask]
        lr = r[col].to_numpy(dtype=float)
        loss = r["final_loss"].to_numpy(dtype=float)
        status = r["status"].to_numpy()
        ok = (status == "ok") & np.isfinite(loss) & (lr > 0)
        inside = weight[mask] > 0
        div = (status == "diverged") & np.isfinite(lr) & (lr > 0)
        span_lr = lr[np.isfinite(lr) & (lr > 0)]
        grid = np.geomspace(span_lr.min() / 1.3, span_lr.max() * 1.3, 120)
        band = valley_band(fit, cell, grid, prob=prob, n_draws=n_draws)
        ax.fill_between(grid, band["low"], band["high"], color="C0", alpha=0.25, lw=0,
                        label=f"{_eti_label(prob)}", gid="posterior_band")
        ax.plot(grid, band["median"], color="C0", lw=1.5, label="posterior median", gid="posterior_median")
        ax.plot(lr[ok & inside], loss[ok & inside], "o", color="k", ms=3.5, label="ok run")
        if (ok & ~inside).any():
            ax.plot(lr[ok & ~inside], loss[ok & ~inside], "o", color="0.7", ms=3.5, label="outside window")
        ax.set_xscale("log")
        # y range from the runs that inform the valley, so the exponential high-LR side of the
        # curve does not squash the data into a line
        ys = np.concatenate([loss[ok], band["median"][np.isfinite(band["median"])]])
        ref = loss[ok] if ok.any() else ys
        lo, hi = np.nanmin(np.concatenate([ref, [np.nanmin(band["low"])]])), np.nanmax(ref)
        pad = 0.1 * max(hi - lo, 1e-6)
        ax.set_ylim(lo - pad, hi + 2 * pad)
        x_opt = band["lr_opt_median"]
        ax.axvline(x_opt, color="C3", lw=0.8, ls=":")
        y_opt = valley_band(fit, cell, [x_opt], prob=prob, n_draws=n_draws)["median"][0]
        ax.plot([x_opt], [y_opt], "v", color="C3", ms=6, label=f"optimum {x_opt:.2g}", gid="posterior_optimum")
        if div.any():
            top = blended_transform_factory(ax.transData, ax.transAxes)
            ax.plot(lr[div], np.full(div.sum(), 0.96), "x", color="C3", ms=6, mew=1.5, transform=top,
                    clip_on=False, label="diverged")
        info = table.cells.loc[cell]
        title = f"cell {cell}: N={si(info['n_params'])} D={si(info['n_tokens'])}"
        if cell in held:
            title += " (held out)"
            ax.set_facecolor("0.96")
        ax.set_title(title, fontsize=9)
        _tidy_log_axis(ax.xaxis)
        ax.tick_params(labelsize=7)
        if i % ncols == 0:
            ax.set_ylabel("final loss", fontsize=8)
        if i >= len(cells) - ncols:
            ax.set_xlabel(lr_name, fontsize=8)
        if i == 0:
            handles, labels = ax.get_legend_handles_labels()
        else:  # one figure legend; collect kinds (diverged, outside window) seen in any panel
            for h, lab in zip(*ax.get_legend_handles_labels()):
                if lab not in labels and not lab.startswith("optimum"):
                    handles.append(h)
                    labels.append(lab)
    labels = ["posterior optimum (median)" if lab.startswith("optimum") else lab for lab in labels]
    fig.legend(handles, labels, loc="outside lower center", ncols=len(labels), fontsize=8, frameon=False)
    head = f"loss valleys: posterior median and {_eti_label(prob)} ({cfg.valley} valley, law along {cfg.axis})"
    if _is_synthetic(fit):
        head = "SYNTHETIC DATA - " + head
    fig.suptitle(head, fontsize=10)
    return fig


# -------------------------------------------------------------------------------------------- law

def _backtest_points(fit, backtest) -> pd.DataFrame | None:
    """Held-out cells' observed best LR in the fit's LR space. Backtests report the nominal LR;
    for an effective-LR fit, take the eff_lr of the ok runs at that cell's best nominal LR."""
    if backtest is None:
        return None
    rows = (backtest.rows if hasattr(backtest, "rows") else pd.DataFrame(backtest)).copy()
    if fit.config.lr_kind != "effective" or not len(rows):
        return rows
    runs, cells = fit.table.runs, fit.table.cells
    values = []
    for _, row in rows.iterrows():
        same = np.isclose(cells["n_params"], row["n_params"]) & np.isclose(cells["n_tokens"], row["n_tokens"])
        match = cells.index[same]
        ok = runs[runs["cell"].isin(match) & (runs["status"] == "ok")]
        if not len(ok) or "eff_lr" not in ok:
            values.append(np.nan)
            continue
        best = ok.groupby("lr")["final_loss"].mean().idxmin()
        values.append(float(ok.loc[ok["lr"] == best, "eff_lr"].median()))
    rows["observed_best_lr"] = values
    return rows


def _draw_law(ax, fit, targets=(), backtest=None, prob: float = 0.9, extend: float = 4.0, n_grid: int = 60,
              title: str | None = None) -> dict:
    """Draw the law plot of `fit` into `ax`; returns the fans drawn (for tests and notebooks)."""
    cfg = fit.config
    xaxis = "D" if cfg.axis == "D" else "N"
    xcol, ocol = AXIS_COLUMNS[xaxis], AXIS_COLUMNS["D" if xaxis == "N" else "N"]
    targets = [(float(n), float(d)) for n, d in targets]
    opt = cell_optima(fit, prob)
    fitted = opt[~opt["held_out"]]

    # x range: the data, the targets, and a margin beyond the data so extrapolation shows
    xs = np.concatenate([opt[xcol].to_numpy(), [t[0] if xaxis == "N" else t[1] for t in targets]])
    lo, hi = fitted[xcol].min(), fitted[xcol].max()
    grid = np.geomspace(min(xs.min(), lo) / 1.5, max(xs.max() * 1.5, hi * extend), n_grid)

    # which values of the other covariate get their own line: only with the joint law
    if cfg.axis == "ND":
        others = sorted(set(opt[ocol]) | {t[1] for t in targets})
    else:
        others = [float(np.median(fitted[ocol]))]
    fans = {}
    for j, other in enumerate(others):
        colour = f"C{j % 10}" if cfg.axis == "ND" else "C0"
        n, d = (grid, other) if xaxis == "N" else (other, grid)
        fan = law_fan(fit, n, d, prob=prob)
        fans[other] = fan
        tag = f" (D={si(other)})" if cfg.axis == "ND" else ""
        ax.fill_between(grid, fan["low"], fan["high"], color=colour, alpha=0.15, lw=0,
                        label=f"new-cell {_eti_label(prob)}{tag}", gid="law_fan")
        ax.plot(grid, fan["law_median"], color=colour, lw=1.8, label=f"law, posterior median{tag}", gid="law_median")
        base = [fit.baseline.predict_lr(*((x, other) if xaxis == "N" else (other, x))) for x in grid]
        ax.plot(grid, base, color=colour, lw=1.2, ls="--", alpha=0.8,
                label="two-stage log-linear baseline" if j == 0 else None, gid="baseline")
    ax.axvspan(lo, hi, color="0.5", alpha=0.07, lw=0)

    # per-cell posterior optima, dodged along x so cells at one N (several D) stay readable
    other_vals = sorted(set(opt[ocol]))
    for k, (cell, row) in enumerate(opt.iterrows()):
        j = other_vals.index(row[ocol])
        dodge = 1.0 + 0.04 * (j - (len(other_vals) - 1) / 2) if cfg.axis != "ND" else 1.0
        colour = f"C{others.index(row[ocol]) % 10}" if cfg.axis == "ND" else "k"
        yerr = [[row["lr_median"] - row["lr_low"]], [row["lr_high"] - row["lr_median"]]]
        held = bool(row["held_out"])
        ax.errorbar([row[xcol] * dodge], [row["lr_median"]], yerr=yerr, fmt="s" if not held else "D",
                    ms=4, color="0.55" if held else colour, mfc="white" if held else colour, lw=1, capsize=2,
                    label=("cell optimum (posterior)" if not held else "held-out cell (predicted)")
                    if k == _first(opt, held) else None)
    bt = _backtest_points(fit, backtest)
    if bt is not None and len(bt):
        ax.plot(bt[xcol], bt["observed_best_lr"], "o", ms=9, mfc="none", mec="C3", mew=1.8,
                label="held out: observed best LR", gid="backtest_observed")
    for k, (n, d) in enumerate(targets):
        p = fit.predict(n, d, prob=prob)
        x = n if xaxis == "N" else d
        med, (low, high) = p.lr_median, (p.lr_low, p.lr_high)
        text = f"{med:.2g}\n[{low:.2g}, {high:.2g}]"
        if p.effective:  # predictions report the nominal LR to set; this axis is effective LR
            med, (low, high) = p.effective["eff_lr_median"], p.effective["eff_intervals"][str(p.prob)]
            text = (f"eff {med:.2g} [{low:.2g}, {high:.2g}]\n"
                    f"set nominal {p.lr_median:.2g} [{p.lr_low:.2g}, {p.lr_high:.2g}]")
        ax.errorbar([x], [med], yerr=[[med - low], [high - med]], fmt="*",
                    ms=12, color="C1", mec="k", lw=1.5, capsize=4, gid="target",
                    label=f"target ({_eti_label(prob)})" if k == 0 else None)
        ax.annotate(text, (x, high), fontsize=7, ha="center", va="bottom", textcoords="offset points",
                    xytext=(0, 3))
    ax.set_xscale("log")
    ax.set_yscale("log")
    _tidy_log_axis(ax.xaxis, si)
    ax.set_xlabel(AXIS_LABELS[xaxis])
    ax.set_ylabel(f"optimal {cfg.lr_kind} LR")
    if title is None:
        title = f"optimal {cfg.lr_kind} LR vs {cfg.axis}: median and {_eti_label(prob)}"
        if _is_synthetic(fit):
            title = "SYNTHETIC DATA - " + title
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, loc="best")
    return {"grid": grid, "fans": fans, "data_range": (float(lo), float(hi))}


def _first(opt: pd.DataFrame, held: bool) -> int:
    """Position of the first cell with this held-out flag (one legend entry per kind)."""
    return int(np.flatnonzero(opt["held_out"].to_numpy() == held)[0])


def plot_law(fit, targets=(), backtest=None, prob: float = 0.9, **kwargs):
    """Optimal LR vs the law's covariate (N, or D; N with one line per D for the joint law).

    Shows per-cell posterior optima with their intervals, the law's posterior median with the
    new-cell predictive fan (what `predict` reports at any scale), the two-stage baseline, the
    `targets` (pairs (N, D)) with their intervals, and a backtest's held-out observed best LRs.

    Parameters
    ----------
    fit : scalefit.fit.core.Fit
        The fit.
    targets : iterable of tuple of (float, float), default ()
        Target scales (N, D) to mark with their predictions.
    backtest : scalefit.evaluation.backtest.Backtest or pandas.DataFrame, optional
        A backtest (or its rows) whose held-out cells' observed best LRs are marked.
    prob : float, default 0.9
        Probability of the intervals.
    **kwargs
        ``extend`` (how far past the data the x axis runs, as a factor), ``n_grid`` and
        ``title``.

    Returns
    -------
    matplotlib.figure.Figure
    """
    fig = _figure(7.5, 5.2)
    ax = fig.add_subplot(1, 1, 1)
    _draw_law(ax, fit, targets, backtest, prob, **kwargs)
    return fig


def plot_side_by_side(fits: dict, prob: float = 0.9, **law_kwargs):
    """Law plots of several fits next to each other with one shared y axis (e.g. nominal vs
    effective LR, or the law along N vs along D).

    Parameters
    ----------
    fits : dict
        Panel title -> `scalefit.fit.core.Fit`.
    prob : float, default 0.9
        Probability of the intervals.
    **law_kwargs
        Passed to each panel's law plot (``extend``, ``n_grid``, ``targets``, ``backtest``).

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    ValueError
        When `fits` is empty.
    """
    if not fits:
        raise ValueError("no fits to plot")
    fig = _figure(5.5 * len(fits), 5.0)
    axes = fig.subplots(1, len(fits), sharey=True, squeeze=False)[0]
    synthetic = False
    for ax, (name, fit) in zip(axes, fits.items()):
        cfg = fit.config
        _draw_law(ax, fit, prob=prob, title=f"{name}: {cfg.lr_kind} LR along {cfg.axis}", **law_kwargs)
        synthetic |= _is_synthetic(fit)
    for ax in axes[1:]:
        ax.set_ylabel("")
    kinds = {fit.config.lr_kind for fit in fits.values()}
    axes[0].set_ylabel(f"optimal {kinds.pop()} LR" if len(kinds) == 1 else "optimal LR (space in each panel's title)")
    head = f"optimal LR: posterior median and new-cell {_eti_label(prob)}"
    fig.suptitle(("SYNTHETIC DATA - " if synthetic else "") + head, fontsize=11)
    return fig


# ----------------------------------------------------------------------------- weight trajectories

def _run_meta(directory: Path) -> dict:
    """lr / weight decay / optimizer / size of a runner cell, from result.json (else config.json)."""
    for name in ("result.json", "config.json"):
        path = directory / name
        if path.exists():
            info = json.loads(path.read_text())
            cfg = info.get("config", info)  # config.json nests the run config
            meta = info.get("meta", {})
            return {"lr": cfg.get("lr"), "weight_decay": cfg.get("weight_decay", 0.0),
                    "optimizer": cfg.get("optimizer", ""), "size": info.get("size", meta.get("size", "")),
                    "n_params": info.get("n_params", meta.get("n_params")), "run": directory.name,
                    "status": info.get("status", "")}
    return {"run": directory.name}


def trajectory_files(paths) -> list[Path]:
    """Expand folders and files into the trajectory.parquet files they hold.

    Parameters
    ----------
    paths : iterable of str or os.PathLike
        trajectory.parquet files, one run's folder, a folder of run folders (a grid's
        ``runs/``), or an older grid's folder with ``cells/``.

    Returns
    -------
    list of pathlib.Path

    Raises
    ------
    FileNotFoundError
        When a path does not exist or nothing is found.
    """
    out = []
    for p in map(Path, paths):
        if p.is_file():
            out.append(p)
        elif (p / "trajectory.parquet").exists():
            out.append(p / "trajectory.parquet")
        elif runs_root(p).is_dir():
            out += sorted(runs_root(p).glob("*/trajectory.parquet"))
        elif p.is_dir():
            out += sorted(p.glob("*/trajectory.parquet"))
        else:
            raise FileNotFoundError(f"{p}: no such file or directory")
    if not out:
        raise FileNotFoundError(f"no trajectory.parquet files under {', '.join(map(str, paths))}")
    return out


def load_trajectories(paths_or_frames) -> list[tuple[pd.DataFrame, dict]]:
    """(trajectory frame, run meta) per run.

    Parameters
    ----------
    paths_or_frames : path, DataFrame, or a list of them
        Paths as for `trajectory_files`; a DataFrame passes through with meta from its
        ``attrs`` (keys lr, weight_decay, optimizer, size).

    Returns
    -------
    list of tuple of (pandas.DataFrame, dict)
    """
    items = paths_or_frames if isinstance(paths_or_frames, (list, tuple)) else [paths_or_frames]
    out, paths = [], []
    for item in items:
        if isinstance(item, pd.DataFrame):
            out.append((item, dict(item.attrs)))
        else:
            paths.append(item)
    for f in trajectory_files(paths) if paths else []:
        out.append((pd.read_parquet(f), _run_meta(f.parent)))
    return out


def hidden_rms(frame: pd.DataFrame, how: str = "median") -> pd.DataFrame:
    """Per probed step: hidden-matrix RMS = ||W||_F / sqrt(numel), combined over matrices,
    with the step's schedule multiplier.

    Parameters
    ----------
    frame : pandas.DataFrame
        One run's trajectory (``group``, ``matrix``, ``step``, ``norm``, ``numel``, ``lr_mult``).
    how : str, default "median"
        "median", or "quadratic_mean" = sqrt(mean RMS^2), the probe's t_eq convention.

    Returns
    -------
    pandas.DataFrame
        Columns rms and lr_mult, indexed by step.

    Raises
    ------
    ValueError
        For another `how`.
    """
    h = frame[frame["group"] == "hidden"].assign(rms=lambda f: f["norm"] / np.sqrt(f["numel"]))
    g = h.groupby("step")
    if how == "median":
        rms = g["rms"].median()
    elif how == "quadratic_mean":
        rms = np.sqrt(g["rms"].apply(lambda v: np.mean(v**2)))
    else:
        raise ValueError(f"how must be 'median' or 'quadratic_mean', got {how!r}")
    return pd.DataFrame({"rms": rms, "lr_mult": g["lr_mult"].first()})


def equilibrium_rms(lr: float, weight_decay: float) -> float:
    """AdamW's quasi-equilibrium weight RMS sqrt(lr / (2 wd)), where each step's update is
    balanced by decoupled weight decay (see the theory page, docs/theory.md, "Weight-norm
    equilibrium under AdamW"); NaN without weight decay.

    Parameters
    ----------
    lr : float
        Peak (or current) learning rate.
    weight_decay : float
        Decoupled weight decay.

    Returns
    -------
    float
    """
    return float(np.sqrt(lr / (2 * weight_decay))) if weight_decay and weight_decay > 0 else float("nan")


def plot_weight_norms(traj_paths_or_frames, stat: str = "rms", matrices: str = "median",
                      scheduled: bool = True, logy: bool = True):
    """Hidden-matrix weight size vs step, one colour per LR (runner trajectory files).

    With weight decay (AdamW), the equilibrium RMS sqrt(lr / (2 wd)) at the peak LR is a dashed
    line in the run's colour.

    Parameters
    ----------
    traj_paths_or_frames : path, DataFrame, or a list of them
        As for `load_trajectories`.
    stat : str, default "rms"
        "rms" (||W||/sqrt(numel)) or "norm" (||W||_F).
    matrices : str, default "median"
        "median" (over the hidden matrices) or "each" (one thin line per matrix).
    scheduled : bool, default True
        Add the instantaneous level sqrt(lr s(t) / (2 wd)), dotted (a decaying schedule lowers it).
    logy : bool, default True
        Log y axis.

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    ValueError
        For another `stat` or `matrices`.
    """
    if stat not in ("rms", "norm") or matrices not in ("median", "each"):
        raise ValueError("stat must be 'rms' or 'norm', matrices 'median' or 'each'")
    runs = load_trajectories(traj_paths_or_frames)
    runs.sort(key=lambda r: (str(r[1].get("size", "")), str(r[1].get("optimizer", "")), r[1].get("lr") or 0.0))
    fig = _figure(7.5, 4.8)
    ax = fig.add_subplot(1, 1, 1)
    from matplotlib import colormaps

    lrs = sorted({m.get("lr") for _, m in runs if m.get("lr")})
    cmap = colormaps["viridis"]
    colour_of = {lr: cmap(0.85 * i / max(len(lrs) - 1, 1)) for i, lr in enumerate(lrs)}
    styles = ["-", "-.", (0, (5, 1)), (0, (3, 1, 1, 1, 1, 1))]
    sizes = sorted({str(m.get("size", "")) for _, m in runs})  # line style per model size
    for frame, meta in runs:
        lr, wd = meta.get("lr"), meta.get("weight_decay") or 0.0
        colour = colour_of.get(lr, "0.3")
        ls = styles[sizes.index(str(meta.get("size", ""))) % len(styles)]
        label = " ".join(str(v) for v in (meta.get("size"), meta.get("optimizer")) if v)
        label = f"{label} lr={lr:g}" if lr else (label or meta.get("run", "run"))
        h = frame[frame["group"] == "hidden"]
        value = h["norm"] / (np.sqrt(h["numel"]) if stat == "rms" else 1.0)
        if matrices == "each":
            for k, (_, g) in enumerate(h.assign(v=value).groupby("matrix")):
                ax.plot(g["step"], g["v"], color=colour, lw=0.7, alpha=0.7, ls=ls, label=label if k == 0 else None)
        else:
            med = h.assign(v=value).groupby("step")["v"].median()
            ax.plot(med.index, med.to_numpy(), color=colour, lw=1.6, ls=ls, label=label, gid="weight_rms")
        if stat == "rms" and lr and wd > 0 and meta.get("optimizer", "adamw") != "adamh":
            eq = equilibrium_rms(lr, wd)
            ax.axhline(eq, color=colour, lw=1.0, ls="--", gid="equilibrium")
            if scheduled:
                s = h.groupby("step")["lr_mult"].first()
                ax.plot(s.index, np.sqrt(lr * s.to_numpy() / (2 * wd)), color=colour, lw=0.8, ls=":")
    ax.plot([], [], "k--", lw=1, label="AdamW equilibrium sqrt(lr/(2 wd))")
    if scheduled:
        ax.plot([], [], "k:", lw=0.8, label="... at the scheduled lr_t")
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("hidden-matrix RMS ||W||/sqrt(numel)" if stat == "rms" else "hidden-matrix ||W||_F")
    what = "median over hidden matrices" if matrices == "median" else "each hidden matrix"
    ax.set_title(f"weight {stat} vs step ({what}), one colour per LR", fontsize=10)
    ax.legend(fontsize=7, loc="best")
    return fig
