"""Simulation-based calibration (SBC; Talts et al. 2018, arXiv:1804.06788) of the optimal LR at
an unswept target, under the model's own prior.

What it measures
----------------
Whether the fit's posterior predictive of a new cell's optimum is calibrated when the data come
from the model itself. Each simulation draws the law's slope and curvature, the residual sd tau,
the discrepancy walk's scale kappa and its path, the floors, widths, noise and valley asymmetry
from the priors of ``ModelConfig(axis="N")`` (``scalefit.model.config.default_priors``), simulates
5 cells along N (1e7 to 1.6e8, 2x apart, D fixed at 2e9) with 8 LRs each (0.4 nats apart, placed
around the prior mean law, not the drawn optimum), fits them, and records the rank of the true
target optimum (a new cell at 4x the largest N) among 99 thinned posterior-predictive draws
(``scalefit.fit.predict.nominal_log_lr_draws``). The same is recorded for the law's slope,
curvature, tau, kappa, the valley asymmetry and the largest fitted cell's optimum.

The generative process is the one of ``scalefit.model.graph`` in NumPy, in natural units (ln LR
in nats, the law per e-fold of N):

    m_s = a + b u_s + c u_s^2 + W(t_s) + tau e_s,    u = ln N - mean ln N, t = ln N - min ln N
    y_r = L_s + A_s rise(x_r - m_s; k) + sigma_s T_4,
    L_s ~ N(f0 + fN z_s, floor_sd),  log A_s ~ N(mu_A, sd_A),  log sigma_s = n0 + nN z_s,

with W a Brownian motion (W(0) = 0, scale kappa) continued to the target, and the loss reported
as 3 + 0.02 y. Two parts of the model's prior are data-relative and are matched only
approximately: the intercept's prior (sd 2 nats about the mean best ln LR; here the law's level
is fixed, the posterior being dominated by the data), and the loss-side priors, stated in units
of the data's median within-cell loss range, which here is about, not exactly, 1.

How to read it
--------------
With a calibrated posterior the ranks are uniform on 0..99: the text histogram is flat, within
its binomial noise (about +-2 sqrt(sims/10) per bin of 10 ranks), and the chi-square p-value is
not small. A U shape means intervals too narrow (overconfident), a hump too wide, a slope a
biased centre (too many high ranks: the truth sits above the draws). ``in central 90%`` is the
share of truths between the 5th and 95th percent of the draws.

Cost
----
A fit of 5 cells x 8 LRs at the default 1000 tuning and at most 1000 kept draws per chain takes
about 10-60 s on 2 cores once compiled (median about 25 s; about a minute more the first time,
then cached on disk under ``SCALEFIT_CACHE``): the default 100 simulations take about 45-55 min,
``--sims 30`` about 15 min, ``--sims 5`` about 2-3 min. Each fit makes one sampling attempt at
the package's first acceptance level; ``--retries`` uses the package's full attempt order after
divergences (the ``scalefit fit`` default), at up to 4x the time. The rows record every fit's
divergences and r-hat, and the output repeats the target's p-value over the clean fits alone.

Usage
-----
    python benchmarks/sbc.py                 # 100 simulations
    python benchmarks/sbc.py --sims 5        # a quick look
    python benchmarks/sbc.py --from-csv benchmarks/results/sbc.csv

Everything here is SYNTHETIC.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
DEFAULT_SAVE = REPO / "benchmarks" / "results" / "sbc.csv"
N_RANKS = 99  # thinned draws per rank: ranks 0..99
N_BINS = 10
QUANTITIES = ("target", "slope", "curvature", "tau", "kappa", "asymmetry", "cell_opt")

if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


@dataclass(frozen=True)
class Design:
    """The simulated grid.

    Attributes
    ----------
    n_cells : int
        Cells along N.
    n_min : float
        The smallest N; the others are `step` apart.
    step : float
        Factor between neighbouring N.
    n_tokens : float
        D of every cell and of the target.
    n_lrs : int
        LRs per cell.
    lr_spacing : float
        Nats between neighbouring LRs.
    target_multiple : float
        The target's N over the largest N.
    lr_level : float
        The law's LR at the mean ln N.
    grid_slope : float
        The LR grids are centred on ln lr_level + grid_slope (ln N - mean ln N): the prior mean
        law (``law_slope_N``'s mean), never the drawn one.
    loss_level, loss_unit : float
        Reported loss = loss_level + loss_unit * y (y in the model's standardized loss units).
    """

    n_cells: int = 5
    n_min: float = 1e7
    step: float = 2.0
    n_tokens: float = 2e9
    n_lrs: int = 8
    lr_spacing: float = 0.4
    target_multiple: float = 4.0
    lr_level: float = 3e-3
    grid_slope: float = -0.4
    loss_level: float = 3.0
    loss_unit: float = 0.02

    @property
    def n_params(self) -> np.ndarray:
        """The cells' N, ascending."""
        return self.n_min * self.step ** np.arange(self.n_cells)

    @property
    def target(self) -> float:
        """The target's N."""
        return float(self.n_params[-1] * self.target_multiple)


def _scale(prior: dict, rng: np.random.Generator) -> float:
    """A draw from a scale prior: Gamma(alpha, beta) when given, else HalfNormal(sigma)."""
    if "alpha" in prior:
        return float(rng.gamma(prior["alpha"], 1.0 / prior["beta"]))
    return float(abs(rng.normal(0.0, prior["sigma"])))


def draw_prior(priors: dict, rng: np.random.Generator) -> dict:
    """One draw of the model's parameters (law along N, shared LINEX asymmetry).

    Parameters
    ----------
    priors : dict
        ``ModelConfig.priors``.
    rng : numpy.random.Generator
        Source of the draw.

    Returns
    -------
    dict
        slope, curvature (per e-fold and e-fold^2 of N), tau, kappa (nats), floor_intercept,
        floor_slope, floor_sd, log_width_mean, log_width_sd, log_noise_mean, log_noise_slope,
        asymmetry.
    """
    n = lambda name: float(rng.normal(priors[name]["mu"], priors[name]["sigma"]))  # noqa: E731
    return {
        "slope": n("law_slope_N"), "curvature": n("law_curvature_N"),
        "tau": _scale(priors["law_residual_sd"], rng), "kappa": _scale(priors["law_discrepancy"], rng),
        "floor_intercept": n("floor_intercept"), "floor_slope": n("floor_slope"),
        "floor_sd": _scale(priors["floor_sd"], rng),
        "log_width_mean": n("log_width_mean"),
        "log_width_sd": abs(float(rng.normal(0.0, priors["log_width_sd"]["sigma"]))),
        "log_noise_mean": n("log_noise_mean"),
        "log_noise_slope": float(rng.normal(0.0, priors["log_noise_sd"]["sigma"])),
        "asymmetry": n("valley_asymmetry"),
    }


def simulate(design: Design, params: dict, rng: np.random.Generator, nu: float = 4.0) -> tuple[pd.DataFrame, dict]:
    """A SYNTHETIC runs table from one prior draw, and the true values the fit is ranked against.

    Parameters
    ----------
    design : Design
        The grid.
    params : dict
        From `draw_prior`.
    rng : numpy.random.Generator
        Source of the walk, the residuals, the cells' effects, the grid jitter and the noise.
    nu : float, default 4.0
        Student-t degrees of freedom of the run noise (``ModelConfig.nu``).

    Returns
    -------
    runs : pandas.DataFrame
        The runs table (loss_kind "synthetic").
    truth : dict
        ``target`` and ``cell_opt`` (ln LR* of the target and of the largest cell), the drawn
        slope, curvature, tau, kappa and asymmetry, and ``target_n`` (the target's N).
    """
    from scalefit.evaluation.truth import rise

    log_n = np.log(design.n_params)
    u = log_n - log_n.mean()
    z = u / log_n.std()
    t = log_n - log_n[0]
    walk = np.concatenate([[0.0], np.cumsum(params["kappa"] * np.sqrt(np.diff(t)) * rng.standard_normal(len(t) - 1))])
    a = np.log(design.lr_level)
    law = a + params["slope"] * u + params["curvature"] * u**2
    opt = law + walk + params["tau"] * rng.standard_normal(len(u))
    floor = params["floor_intercept"] + params["floor_slope"] * z + params["floor_sd"] * rng.standard_normal(len(u))
    width = np.exp(params["log_width_mean"] + params["log_width_sd"] * rng.standard_normal(len(u)))
    noise = np.exp(params["log_noise_mean"] + params["log_noise_slope"] * z)
    # The grid follows the prior mean law (never the drawn optimum), jittered by up to half a step.
    rows = []
    for s in range(design.n_cells):
        centre = a + design.grid_slope * u[s] + rng.uniform(-0.5, 0.5) * design.lr_spacing
        x = centre + design.lr_spacing * (np.arange(design.n_lrs) - (design.n_lrs - 1) / 2)
        y = floor[s] + width[s] * rise(x - opt[s], params["asymmetry"]) + noise[s] * rng.standard_t(nu, len(x))
        for xi, yi in zip(x, y):
            rows.append({"n_params": int(round(design.n_params[s])), "n_tokens": int(design.n_tokens),
                         "batch_size": 65536, "lr": float(np.exp(xi)), "weight_decay": 0.1, "optimizer": "synthetic",
                         "schedule": "synthetic", "seed": 0,
                         "final_loss": float(design.loss_level + design.loss_unit * yi),
                         "loss_kind": "synthetic", "status": "ok", "true_lr_opt": float(np.exp(opt[s]))})
    u_t = np.log(design.target) - log_n.mean()
    walk_t = walk[-1] + params["kappa"] * np.sqrt(np.log(design.target) - log_n[-1]) * rng.standard_normal()
    target = a + params["slope"] * u_t + params["curvature"] * u_t**2 + walk_t + params["tau"] * rng.standard_normal()
    truth = {"target": float(target), "cell_opt": float(opt[-1]), "target_n": design.target} | {
        k: params[k] for k in ("slope", "curvature", "tau", "kappa", "asymmetry")}
    return pd.DataFrame(rows), truth


def thinned_rank(draws, truth: float, n_ranks: int = N_RANKS) -> int:
    """The number of `n_ranks` evenly thinned draws below `truth` (0..n_ranks).

    Parameters
    ----------
    draws : array_like
        Posterior draws, chains stacked (evenly spaced picks thin every chain alike).
    truth : float
        The true value.
    n_ranks : int, default N_RANKS
        Draws kept.

    Returns
    -------
    int
    """
    d = np.asarray(draws, dtype=float).ravel()
    idx = np.round(np.linspace(0, d.size - 1, n_ranks)).astype(int)
    return int(np.sum(d[idx] < truth))


def fit_ranks(runs: pd.DataFrame, truth: dict, settings, seed: int = 0) -> dict:
    """Fit one simulated table and rank the truth of every quantity among its posterior draws.

    Parameters
    ----------
    runs : pandas.DataFrame
        From `simulate`.
    truth : dict
        From `simulate`.
    settings : scalefit.SamplerSettings
        The sampler settings.
    seed : int, default 0
        Seed of the target's new-cell draws.

    Returns
    -------
    dict
        ``rank_<quantity>`` for each of QUANTITIES, and the fit's diagnostics.
    """
    from scalefit import ModelConfig, fit_runs, load_runs
    from scalefit.fit.predict import nominal_log_lr_draws, posterior_scalars, posterior_vector

    t0 = time.perf_counter()
    table = load_runs(runs, min_lrs=0)
    fit = fit_runs(table, ModelConfig(axis="N"), settings)
    post = {k: np.asarray(v).reshape(-1) for k, v in posterior_scalars(fit.posterior).items()}
    cells = fit.table.cells
    largest = cells.index.get_loc(cells["n_params"].idxmax())
    draws = {
        "target": nominal_log_lr_draws(fit, truth["target_n"], float(cells["n_tokens"].iloc[0]), seed=seed),
        "slope": post["law_slope_N_natural"], "curvature": post["law_curvature_N_natural"],
        "tau": post["law_residual_sd"], "kappa": post["law_discrepancy_N"], "asymmetry": post["valley_asymmetry"],
        "cell_opt": posterior_vector(fit.posterior, "log_lr_opt")[:, largest] + fit.std.x_center,
    }
    conv = fit.convergence
    return ({f"rank_{q}": thinned_rank(draws[q], truth[q]) for q in QUANTITIES}
            | {"fit_s": time.perf_counter() - t0, "diverging": conv.divergences, "max_rhat": conv.max_rhat,
               "min_ess_bulk": conv.min_ess_bulk, "converged": conv.converged,
               "attempts": fit.tree.attrs.get("attempts"), "error": ""})


def rank_histogram(ranks, n_ranks: int = N_RANKS, n_bins: int = N_BINS) -> tuple[np.ndarray, float]:
    """Counts of ranks in `n_bins` equal bins of 0..n_ranks, and the chi-square uniformity p-value.

    Parameters
    ----------
    ranks : array_like
        Ranks in 0..n_ranks.
    n_ranks : int, default N_RANKS
        The largest rank.
    n_bins : int, default N_BINS
        Bins; (n_ranks + 1) should be a multiple of it for equal bins.

    Returns
    -------
    tuple of (numpy.ndarray, float)
        The counts and the p-value (NaN with no ranks).
    """
    from scipy import stats

    r = np.asarray(ranks, dtype=float)
    r = r[np.isfinite(r)].astype(int)
    counts = np.bincount(r * n_bins // (n_ranks + 1), minlength=n_bins)
    if r.size == 0:
        return counts, float("nan")
    return counts, float(stats.chisquare(counts).pvalue)


def format_histogram(name: str, ranks, n_ranks: int = N_RANKS, n_bins: int = N_BINS, bar: int = 40) -> str:
    """A text rank histogram with its chi-square p-value.

    Parameters
    ----------
    name : str
        The quantity.
    ranks : array_like
        Its ranks.
    n_ranks, n_bins : int
        As in `rank_histogram`.
    bar : int, default 40
        Characters of the longest bar.

    Returns
    -------
    str
    """
    counts, p = rank_histogram(ranks, n_ranks, n_bins)
    r = np.asarray(ranks, dtype=float)
    r = r[np.isfinite(r)]
    central = np.mean((r >= 0.05 * n_ranks) & (r <= 0.95 * n_ranks)) if r.size else float("nan")
    expected = r.size / n_bins
    width = (n_ranks + 1) // n_bins
    lines = [f"{name}: {r.size} ranks, chi-square p = {p:.3f}, mean rank / {n_ranks} = "
             f"{np.mean(r) / n_ranks if r.size else float('nan'):.2f}, in central 90% = {100 * central:.0f}%"]
    top = max(counts.max(), 1)
    for i, c in enumerate(counts):
        lo = i * width
        mark = "#" * int(round(bar * c / top))
        lines.append(f"  {lo:>3}-{lo + width - 1:<3} {c:>4} {mark}")
    lines.append(f"  (expected {expected:.1f} per bin)")
    return "\n".join(lines)


def print_results(rows: pd.DataFrame) -> None:
    """Print the rank histograms (target first) and the fits' diagnostics.

    Parameters
    ----------
    rows : pandas.DataFrame
        One row per simulation (`fit_ranks` plus the drawn parameters).
    """
    errors = rows["error"] if "error" in rows else pd.Series("", index=rows.index)
    failed = errors.astype(object).fillna("").astype(str).ne("")
    if failed.any():
        print(f"{int(failed.sum())} fits failed:")
        print(rows.loc[failed, ["sim", "error"]].to_string(index=False))
    ok = rows[~failed]
    if ok.empty:
        return
    for q in QUANTITIES:
        print(format_histogram(q, ok[f"rank_{q}"]))
        print()
    print(f"fits: {len(ok)}; with divergences {100 * (ok['diverging'] > 0).mean():.0f}%; r-hat > 1.01 "
          f"{100 * (ok['max_rhat'] > 1.01).mean():.0f}%; median fit {ok['fit_s'].median():.1f} s")
    clean = ok[(ok["diverging"] == 0) & (ok["max_rhat"] <= 1.01)]
    if 0 < len(clean) < len(ok):
        _, p = rank_histogram(clean["rank_target"])
        print(f"target, fits without divergences and r-hat <= 1.01 only: {len(clean)} ranks, chi-square p = {p:.3f}")


def main(argv=None) -> None:
    """Run the SBC (see the module docstring), or re-print saved ranks with ``--from-csv``."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sims", type=int, default=100, help="simulations (default 100)")
    ap.add_argument("--draws", type=int, default=1000, help="draws per chain, at most (default 1000)")
    ap.add_argument("--tune", type=int, default=1000, help="tuning draws per chain (default 1000)")
    ap.add_argument("--retries", action="store_true", help="the package's full attempt order after divergences")
    ap.add_argument("--seed", type=int, default=0, help="seed of the simulations (default 0)")
    ap.add_argument("--save", type=Path, default=DEFAULT_SAVE,
                    help=f"ranks CSV (default {DEFAULT_SAVE.relative_to(REPO)})")
    ap.add_argument("--from-csv", type=Path, help="re-print the histograms of saved ranks (no fitting)")
    args = ap.parse_args(argv)
    if args.from_csv:
        print_results(pd.read_csv(args.from_csv, keep_default_na=False, na_values=[""]))
        return

    from scalefit import ModelConfig, SamplerSettings

    priors = ModelConfig(axis="N").priors
    design = Design(grid_slope=priors["law_slope_N"]["mu"])
    settings = SamplerSettings(draws=args.draws, tune=args.tune, seed=args.seed,
                               **({} if args.retries else {"retry_target_accept": None}))
    rows, t_start = [], time.perf_counter()
    args.save.parent.mkdir(parents=True, exist_ok=True)
    for sim in range(args.sims):
        rng = np.random.default_rng([args.seed, sim, 29])
        params = draw_prior(priors, rng)
        runs, truth = simulate(design, params, rng)
        row = {"sim": sim} | {f"true_{k}": v for k, v in truth.items()} | {
            f"prior_{k}": v for k, v in params.items() if k not in truth}
        try:
            row |= fit_ranks(runs, truth, settings, seed=sim)
        except Exception as exc:  # a failed fit is a row, not a crash
            row |= {"error": f"{type(exc).__name__}: {exc}"}
        rows.append(row | {"draws": args.draws, "tune": args.tune, "retries": args.retries, "seed": args.seed})
        pd.DataFrame(rows).to_csv(args.save, index=False)
        print(f"sim {sim + 1}/{args.sims}: rank {row.get('rank_target', 'failed')}, "
              f"{time.perf_counter() - t_start:.0f} s", flush=True)
    print(f"\n{args.sims} simulations, ranks in {args.save}\n")
    print_results(pd.DataFrame(rows))


if __name__ == "__main__":
    main()
