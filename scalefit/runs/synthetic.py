"""Synthetic LR grids with a known, curved optimal-LR law (for tests, demos and benchmarks).

Everything this module produces is SYNTHETIC and is labelled so (loss_kind="synthetic").

Truth, with u = ln(N / n_ref) and v = ln(D / d_ref):

    ln lr*(N, D) = intercept + slope_n u + curvature_n u^2 + slope_d v + curvature_d v^2
    loss(lr)     = E + a N^-alpha + b D^-beta + width_s * g(ln lr - ln lr*) + noise

where width_s scatters log-normally from cell to cell (real valleys differ in width), and g is
the asymmetric power-law pair (rates p, q; see the theory page, docs/theory.md, "Valley shapes"):
g(d) = 2[q e^{-pd} + p e^{qd} - (p+q)] / (pq(p+q)). The fitted model uses a different
asymmetric shape (LINEX), so recovery tests also test robustness to a misspecified valley. Runs
more than `diverge_octaves` above the optimum diverge (status "diverged", loss NaN). The default
curvature (0.06 per nat^2 of N) makes log-linear extrapolation from 2M-32M to 128M
underestimate the optimum by about 2x, the size of effect arXiv:2606.29158 reports.

`EffectiveTruth` and `make_effective_grid` build the other world: straight in effective LR,
curved in nominal LR.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

__all__ = ["SyntheticTruth", "make_grid", "sweep_rows", "EffectiveTruth", "make_effective_grid"]


@dataclass(frozen=True)
class SyntheticTruth:
    """A SYNTHETIC world with a known, curved optimal-LR law (the module docstring gives the formulas).

    Attributes
    ----------
    intercept : float
        ln lr* at (n_ref, d_ref, b_ref).
    slope_n, curvature_n : float
        The law's slope per e-fold of N and curvature per e-fold^2.
    slope_d, curvature_d : float
        The same along D.
    slope_b : float
        Slope per e-fold of batch size (tokens/step), at fixed N and D.
    n_ref, d_ref, b_ref : float
        The reference N, D and batch size the law is centred on.
    loss_e, loss_a, loss_alpha, loss_b, loss_beta : float
        The loss floor E + a N^-alpha + b D^-beta.
    width : float
        Loss per nat^2 near the optimum.
    width_cell_sd : float
        Cell-to-cell sd of ln(width).
    rate_low, rate_high : float
        p and q of the power-law pair: the low-LR side's rate and the steeper high-LR side's.
    noise_sd : float
        Run-to-run loss noise.
    outlier_prob : float
        The chance that a run lands 5-15 noise sds off (a bad seed, a node fault).
    diverge_octaves : float
        Runs more than this many octaves above the optimum diverge.

    Examples
    --------
    >>> from scalefit.runs.synthetic import SyntheticTruth
    >>> truth = SyntheticTruth(curvature_n=0.0)  # a log-linear world
    >>> round(float(truth.log_lr_opt(8e6, 4e8)), 3)
    -5.809
    """

    intercept: float = np.log(3e-3)  # ln lr* at (n_ref, d_ref)
    slope_n: float = -0.5
    curvature_n: float = 0.06
    slope_d: float = -0.3
    curvature_d: float = 0.0
    slope_b: float = 0.0  # per e-fold of batch size (tokens/step), at fixed N and D
    n_ref: float = 8e6
    d_ref: float = 4e8
    b_ref: float = 65536.0
    loss_e: float = 1.7
    loss_a: float = 400.0
    loss_alpha: float = 0.34
    loss_b: float = 410.0
    loss_beta: float = 0.28
    width: float = 0.04  # loss per nat^2 near the optimum
    width_cell_sd: float = 0.2  # cell-to-cell scatter of ln(width): real valleys differ
    rate_low: float = 0.6  # p: exponential growth rate of the low-LR side
    rate_high: float = 1.2  # q: steeper high-LR side
    noise_sd: float = 0.004
    outlier_prob: float = 0.02  # a few runs land far off (bad seed, node fault)
    diverge_octaves: float = 2.0

    def log_lr_opt(self, n_params, n_tokens, batch_size=None) -> np.ndarray:
        """The true ln lr* at (N, D[, B]).

        Parameters
        ----------
        n_params, n_tokens : array_like
            Model size N and training tokens D.
        batch_size : array_like, optional
            Tokens per step; default b_ref.

        Returns
        -------
        numpy.ndarray
            ln of the optimal LR.
        """
        u = np.log(np.asarray(n_params, dtype=float) / self.n_ref)
        v = np.log(np.asarray(n_tokens, dtype=float) / self.d_ref)
        b = np.log(np.asarray(batch_size if batch_size is not None else self.b_ref, dtype=float) / self.b_ref)
        return (self.intercept + self.slope_n * u + self.curvature_n * u**2 + self.slope_d * v
                + self.curvature_d * v**2 + self.slope_b * b)

    def floor(self, n_params, n_tokens) -> np.ndarray:
        """The loss at the optimal LR, E + a N^-alpha + b D^-beta.

        Parameters
        ----------
        n_params, n_tokens : array_like
            Model size N and training tokens D.

        Returns
        -------
        numpy.ndarray
            The noise-free loss floor.
        """
        n, d = np.asarray(n_params, dtype=float), np.asarray(n_tokens, dtype=float)
        return self.loss_e + self.loss_a * n**-self.loss_alpha + self.loss_b * d**-self.loss_beta

    def loss(self, lr, n_params, n_tokens, width_factor: float = 1.0, batch_size=None) -> np.ndarray:
        """The noise-free loss at `lr`: the floor plus the power-law-pair valley.

        Parameters
        ----------
        lr : array_like
            Learning rate.
        n_params, n_tokens : array_like
            Model size N and training tokens D.
        width_factor : float, default 1.0
            The cell's width relative to `width`.
        batch_size : array_like, optional
            Tokens per step; default b_ref.

        Returns
        -------
        numpy.ndarray
            The loss (no noise, no divergence).
        """
        d = np.log(lr) - self.log_lr_opt(n_params, n_tokens, batch_size)
        p, q = self.rate_low, self.rate_high
        shape = 2.0 * (q * np.exp(-p * d) + p * np.exp(q * d) - (p + q)) / (p * q * (p + q))
        return self.floor(n_params, n_tokens) + self.width * width_factor * shape


def make_grid(
    truth: SyntheticTruth = SyntheticTruth(),
    n_params=(2e6, 4e6, 8e6, 16e6, 32e6),
    n_tokens=(2e8, 4e8, 8e8),
    n_lrs: int = 8,
    seeds=(0,),
    seed: int = 0,
    batch_sizes=(65536,),
) -> pd.DataFrame:
    """A SYNTHETIC runs table: every (N, D, B) cell swept over half-octave LRs bracketing the truth.

    The grid centre is jittered by up to half an octave so optima do not sit on grid points.

    Parameters
    ----------
    truth : SyntheticTruth, optional
        The world to sample.
    n_params, n_tokens : sequence of float
        The model sizes and token budgets (every combination is a cell).
    n_lrs : int, default 8
        LRs per sweep, half an octave apart.
    seeds : sequence of int, default (0,)
        A run per seed at every LR.
    seed : int, default 0
        Seed of the random generator (jitter, widths, noise, outliers).
    batch_sizes : sequence of float, default (65536,)
        Tokens per step; each one multiplies the cells.

    Returns
    -------
    pandas.DataFrame
        A runs table with the contract columns, loss_kind "synthetic" and true_lr_opt.

    Examples
    --------
    >>> from scalefit.runs.synthetic import make_grid
    >>> from scalefit.runs.table import load_runs
    >>> table = load_runs(make_grid(seed=1))
    >>> len(table.cells)
    15
    """
    rng = np.random.default_rng(seed)
    rows = []
    for n in n_params:
        for d, bs in [(d, bs) for d in n_tokens for bs in batch_sizes]:
            log2_opt = truth.log_lr_opt(n, d, bs) / np.log(2)
            centre = log2_opt + rng.uniform(-0.5, 0.5)
            log2_lrs = centre + 0.5 * (np.arange(n_lrs) - (n_lrs - 1) / 2)
            rows += sweep_rows(truth, n, d, bs, 2.0**log2_lrs, seeds, rng)
    return pd.DataFrame(rows)


def sweep_rows(truth: SyntheticTruth, n: float, d: float, bs: float, lrs, seeds, rng) -> list[dict]:
    """One SYNTHETIC cell's runs at the given LRs.

    The cell's valley width is drawn once; then, per seed and LR, the loss with noise and
    occasional outliers, or a divergence far above the optimum.

    Parameters
    ----------
    truth : SyntheticTruth
        The world to sample.
    n, d, bs : float
        The cell's model size, tokens and batch size.
    lrs : sequence of float
        The LRs to run.
    seeds : sequence of int
        A run per seed at every LR.
    rng : numpy.random.Generator
        The random generator (advanced in place).

    Returns
    -------
    list of dict
        One runs-table row per run.
    """
    log2_opt = truth.log_lr_opt(n, d, bs) / np.log(2)
    width_factor = float(np.exp(rng.normal(0.0, truth.width_cell_sd)))
    rows = []
    for s in seeds:
        for lr in lrs:
            lr = float(lr)
            diverged = np.log2(lr) - log2_opt > truth.diverge_octaves
            noise = rng.normal(0, truth.noise_sd)
            if rng.uniform() < truth.outlier_prob:
                noise += rng.choice([-1, 1]) * rng.uniform(5, 15) * truth.noise_sd
            loss = np.nan if diverged else float(truth.loss(lr, n, d, width_factor, bs) + noise)
            rows.append({
                "n_params": int(n), "n_params_total": int(n + 50_000 * np.sqrt(n / 1e6)),
                "n_tokens": int(d), "batch_size": int(bs), "lr": lr,
                "weight_decay": 0.1, "optimizer": "adamw", "schedule": "synthetic",
                "warmup": 0.02, "seed": int(s), "final_loss": loss,
                "loss_kind": "synthetic", "status": "diverged" if diverged else "ok",
                "true_lr_opt": float(np.exp(truth.log_lr_opt(n, d, bs))),
            })
    return rows


@dataclass(frozen=True)
class EffectiveTruth:
    """A SYNTHETIC world that is straight in effective LR and curved in nominal LR.

    ln eff*(N, D) = ln eff_ref + slope_n u + slope_d v          (log-linear: no curvature)
    ln eff(lr)    = ln eff_ref + k(N) (ln lr - ln lr_ref),       k(N) = k_ref + k_slope u

    The map's log-slope k rises with N, as the theory page predicts when larger models (smaller
    LRs) spend more of training in the weight-norm transient (docs/theory.md, "Along N at a fixed
    budget"); so the nominal optimum ln lr* = ln lr_ref + (ln eff* - ln eff_ref) / k(N) curves
    upward in ln N.

    Attributes
    ----------
    lr_ref, eff_ref : float
        The nominal LR that maps to eff_ref, and the effective optimum at (n_ref, d_ref).
    slope_n, slope_d : float
        The effective optimum's slopes per e-fold of N and D.
    k_ref, k_slope : float
        The map's log-slope at n_ref and its change per e-fold of N.
    n_ref, d_ref : float
        The reference N and D.
    eff_noise_sd : float
        Measurement scatter of eff_lr (ln units).
    valley : SyntheticTruth
        Floors, width, shape and noise of the loss.
    """

    lr_ref: float = 3e-3
    eff_ref: float = 1e-3
    slope_n: float = -0.35
    slope_d: float = -0.15
    k_ref: float = 0.72
    k_slope: float = 0.10
    n_ref: float = 8e6
    d_ref: float = 4e8
    eff_noise_sd: float = 0.02  # measurement scatter of eff_lr (ln units)
    valley: SyntheticTruth = SyntheticTruth()  # floors, width, shape and noise of the loss

    def k(self, n_params) -> np.ndarray:
        """The map's log-slope d ln eff / d ln lr at model size N.

        Parameters
        ----------
        n_params : array_like
            Model size N.

        Returns
        -------
        numpy.ndarray
            k(N) = k_ref + k_slope ln(N / n_ref).
        """
        return self.k_ref + self.k_slope * np.log(np.asarray(n_params, dtype=float) / self.n_ref)

    def log_eff_opt(self, n_params, n_tokens) -> np.ndarray:
        """The true ln of the optimal effective LR (log-linear in ln N and ln D).

        Parameters
        ----------
        n_params, n_tokens : array_like
            Model size N and training tokens D.

        Returns
        -------
        numpy.ndarray
            ln eff*.
        """
        u = np.log(np.asarray(n_params, dtype=float) / self.n_ref)
        v = np.log(np.asarray(n_tokens, dtype=float) / self.d_ref)
        return np.log(self.eff_ref) + self.slope_n * u + self.slope_d * v

    def log_eff(self, lr, n_params) -> np.ndarray:
        """ln of the effective LR a run at nominal `lr` has (no measurement noise).

        Parameters
        ----------
        lr : array_like
            Nominal learning rate.
        n_params : array_like
            Model size N.

        Returns
        -------
        numpy.ndarray
            ln eff(lr).
        """
        return np.log(self.eff_ref) + self.k(n_params) * (np.log(lr) - np.log(self.lr_ref))

    def log_lr_opt(self, n_params, n_tokens) -> np.ndarray:
        """The true ln of the optimal nominal LR, curved in ln N through k(N).

        Parameters
        ----------
        n_params, n_tokens : array_like
            Model size N and training tokens D.

        Returns
        -------
        numpy.ndarray
            ln lr*.
        """
        return np.log(self.lr_ref) + (self.log_eff_opt(n_params, n_tokens) - np.log(self.eff_ref)) / self.k(n_params)


def make_effective_grid(
    truth: EffectiveTruth = EffectiveTruth(),
    n_params=(1e6, 2e6, 4e6, 8e6, 16e6, 32e6),
    n_tokens=(2e8, 8e8),
    n_lrs: int = 8,
    seed: int = 0,
    optimizer: str = "adamw",
) -> pd.DataFrame:
    """A SYNTHETIC runs table with measured eff_lr whose loss valleys live in effective-LR space.

    Parameters
    ----------
    truth : EffectiveTruth, optional
        The world to sample.
    n_params, n_tokens : sequence of float
        The model sizes and token budgets (every combination is a cell, batch size 65536).
    n_lrs : int, default 8
        LRs per sweep, half an octave apart, bracketing the nominal optimum.
    seed : int, default 0
        Seed of the random generator.
    optimizer : str, default "adamw"
        The optimizer column's value.

    Returns
    -------
    pandas.DataFrame
        A runs table with eff_lr, loss_kind "synthetic", true_lr_opt and true_eff_lr_opt.
    """
    rng = np.random.default_rng(seed)
    v = truth.valley
    rows = []
    for n in n_params:
        for d in n_tokens:
            log2_opt = truth.log_lr_opt(n, d) / np.log(2)
            centre = log2_opt + rng.uniform(-0.5, 0.5)
            width_factor = float(np.exp(rng.normal(0.0, v.width_cell_sd)))
            for log2_lr in centre + 0.5 * (np.arange(n_lrs) - (n_lrs - 1) / 2):
                lr = float(2.0**log2_lr)
                de = truth.log_eff(lr, n) - truth.log_eff_opt(n, d)
                p, q = v.rate_low, v.rate_high
                shape = 2.0 * (q * np.exp(-p * de) + p * np.exp(q * de) - (p + q)) / (p * q * (p + q))
                diverged = de / np.log(2) > v.diverge_octaves
                loss = v.floor(n, d) + v.width * width_factor * shape + rng.normal(0, v.noise_sd)
                rows.append({
                    "n_params": int(n), "n_tokens": int(d), "batch_size": 65536, "lr": lr,
                    "eff_lr": float(np.exp(truth.log_eff(lr, n) + rng.normal(0, truth.eff_noise_sd))),
                    "weight_decay": 0.1, "optimizer": optimizer, "schedule": "synthetic", "seed": 0,
                    "final_loss": np.nan if diverged else float(loss), "loss_kind": "synthetic",
                    "status": "diverged" if diverged else "ok",
                    "true_lr_opt": float(np.exp(truth.log_lr_opt(n, d))),
                    "true_eff_lr_opt": float(np.exp(truth.log_eff_opt(n, d))),
                })
    return pd.DataFrame(rows)
