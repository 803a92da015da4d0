"""Semi-synthetic worlds: real valley shapes and noise, a known optimal-LR law outside the model's
family, and a tokens-per-parameter ladder extrapolated 3x to 100x in N.

What it measures
----------------
How honest the 90% and 50% credible intervals of the optimal LR are when a user fits 3-6 sweeps
along a ladder at fixed tokens per parameter (D = r N, largest N 1e8) and asks for a model 3x,
10x, 30x or 100x larger at the same r, in a world where the truth is known exactly and is not one
the model can represent. Each world combines:

- valley templates from real sweeps: per cell of the public sweeps in ../shared/data (StepLaw MoE,
  Marin Qwen3, Marin AdamW, both Hyperball sets), its valley width (the mean loss rise one nat of LR
  either side of its optimum) and asymmetry (rise one nat above over rise one nat below; fitted
  from 5 or more finished LRs, shrunk towards the model's prior mean), its run-to-run noise (the
  seed sd where LRs repeat, else the residual sd of a LINEX fit, pooled over the dataset's sweeps
  where a sweep leaves fewer than 3 degrees of freedom), its LR grid relative to its optimum, its
  seed counts and where above the optimum it diverged. Without
  ../shared the bundled data/cpu_ladder_v1 sweeps are the only templates, and the output says so.
  A world draws one dataset (one lab's sweep style) and a template from it per cell;
- a known law for ln LR*(N, D), with u = ln(N / 1e8) and w = ln(D / N / 20),

      ln LR* = a + b u + beta w + gamma u w + Delta s softplus((u - u_knee) / s) + e_cell,

  non-additive in ln N x ln D (gamma, |gamma| 0.03-0.1), whose slope bends by Delta (|Delta|
  0.05-0.25 per e-fold, either sign) around a knee 1.5x-10x beyond the largest fitted N, with
  Student-t (3 df) cell deviations e_cell of scale 0.05-0.1 nats. The model's law is quadratic in
  ln N and ln D with a Brownian-motion discrepancy: the bend and its changing curvature are outside
  it. Along one ladder w is constant, so gamma acts there as a slope; the ladder cannot see it;
- sweeps simulated from the templates: each fitted cell's relative LR grid is placed around its
  true optimum with a random offset (up to half a grid step, the optimum kept inside the grid),
  with the template's seeds, its width, its asymmetry (on the exponential-pair valley, which is not
  the model's LINEX), its Gaussian noise and its divergences.

Ladders of 3, 4 and 6 cells share their top cells (N = 1e8, 5e7, 2.5e7, ...), so a longer ladder
adds smaller models to the same sweeps. Each is fitted with ``ModelConfig(axis="ND")`` (what
``--axis auto`` fits on such a ladder) and ``axis="N"``, and scored at each target against the
target cell's latent optimum (its law value plus its own deviation): coverage of the 50% and 90%
equal-tailed intervals, the 90% width in decades, |log10 error| of the posterior median, the 90%
interval score (decades; Gneiting & Raftery 2007), and beside them the |log10 error| of the
two-stage log-linear point fit: the fit's own (``fit.baseline``, what ``Prediction.baseline_lr``
reports) and the same fit in ln N alone.

How to read it
--------------
One table row per (fit axis, ladder length, target multiple), pooled over worlds with 90%
cluster-bootstrap intervals (each world one cluster; ``scalefit.evaluation.pooling``). Calibrated
intervals cover about 90% and 50%; coverage well below at 30x-100x with narrow widths means the
discrepancy walk does not widen the interval enough for bends of this size. The interval score
rewards narrow intervals and punishes misses by 20x the miss, so it ranks "honest and narrow"
first. ``|err| base`` and ``|err| base N`` against ``|err| model`` say whether the posterior median
beats the usual point fit. On a ladder ln D - ln N is constant up to the rounding of D to whole
tokens, so the joint (ND) baseline's least-squares design is singular up to that rounding and its
``|err| base`` can be far off; ``|err| base N`` is the well-posed fit in ln N. A second table gives
the sampler's diagnostics per fit axis and ladder and per template dataset (rows record each fit's
divergences and r-hat as ``diverging`` and ``max_rhat``).

Cost
----
At the default 500 tuning and at most 500 kept draws per chain, a fit of a 3-6 cell ladder takes
about 5-35 s on 2 cores once compiled (median about 15-20 s; worlds with Marin AdamW templates,
3 finished LRs a cell, take the longest and often do not converge). Compiling takes about 1-2 min
per law axis the first time; the compiled model is cached on disk under ``SCALEFIT_CACHE``. The
default run, 20 worlds x 3 ladders x 2 axes = 120 fits, takes about 30-40 min on 2 cores;
``--worlds 40`` twice that; ``--worlds 3 --cells 3`` about 2-3 min. Each fit makes one sampling
attempt at the package's first acceptance level and is scored whatever its divergences (recorded
per row); ``--retries`` uses the package's full attempt order instead (the ``scalefit fit``
default), at 2-4x the time.

Usage
-----
    python benchmarks/semi_synthetic.py                       # 20 worlds, ladders 3 4 6
    python benchmarks/semi_synthetic.py --worlds 3 --cells 3  # a quick look
    python benchmarks/semi_synthetic.py --from-csv benchmarks/results/semi_synthetic.csv

Everything simulated here is SYNTHETIC; the public sweeps are read in place, never copied.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.optimize import brentq, least_squares

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
BUNDLED = REPO / "data" / "cpu_ladder_v1" / "runs.csv"
DEFAULT_SAVE = REPO / "benchmarks" / "results" / "semi_synthetic.csv"
MULTIPLES = (3, 10, 30, 100)
N_MAX = 1e8  # the largest fitted N of every ladder
RATIO_REF = 20.0  # the law's reference tokens per parameter
BATCH = 524288  # tokens per step of every simulated run
ASYM_REF = 0.5  # LINEX asymmetry assumed where a sweep is too short to measure it
MIN_NOISE_TO_WIDTH = 0.01  # noise estimates below this share of the width are raised to it
MIN_NOISE_DOF = 3  # a sweep's own noise estimate needs this many degrees of freedom
FLOOR_DROP = 0.2  # loss floor: F0 + FLOOR_DROP ((N / N_MAX)^-0.3 - 1)
LOG10 = np.log(10.0)

if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


# ---------------------------------------------------------------------------------------------
# Valley shapes


def linex_rise(d, k):
    """The model's LINEX valley, normalized to a mean rise of 1 one nat either side.

    Parameters
    ----------
    d : array_like
        Distance from the optimum, nats of LR.
    k : float
        Asymmetry (k > 0: the high-LR side is steeper); |k| < 1e-6 is the parabola.

    Returns
    -------
    numpy.ndarray
        The rise.
    """
    from scalefit.evaluation.truth import rise

    return rise(d, k)


def linex_asymmetry(k: float) -> float:
    """Rise one nat above the optimum over the rise one nat below, for LINEX asymmetry k."""
    r = linex_rise(np.array([1.0, -1.0]), k)
    return float(r[0] / r[1])


def pair_rise(d, p: float, q: float):
    """The exponential-pair valley (rates p below, q above the optimum), normalized like LINEX.

    g(d) = 2 [q e^{-p d} + p e^{q d} - (p + q)] / (p q (p + q)) equals d^2 to second order and
    grows exponentially on both sides; LINEX is its p -> 0 limit, so with p > 0 it lies outside
    the model's valley family.

    Parameters
    ----------
    d : array_like
        Distance from the optimum, nats of LR.
    p, q : float
        Exponential rates of the low and the high side (> 0).

    Returns
    -------
    numpy.ndarray
        The rise, with mean 1 one nat either side of the optimum.
    """
    d = np.asarray(d, dtype=float)
    g = lambda v: 2.0 * (q * np.exp(-p * v) + p * np.exp(q * v) - (p + q)) / (p * q * (p + q))  # noqa: E731
    return g(d) / (0.5 * (g(1.0) + g(-1.0)))


def pair_rates(asymmetry: float, rate: float) -> tuple[float, float]:
    """The exponential pair's rates (p, q) with the given asymmetry, the shallower side at `rate`.

    Parameters
    ----------
    asymmetry : float
        Rise one nat above over rise one nat below (> 0; > 1: the high side is steeper).
    rate : float
        The shallower side's rate (the low side's when `asymmetry` >= 1, else the high side's).

    Returns
    -------
    tuple of (float, float)
        p and q; the steeper side's rate is clipped to [rate, 20].
    """
    if np.isclose(asymmetry, 1.0):
        return rate, rate
    target = np.log(max(asymmetry, 1.0 / asymmetry))

    def gap(steep):
        r = pair_rise(np.array([1.0, -1.0]), rate, steep)  # steeper high side: ratio >= 1
        return np.log(r[0] / r[1]) - target

    steep = 20.0 if gap(20.0) <= 0 else float(brentq(gap, rate, 20.0, xtol=1e-10))
    return (rate, steep) if asymmetry >= 1 else (steep, rate)


# ---------------------------------------------------------------------------------------------
# Valley templates from real sweeps


@dataclass(frozen=True)
class ValleyTemplate:
    """One real sweep's valley, as the simulation re-uses it.

    Attributes
    ----------
    dataset : str
        The source dataset.
    label : str
        The cell it comes from.
    rel_log_lr : numpy.ndarray
        Its distinct ln LRs minus its fitted optimum, ascending (diverged LRs included).
    counts : numpy.ndarray
        Runs (seeds) at each of them.
    width : float
        Mean loss rise one nat of LR either side of the optimum (loss units).
    asymmetry : float
        Rise one nat above the optimum over the rise one nat below (> 1: steeper high side).
    noise_sd : float
        Run-to-run loss sd (loss units).
    floor : float
        Fitted loss at the optimum.
    diverge_above : float
        Nats above the optimum past which runs diverged (midway between the last finished and
        the first diverged LR); inf when none diverged.
    noise_source : str
        "seeds", "fit residuals", "<dataset> pooled ..." (the dataset's pooled estimate) or
        "imputed noise-to-width ratio".
    shape_source : str
        "fit" (asymmetry fitted) or "imputed" (too few LRs; ASYM_REF assumed).
    noise_dof : int
        Degrees of freedom of the sweep's own noise estimate.
    """

    dataset: str
    label: str
    rel_log_lr: np.ndarray
    counts: np.ndarray
    width: float
    asymmetry: float
    noise_sd: float
    floor: float
    diverge_above: float
    noise_source: str
    shape_source: str
    noise_dof: int = 0

    @property
    def ok_range(self) -> tuple[float, float]:
        """The lowest and highest relative ln LR that finished (below `diverge_above`)."""
        ok = self.rel_log_lr[self.rel_log_lr < self.diverge_above]
        return float(ok.min()), float(ok.max())

    @property
    def step(self) -> float:
        """The median gap between neighbouring LRs of the grid, nats."""
        return float(np.median(np.diff(self.rel_log_lr))) if self.rel_log_lr.size > 1 else 0.0


def fit_linex(log_lr, mean_loss, counts, asymmetry_sd: float | None = 1.0, noise_sd: float | None = None):
    """Least-squares LINEX valley through a sweep's seed-averaged losses.

    Parameters
    ----------
    log_lr, mean_loss, counts : array_like
        Distinct ln LR, the mean loss there and the runs behind each mean (the weights).
    asymmetry_sd : float or None, default 1.0
        The asymmetry k is fitted (in [-1.5, 3]) with a Gaussian penalty of this sd about
        ASYM_REF (the model's own prior, ``valley_asymmetry``), so that a short sweep that barely
        sees one side does not claim an extreme asymmetry; None fixes k at ASYM_REF.
    noise_sd : float, optional
        The noise sd the penalty is weighed against (required when `asymmetry_sd` is set).

    Returns
    -------
    dict
        ``optimum`` (ln LR), ``floor``, ``width``, ``k``, ``rss`` (count-weighted residual sum of
        squares, penalty excluded) and ``dof`` (points minus fitted parameters).
    """
    x, y, w = (np.asarray(v, dtype=float) for v in (log_lr, mean_loss, counts))
    free = asymmetry_sd is not None
    best = int(np.argmin(y))
    span = max(x.max() - x.min(), 1e-6)
    curv = np.polyfit(x, y, 2)[0] if x.size >= 3 else 0.0
    width0 = max(curv, (y.max() - y.min()) / span**2, 1e-8)

    def model(theta):
        m, floor, log_w = theta[:3]
        return floor + np.exp(log_w) * linex_rise(x - m, theta[3] if free else ASYM_REF)

    def residuals(theta):
        r = np.sqrt(w) * (model(theta) - y)
        if free:
            r = np.append(r / noise_sd, (theta[3] - ASYM_REF) / asymmetry_sd)
        return r

    start = [x[best], y[best], np.log(width0)] + ([ASYM_REF] if free else [])
    lower = [x.min() - 0.5 * span, y.min() - 10 * (y.max() - y.min() + 1e-6), np.log(width0) - 12]
    upper = [x.max() + 0.5 * span, y.max() + 1e-6, np.log(width0) + 8]
    if free:
        lower, upper = lower + [-1.5], upper + [3.0]
    start = np.clip(start, np.array(lower) + 1e-9, np.array(upper) - 1e-9)
    res = least_squares(residuals, start, bounds=(lower, upper))
    m, floor, log_w = res.x[:3]
    return {"optimum": float(m), "floor": float(floor), "width": float(np.exp(log_w)),
            "k": float(res.x[3]) if free else ASYM_REF,
            "rss": float(np.sum(w * (model(res.x) - y) ** 2)), "dof": int(x.size - len(res.x))}


def estimate_template(dataset: str, label: str, log_lr, loss, diverged_log_lr=()) -> ValleyTemplate | None:
    """A valley template from one real sweep, or None when the sweep cannot give one.

    A sweep gives a template when at least 3 LRs finished and its fitted optimum lies inside
    them. With 5 or more finished LRs the asymmetry is fitted (penalized towards ASYM_REF, see
    `fit_linex`, weighed against the noise of a fit at ASYM_REF), else fixed at ASYM_REF. The
    noise is the pooled seed sd where some LR has repeats, else the fit's residual sd (NaN
    without a residual degree of freedom); `template_library` replaces estimates with fewer
    than MIN_NOISE_DOF degrees of freedom by their dataset's pooled one.

    Parameters
    ----------
    dataset, label : str
        Where the sweep comes from.
    log_lr, loss : array_like
        ln LR and final loss of its finished runs (several runs per LR are seeds).
    diverged_log_lr : array_like, default ()
        ln LR of its diverged runs.

    Returns
    -------
    ValleyTemplate or None
    """
    from scalefit.evaluation.truth import Sweep

    x, y = np.asarray(log_lr, dtype=float), np.asarray(loss, dtype=float)
    keep = np.isfinite(x) & np.isfinite(y)
    if np.unique(np.round(x[keep], 9)).size < 3:
        return None
    sweep = Sweep.from_arrays(x[keep], y[keep])
    n_lr = sweep.log_lr.size
    fit = fit_linex(sweep.log_lr, sweep.mean, sweep.counts, asymmetry_sd=None)
    if n_lr >= 5:
        scale = np.sqrt(fit["rss"] / fit["dof"]) if fit["rss"] > 0 else 1e-3 * fit["width"]
        fit = fit_linex(sweep.log_lr, sweep.mean, sweep.counts, asymmetry_sd=1.0,
                        noise_sd=max(scale, MIN_NOISE_TO_WIDTH * fit["width"]))
    m = fit["optimum"]
    if not (sweep.log_lr.min() < m < sweep.log_lr.max()) or fit["width"] <= 0:
        return None
    if sweep.has_repeats:
        dev = sweep.run_loss - sweep.mean[sweep.run_lr]
        dof = int((sweep.counts - 1).sum())
        noise, source = float(np.sqrt(np.sum(dev**2) / dof)), "seeds"
    else:
        dof = fit["dof"]
        noise, source = (float(np.sqrt(fit["rss"] / dof)), "fit residuals") if dof >= 1 else (float("nan"), "none")
    div = np.unique(np.round(np.asarray(diverged_log_lr, dtype=float), 9))
    div = div[np.isfinite(div) & (div > sweep.log_lr.max())]
    grid = np.unique(np.concatenate([sweep.log_lr, div]))
    counts = np.array([int(sweep.counts[np.isclose(sweep.log_lr, g)].sum()) or 1 for g in grid])
    diverge_above = float("inf") if div.size == 0 else 0.5 * (sweep.log_lr.max() + div.min()) - m
    return ValleyTemplate(
        dataset=dataset, label=label, rel_log_lr=grid - m, counts=counts, width=fit["width"],
        asymmetry=linex_asymmetry(fit["k"]), noise_sd=noise, floor=fit["floor"], diverge_above=diverge_above,
        noise_source=source, shape_source="fit" if n_lr >= 5 else "imputed", noise_dof=max(int(dof), 0))


def _cells_of(df: pd.DataFrame, keys: list[str], dataset: str, label_fmt) -> list[ValleyTemplate]:
    """Templates of every cell of a tidy table (columns lr, final_loss, diverged)."""
    out = []
    for key, g in df.groupby(keys, dropna=False):
        ok = g[~g["diverged"] & np.isfinite(g["final_loss"])]
        t = estimate_template(dataset, label_fmt(key if isinstance(key, tuple) else (key,)),
                              np.log(ok["lr"].to_numpy(dtype=float)), ok["final_loss"].to_numpy(dtype=float),
                              np.log(g.loc[g["diverged"], "lr"].to_numpy(dtype=float)))
        if t is not None:
            out.append(t)
    return out


def _steplaw(path: Path) -> list[ValleyTemplate]:
    df = pd.read_csv(path).assign(diverged=False)
    return _cells_of(df, ["n_params_active", "n_tokens", "batch_size"], "steplaw_moe",
                     lambda k: f"Na={k[0]:.3g} D={k[1]:.3g} B={k[2]:.0f}")


def _marin_qwen3(path: Path) -> list[ValleyTemplate]:
    df = pd.read_csv(path)
    df = df[df["status"] == "ok"].assign(diverged=False)
    return _cells_of(df, ["optimizer", "n_params"], "marin_qwen3", lambda k: f"{k[0]} N={k[1]:.3g}")


def _marin_adamw(path: Path) -> list[ValleyTemplate]:
    df = pd.read_csv(path)
    df = df[df["lr_sweep_row"].astype(bool)].copy()
    df["diverged"] = df["diverged"].astype(bool)
    return _cells_of(df, ["n_params", "n_tokens"], "marin_adamw", lambda k: f"N={k[0]:.3g} D={k[1]:.3g}")


def _hyperball_tokens(path: Path) -> list[ValleyTemplate]:
    df = pd.read_csv(path).assign(diverged=False)
    return _cells_of(df, ["optimizer", "n_tokens"], "hyperball_130m", lambda k: f"{k[0]} D={k[1]:.3g}")


def _hyperball_transfer(path: Path) -> list[ValleyTemplate]:
    df = pd.read_csv(path)
    df = df[(df["experiment"] == "muP_width_depth_sweep") & np.isfinite(df["final_loss"])].assign(diverged=False)
    return _cells_of(df, ["series", "hidden_dim", "num_layers"], "hyperball_transfer",
                     lambda k: f"{k[0]} h={k[1]:.0f} L={k[2]:.0f}")


def _cpu_ladder(path: Path) -> list[ValleyTemplate]:
    df = pd.read_csv(path)
    df = df[df["status"].isin(["ok", "diverged"])].copy()
    df["diverged"] = df["status"] == "diverged"
    return _cells_of(df, ["optimizer", "n_params", "n_tokens"], "cpu_ladder_v1",
                     lambda k: f"{k[0]} N={k[1]:.3g} D={k[2]:.3g}")


PUBLIC_SOURCES = [
    ("steplaw_moe", SHARED / "steplaw_moe" / "runs.csv", _steplaw),
    ("marin_qwen3", SHARED / "marin_qwen3_sweeps" / "runs.csv", _marin_qwen3),
    ("marin_adamw", SHARED / "marin_fantastic_adamw" / "runs.csv", _marin_adamw),
    ("hyperball_130m", SHARED / "hyperball_130m_lr_x_tokens" / "runs.csv", _hyperball_tokens),
    ("hyperball_transfer", SHARED / "hyperball_width_depth_transfer" / "runs.csv", _hyperball_transfer),
]
BUNDLED_SOURCE = ("cpu_ladder_v1", BUNDLED, _cpu_ladder)


def _impute(templates: list[ValleyTemplate]) -> list[ValleyTemplate]:
    """Replace noise estimates with fewer than MIN_NOISE_DOF degrees of freedom by their
    dataset's pooled one (sqrt of the summed squared residuals over the summed degrees of
    freedom, in loss units); a dataset without any gets the median noise-to-width ratio of
    the others. Noise below MIN_NOISE_TO_WIDTH of the width is raised to it."""
    from dataclasses import replace

    frame = pd.DataFrame([{"dataset": t.dataset, "ss": t.noise_sd**2 * t.noise_dof if t.noise_dof else 0.0,
                           "dof": t.noise_dof, "r": t.noise_sd / t.width} for t in templates])
    sums = frame.groupby("dataset")[["ss", "dof"]].sum()
    pooled = (np.sqrt(sums["ss"] / sums["dof"])).where(sums["dof"] > 0).to_dict()
    ratio = frame.loc[frame["dof"] >= MIN_NOISE_DOF, "r"]
    fallback = float(ratio.median()) if len(ratio) else 0.1
    out = []
    for t in templates:
        if t.noise_dof < MIN_NOISE_DOF or not np.isfinite(t.noise_sd):
            sd = pooled.get(t.dataset, np.nan)
            if np.isfinite(sd):
                t = replace(t, noise_sd=float(sd), noise_source=f"{t.dataset} pooled {t.noise_source}")
            else:
                t = replace(t, noise_sd=fallback * t.width, noise_source="imputed noise-to-width ratio")
        out.append(replace(t, noise_sd=max(t.noise_sd, MIN_NOISE_TO_WIDTH * t.width)))
    return out


def template_library(sources: str = "auto") -> tuple[list[ValleyTemplate], str]:
    """The valley templates of the available sweeps.

    Parameters
    ----------
    sources : {"auto", "public", "bundled", "all"}, default "auto"
        "auto": the public sweeps in ../shared/data where present, else the bundled
        data/cpu_ladder_v1; "public" or "bundled" only; "all" both.

    Returns
    -------
    templates : list of ValleyTemplate
        One per usable cell, noise imputed where the sweep could not measure it.
    note : str
        Which sources were read and which were absent.

    Raises
    ------
    FileNotFoundError
        When no source is available.
    """
    public = [s for s in PUBLIC_SOURCES if s[1].exists()]
    missing = [s[0] for s in PUBLIC_SOURCES if not s[1].exists()]
    if sources == "public":
        chosen = public
    elif sources == "bundled":
        chosen = [BUNDLED_SOURCE]
    elif sources == "all":
        chosen = public + [BUNDLED_SOURCE]
    else:
        chosen = public or [BUNDLED_SOURCE]
    chosen = [s for s in chosen if s[1].exists()]
    if not chosen:
        raise FileNotFoundError("no sweep data found for valley templates (../shared/data or data/cpu_ladder_v1)")
    templates = []
    for _, path, loader in chosen:
        templates += loader(path)
    note = "templates from " + ", ".join(s[0] for s in chosen)
    if not public:
        note += " only (../shared/data is absent: no public sweeps)"
    elif missing:
        note += f" (absent: {', '.join(missing)})"
    return _impute(templates), note


# ---------------------------------------------------------------------------------------------
# The known law and the worlds


def softplus(x):
    """ln(1 + e^x), without overflow."""
    return np.logaddexp(0.0, x)


@dataclass(frozen=True)
class KnownLaw:
    """A SYNTHETIC optimal-LR law outside the model's family (the module docstring's formula).

    Attributes
    ----------
    intercept : float
        ln LR* at N = n_ref and ratio_ref tokens per parameter, before the bend's share there.
    slope_n : float
        Per e-fold of N at fixed tokens per parameter (below the knee).
    slope_ratio : float
        Per e-fold of tokens per parameter, at n_ref.
    interaction : float
        Per e-fold of N per e-fold of tokens per parameter: how the N slope changes with D/N.
    bend : float
        How much the N slope changes past the knee, per e-fold.
    knee : float
        N at the bend's knee.
    softness : float
        E-folds of N over which the bend turns.
    n_ref, ratio_ref : float
        The reference N and tokens per parameter.
    """

    intercept: float
    slope_n: float
    slope_ratio: float
    interaction: float
    bend: float
    knee: float
    softness: float
    n_ref: float = N_MAX
    ratio_ref: float = RATIO_REF

    def log_lr_opt(self, n_params, n_tokens) -> np.ndarray:
        """ln LR* at (N, D), without cell deviations.

        Parameters
        ----------
        n_params, n_tokens : array_like
            Model size N and training tokens D.

        Returns
        -------
        numpy.ndarray
            ln of the optimal LR.
        """
        n, d = np.asarray(n_params, dtype=float), np.asarray(n_tokens, dtype=float)
        u = np.log(n / self.n_ref)
        w = np.log(d / n / self.ratio_ref)
        uk = np.log(self.knee / self.n_ref)
        s = self.softness
        return (self.intercept + self.slope_n * u + self.slope_ratio * w + self.interaction * u * w
                + self.bend * s * softplus((u - uk) / s))


@dataclass(frozen=True)
class World:
    """One SYNTHETIC world: a law, a ladder with its sweeps' designs, and targets.

    Attributes
    ----------
    index : int
        The world's number.
    law : KnownLaw
        The law.
    tokens_per_param : float
        D / N of every fitted cell and target.
    deviation_scale : float
        Scale of the Student-t (3 df) cell deviations, nats.
    dataset : str
        The dataset the world's valley templates come from.
    n_params : numpy.ndarray
        The ladder's N, largest first (N_MAX, N_MAX / 2, ...).
    deviations : numpy.ndarray
        Each ladder cell's deviation from the law, nats.
    templates : tuple of ValleyTemplate
        Each ladder cell's template.
    offsets : numpy.ndarray
        Each ladder cell's grid offset from its true optimum, nats.
    low_rates : numpy.ndarray
        Each ladder cell's exponential-pair rate on its valley's shallower side.
    multiples : tuple of float
        Targets' N over N_MAX.
    target_deviations : numpy.ndarray
        Each target cell's deviation from the law, nats.
    seed : int
        Seed of the sweeps' noise.
    """

    index: int
    law: KnownLaw
    tokens_per_param: float
    deviation_scale: float
    dataset: str
    n_params: np.ndarray
    deviations: np.ndarray
    templates: tuple
    offsets: np.ndarray
    low_rates: np.ndarray
    multiples: tuple
    target_deviations: np.ndarray
    seed: int

    def ladder(self, n_cells: int) -> tuple[np.ndarray, np.ndarray]:
        """N and D of the top `n_cells` cells (largest first)."""
        n = self.n_params[:n_cells]
        return n, self.tokens_per_param * n

    def true_log_lr(self, n_params, n_tokens, deviation=0.0) -> np.ndarray:
        """The latent ln LR* of a cell: the law plus the cell's deviation."""
        return self.law.log_lr_opt(n_params, n_tokens) + deviation

    def targets(self) -> pd.DataFrame:
        """One row per target: multiple, N, D, the law's ln LR* and the cell's latent ln LR*."""
        n = N_MAX * np.asarray(self.multiples, dtype=float)
        d = self.tokens_per_param * n
        law = self.law.log_lr_opt(n, d)
        return pd.DataFrame({"multiple": self.multiples, "n_params": n, "n_tokens": d,
                             "true_log_lr_law": law, "true_log_lr": law + self.target_deviations})


def draw_world(index: int, templates: list[ValleyTemplate], seed: int = 0, max_cells: int = 6,
               multiples=MULTIPLES) -> World:
    """Draw world `index` (deterministic in `seed` and `index`).

    Parameters
    ----------
    index : int
        The world's number.
    templates : list of ValleyTemplate
        The library (`template_library`); the world draws one dataset, then a template per cell.
    seed : int, default 0
        The benchmark's seed.
    max_cells : int, default 6
        Cells of the longest ladder; the world has max(max_cells, 6), so worlds are the same for
        any ladders of up to 6 cells.
    multiples : sequence of float, default MULTIPLES
        Targets' N over the largest fitted N.

    Returns
    -------
    World
    """
    rng = np.random.default_rng([seed, index, 17])
    datasets = sorted({t.dataset for t in templates})
    dataset = datasets[rng.integers(len(datasets))]
    pool = [t for t in templates if t.dataset == dataset]
    law = KnownLaw(
        intercept=float(np.log(3e-3) + rng.normal(0.0, 0.5)),
        slope_n=float(rng.uniform(-0.8, -0.2)),
        slope_ratio=float(rng.uniform(-0.3, 0.1)),
        interaction=float(rng.choice([-1, 1]) * rng.uniform(0.03, 0.1)),
        bend=float(rng.choice([-1, 1]) * rng.uniform(0.05, 0.25)),
        knee=float(N_MAX * np.exp(rng.uniform(np.log(1.5), np.log(10.0)))),
        softness=float(rng.uniform(0.5, 1.5)),
    )
    scale = float(rng.uniform(0.05, 0.1))
    max_cells = max(int(max_cells), 6)
    picks = tuple(pool[i] for i in rng.integers(len(pool), size=max_cells))
    offsets = []
    for t in picks:
        lo, hi = t.ok_range
        margin = min(0.05, 0.25 * (hi - lo))
        half = 0.5 * t.step
        # the optimum stays inside the finished part of the grid (lo + o < 0 < hi + o), and the
        # highest finished LR does not move past the divergence threshold
        upper = min(-lo - margin, t.diverge_above - hi - 1e-6)
        offsets.append(float(np.clip(rng.uniform(-half, half), -hi + margin, upper)))
    return World(
        index=index, law=law, tokens_per_param=float(np.exp(rng.uniform(np.log(10.0), np.log(100.0)))),
        deviation_scale=scale, dataset=dataset,
        n_params=N_MAX / 2.0 ** np.arange(max_cells),
        deviations=scale * rng.standard_t(3, size=max_cells),
        templates=picks, offsets=np.array(offsets), low_rates=rng.uniform(0.2, 0.8, size=max_cells),
        multiples=tuple(float(m) for m in multiples),
        target_deviations=scale * rng.standard_t(3, size=len(multiples)),
        seed=int(rng.integers(2**31)),
    )


def simulate_sweep(template: ValleyTemplate, log_lr_opt: float, floor: float, offset: float, low_rate: float,
                   rng: np.random.Generator) -> pd.DataFrame:
    """One cell's SYNTHETIC sweep from a template, around a known optimum.

    The template's relative grid is placed at ``log_lr_opt + offset``; every LR gets the
    template's seed count; the loss is ``floor + width * pair_rise(ln lr - log_lr_opt)`` plus
    Gaussian noise of the template's sd, with the exponential pair's rates set to match the
    template's asymmetry (`pair_rates`); LRs more than the template's `diverge_above` above the
    optimum diverge.

    Parameters
    ----------
    template : ValleyTemplate
        The valley.
    log_lr_opt : float
        The cell's true ln LR*.
    floor : float
        The loss at the optimum.
    offset : float
        The grid's offset from the optimum, nats.
    low_rate : float
        The exponential pair's rate on the valley's shallower side (`pair_rates`).
    rng : numpy.random.Generator
        Source of the noise.

    Returns
    -------
    pandas.DataFrame
        Columns lr, seed, final_loss (NaN where diverged), status.
    """
    p, q = pair_rates(template.asymmetry, low_rate)
    rows = []
    for rel, count in zip(template.rel_log_lr, template.counts):
        d = rel + offset
        diverged = d > template.diverge_above
        mean = floor + template.width * float(pair_rise(d, p, q))
        for s in range(int(count)):
            loss = np.nan if diverged else mean + template.noise_sd * rng.standard_normal()
            rows.append({"lr": float(np.exp(log_lr_opt + d)), "seed": s, "final_loss": loss,
                         "status": "diverged" if diverged else "ok"})
    return pd.DataFrame(rows)


def simulate_world(world: World) -> pd.DataFrame:
    """The SYNTHETIC runs of the world's longest ladder (``rung`` 0 is the largest N).

    Parameters
    ----------
    world : World
        The world.

    Returns
    -------
    pandas.DataFrame
        A runs table (contract columns, loss_kind "synthetic") with ``rung``, ``template`` and
        ``true_lr_opt``.
    """
    rng = np.random.default_rng(world.seed)
    n_all, d_all = world.ladder(len(world.n_params))
    base = float(np.median([t.floor for t in world.templates]))
    frames = []
    for rung, (n, d) in enumerate(zip(n_all, d_all)):
        t = world.templates[rung]
        opt = float(world.true_log_lr(n, d, world.deviations[rung]))
        floor = base + FLOOR_DROP * ((n / N_MAX) ** -0.3 - 1.0)
        sweep = simulate_sweep(t, opt, floor, world.offsets[rung], world.low_rates[rung], rng)
        frames.append(sweep.assign(
            n_params=int(round(n)), n_tokens=int(round(d)), batch_size=BATCH, weight_decay=0.1,
            optimizer="synthetic", schedule="synthetic", loss_kind="synthetic", rung=rung,
            template=f"{t.dataset}: {t.label}", true_lr_opt=float(np.exp(opt))))
    return pd.concat(frames, ignore_index=True)


# ---------------------------------------------------------------------------------------------
# Fitting and scoring


def score_world(world: World, runs: pd.DataFrame, n_cells: int, axis: str, settings) -> list[dict]:
    """Fit the top `n_cells` cells of a world along `axis` and score every target.

    Parameters
    ----------
    world : World
        The world.
    runs : pandas.DataFrame
        Its runs (`simulate_world`).
    n_cells : int
        The ladder's length.
    axis : {"ND", "N"}
        The fit's law axis.
    settings : scalefit.SamplerSettings
        The sampler settings.

    Returns
    -------
    list of dict
        One row per target: the world's law, the fit's diagnostics, `score_samples` of the
        posterior-predictive ln LR* draws against the latent optimum, and the errors of the
        fit's own baseline (``baseline_*``) and of the log-linear baseline in ln N alone
        (``baseline_n_*``).
    """
    from scalefit import ModelConfig, fit_runs, load_runs
    from scalefit.evaluation.scores import score_samples
    from scalefit.fit.baseline import fit_baseline
    from scalefit.fit.predict import nominal_log_lr_draws

    law = world.law
    head = {"world": world.index, "dataset": world.dataset, "ladder": n_cells, "axis": axis,
            "tokens_per_param": world.tokens_per_param, "slope_n": law.slope_n, "interaction": law.interaction,
            "bend": law.bend, "knee_multiple": law.knee / N_MAX, "softness": law.softness,
            "deviation_scale": world.deviation_scale}
    targets = world.targets()
    t0 = time.perf_counter()
    try:
        table = load_runs(runs[runs["rung"] < n_cells].drop(columns=["rung", "template"]), min_lrs=0)
        fit = fit_runs(table, ModelConfig(axis=axis), settings)
    except Exception as exc:  # a failed fit is a row, not a crash
        return [head | {"multiple": r.multiple, "error": f"{type(exc).__name__}: {exc}"} for r in targets.itertuples()]
    seconds = time.perf_counter() - t0
    conv = fit.convergence
    diag = {"fit_s": seconds, "diverging": conv.divergences, "max_rhat": conv.max_rhat,
            "min_ess_bulk": conv.min_ess_bulk, "converged": conv.converged,
            "attempts": fit.tree.attrs.get("attempts"), "error": ""}
    # The two-stage log-linear fit along ln N alone: on a ladder at fixed tokens per parameter
    # ln D = ln N + const, and the joint baseline's design is nearly collinear.
    base_n = fit_baseline(table.runs, table.cells, ModelConfig(axis="N"))
    rows = []
    for r in targets.itertuples():
        draws = nominal_log_lr_draws(fit, r.n_params, r.n_tokens)
        s = score_samples(draws, r.true_log_lr)
        base = fit.baseline.predict_log_lr(r.n_params, r.n_tokens)
        b_n = base_n.predict_log_lr(r.n_params, r.n_tokens)
        rows.append(head | diag | {
            "multiple": r.multiple, "n_params": r.n_params, "n_tokens": r.n_tokens,
            "true_log_lr": r.true_log_lr, "true_log_lr_law": r.true_log_lr_law,
            "median_log_lr": s["median"], "log10_err": s["log10_err"], "abs_log10_err": abs(s["log10_err"]),
            "cover50": s["cover50"], "cover90": s["cover90"], "width50_dec": s["width50_dec"],
            "width90_dec": s["width90_dec"], "interval_score": s["interval_score"], "pit": s["pit"],
            "baseline_log_lr": base, "baseline_log10_err": (base - r.true_log_lr) / LOG10,
            "baseline_abs_log10_err": abs(base - r.true_log_lr) / LOG10,
            "baseline_n_log_lr": b_n, "baseline_n_abs_log10_err": abs(b_n - r.true_log_lr) / LOG10})
    return rows


SCORES = ("cover90", "cover50", "width90_dec", "abs_log10_err", "baseline_abs_log10_err",
          "baseline_n_abs_log10_err", "interval_score")


def summary_table(rows: pd.DataFrame, n_boot: int = 2000) -> pd.DataFrame:
    """Pooled scores per (axis, ladder length ``ladder``, target multiple), each world one cluster.

    Parameters
    ----------
    rows : pandas.DataFrame
        The scored rows of fits that ran (`score_world`).
    n_boot : int, default 2000
        Bootstrap replicates.

    Returns
    -------
    pandas.DataFrame
        `scalefit.evaluation.pooling.score_table` of `SCORES` (``n_cells`` there counts worlds).
    """
    from scalefit.evaluation.pooling import score_table

    table = score_table(rows, list(SCORES), by=("axis", "ladder", "multiple"), cluster=("world",), n_boot=n_boot)
    return table.sort_values(["axis", "ladder", "multiple"], ascending=[False, True, True])


def format_summary(table: pd.DataFrame) -> str:
    """The summary as text: coverage and errors with their 90% cluster-bootstrap intervals.

    Parameters
    ----------
    table : pandas.DataFrame
        From `summary_table`.

    Returns
    -------
    str
    """
    def ci(r, c, pct=False):
        f = (lambda v: f"{100 * v:.0f}") if pct else (lambda v: f"{v:.2f}")
        return f"{f(r[c])} [{f(r[c + '_lo'])}, {f(r[c + '_hi'])}]"

    head = (f"{'axis':>4} {'cells':>5} {'target':>6} {'worlds':>6} {'cover90 %':>14} {'cover50 %':>14} "
            f"{'width90':>7} {'|err| model':>18} {'|err| base':>18} {'|err| base N':>18} {'int. score':>18}")
    lines = [head, "-" * len(head)]
    for _, r in table.iterrows():
        lines.append(
            f"{r['axis']:>4} {int(r['ladder']):>5} {r['multiple']:>5.0f}x {int(r['n_cells']):>6} "
            f"{ci(r, 'cover90', True):>14} {ci(r, 'cover50', True):>14} {r['width90_dec_median']:>7.2f} "
            f"{ci(r, 'abs_log10_err'):>18} {ci(r, 'baseline_abs_log10_err'):>18} "
            f"{ci(r, 'baseline_n_abs_log10_err'):>18} {ci(r, 'interval_score'):>18}")
    return "\n".join(lines)


def format_diagnostics(rows: pd.DataFrame) -> str:
    """Per fit axis and ladder, and per template dataset: how the sampler did.

    Parameters
    ----------
    rows : pandas.DataFrame
        The scored rows of fits that ran.

    Returns
    -------
    str
        Fits, the share with divergences, with r-hat above 1.01 and above 1.05, the median fit
        time, and (per dataset) the 90% coverage at the farthest target.
    """
    fits = rows.drop_duplicates(["world", "ladder", "axis"]).copy()
    far = rows[rows["multiple"] == rows["multiple"].max()].groupby("dataset")["cover90"].mean()

    def agg(g):
        return pd.Series({"fits": len(g), "divergent %": 100 * (g["diverging"] > 0).mean(),
                          "rhat>1.01 %": 100 * (g["max_rhat"] > 1.01).mean(),
                          "rhat>1.05 %": 100 * (g["max_rhat"] > 1.05).mean(), "median fit s": g["fit_s"].median()})

    by_fit = fits.groupby(["axis", "ladder"]).apply(agg, include_groups=False).round(1)
    by_data = fits.groupby("dataset").apply(agg, include_groups=False).round(1)
    by_data[f"cover90 % at {rows['multiple'].max():.0f}x"] = (100 * far).round(0)
    return by_fit.to_string() + "\n\n" + by_data.to_string()


def print_results(rows: pd.DataFrame) -> None:
    """Print the summary and diagnostics tables of scored rows, and which fits failed.

    Parameters
    ----------
    rows : pandas.DataFrame
        Rows from `score_world` (or read back from ``--save``).
    """
    if "templates" in rows and rows["templates"].notna().any():
        print(rows["templates"].dropna().iloc[0])
    errors = rows["error"] if "error" in rows else pd.Series("", index=rows.index)
    failed = errors.astype(object).fillna("").astype(str).ne("")
    if failed.any():
        print(f"{rows.loc[failed, ['world', 'ladder', 'axis']].drop_duplicates().shape[0]} fits failed:")
        print(rows.loc[failed, ["world", "ladder", "axis", "error"]].drop_duplicates().to_string(index=False))
    ok = rows[~failed]
    if ok.empty:
        return
    print("\nScores against the target cell's latent optimum, pooled over worlds: mean [90% cluster-bootstrap")
    print("interval over worlds]; errors, widths (median) and interval scores in decades of LR.")
    print("|err| base: the fit's own two-stage log-linear baseline; |err| base N: the same in ln N alone.\n")
    print(format_summary(summary_table(ok)))
    print("\nSampler diagnostics\n")
    print(format_diagnostics(ok))


def main(argv=None) -> None:
    """Run the benchmark (see the module docstring), or re-print saved rows with ``--from-csv``."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--worlds", type=int, default=20, help="worlds to draw (default 20)")
    ap.add_argument("--cells", type=int, nargs="+", default=[3, 4, 6], help="ladder lengths (default 3 4 6)")
    ap.add_argument("--axes", nargs="+", default=["ND", "N"], choices=["ND", "N"], help="fit axes (default ND N)")
    ap.add_argument("--multiples", type=float, nargs="+", default=list(MULTIPLES),
                    help="targets' N over the largest fitted N (default 3 10 30 100)")
    ap.add_argument("--draws", type=int, default=500, help="draws per chain, at most (default 500)")
    ap.add_argument("--tune", type=int, default=500, help="tuning draws per chain (default 500)")
    ap.add_argument("--retries", action="store_true", help="the package's full attempt order after divergences")
    ap.add_argument("--seed", type=int, default=0, help="seed of the worlds (default 0)")
    ap.add_argument("--sources", default="auto", choices=["auto", "public", "bundled", "all"],
                    help="valley templates: public sweeps if present else bundled (auto), or a choice")
    ap.add_argument("--save", type=Path, default=DEFAULT_SAVE,
                    help=f"rows CSV (default {DEFAULT_SAVE.relative_to(REPO)})")
    ap.add_argument("--from-csv", type=Path, help="re-print the tables of saved rows (no fitting)")
    args = ap.parse_args(argv)
    if args.from_csv:
        print_results(pd.read_csv(args.from_csv, keep_default_na=False, na_values=[""]))
        return

    from scalefit import SamplerSettings

    templates, note = template_library(args.sources)
    print(note)
    lib = pd.DataFrame([{"dataset": t.dataset, "width": t.width, "asym": t.asymmetry,
                         "noise/width": t.noise_sd / t.width,
                         "n_lr": t.rel_log_lr.size, "seeds": t.noise_source == "seeds"} for t in templates])
    print(lib.groupby("dataset").agg(templates=("width", "size"), median_width=("width", "median"),
                                     median_asym=("asym", "median"), median_noise_to_width=("noise/width", "median"),
                                     median_lrs=("n_lr", "median"), with_seeds=("seeds", "sum")).to_string())
    settings = SamplerSettings(draws=args.draws, tune=args.tune, seed=args.seed,
                               **({} if args.retries else {"retry_target_accept": None}))
    cells = sorted(set(args.cells))
    rows, t_start = [], time.perf_counter()
    args.save.parent.mkdir(parents=True, exist_ok=True)
    for w in range(args.worlds):
        world = draw_world(w, templates, args.seed, max(cells), args.multiples)
        runs = simulate_world(world)
        for n_cells in cells:
            for axis in args.axes:
                rows += score_world(world, runs, n_cells, axis, settings)
        frame = pd.DataFrame(rows).assign(templates=note, draws=args.draws, tune=args.tune, retries=args.retries,
                                          seed=args.seed)
        frame.to_csv(args.save, index=False)
        print(f"world {w + 1}/{args.worlds} ({world.dataset}, bend {world.law.bend:+.2f} at "
              f"{world.law.knee / N_MAX:.1f}x): {time.perf_counter() - t_start:.0f} s", flush=True)
    print(f"\n{args.worlds} worlds, ladders {cells}, rows in {args.save}\n")
    print_results(pd.DataFrame(rows).assign(templates=note))


if __name__ == "__main__":
    main()
