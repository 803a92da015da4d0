"""Synthetic LR grids with a known, curved optimal-LR law (for tests, demos and benchmarks).

Everything this module produces is SYNTHETIC and is labelled so (loss_kind="synthetic").

Truth, with u = ln(N / n_ref) and v = ln(D / d_ref):

    ln lr*(N, D) = intercept + slope_n u + curvature_n u^2 + slope_d v + curvature_d v^2
    loss(lr)     = E + a N^-alpha + b D^-beta + width_s * g(ln lr - ln lr*) + noise

where width_s scatters log-normally from cell to cell (real valleys differ in width).

with g the asymmetric power-law pair of THEORY.md 4.1 (rates p, q):
g(d) = 2[q e^{-pd} + p e^{qd} - (p+q)] / (pq(p+q)). The fitted model uses a different
asymmetric shape (LINEX), so recovery tests also test robustness to a misspecified valley. Runs more than
`diverge_octaves` above the optimum diverge (status "diverged", loss NaN). The default
curvature (0.06 per nat^2 of N) makes log-linear extrapolation from 2M-32M to 128M
underestimate the optimum by about 2x, the size of effect arXiv:2606.29158 reports.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd



@dataclass(frozen=True)
class SyntheticTruth:
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
        u = np.log(np.asarray(n_params, dtype=float) / self.n_ref)
        v = np.log(np.asarray(n_tokens, dtype=float) / self.d_ref)
        b = np.log(np.asarray(batch_size if batch_size is not None else self.b_ref, dtype=float) / self.b_ref)
        return (self.intercept + self.slope_n * u + self.curvature_n * u**2 + self.slope_d * v
                + self.curvature_d * v**2 + self.slope_b * b)

    def floor(self, n_params, n_tokens) -> np.ndarray:
        n, d = np.asarray(n_params, dtype=float), np.asarray(n_tokens, dtype=float)
        return self.loss_e + self.loss_a * n**-self.loss_alpha + self.loss_b * d**-self.loss_beta

    def loss(self, lr, n_params, n_tokens, width_factor: float = 1.0, batch_size=None) -> np.ndarray:
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
    """A runs table: every (N, D) cell swept over `n_lrs` half-octave LRs bracketing the truth.

    The grid centre is jittered by up to half an octave so optima do not sit on grid points.
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
    """One cell's runs at the given LRs: its valley width drawn once, then per seed and LR the
    loss with noise and occasional outliers, or a divergence far above the optimum."""
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

    The map's log-slope k rises with N, as THEORY.md 3.4 predicts when larger models (smaller
    LRs) spend more of training in the weight-norm transient; so the nominal optimum
    ln lr* = ln lr_ref + (ln eff* - ln eff_ref) / k(N) curves upward in ln N.
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
        return self.k_ref + self.k_slope * np.log(np.asarray(n_params, dtype=float) / self.n_ref)

    def log_eff_opt(self, n_params, n_tokens) -> np.ndarray:
        u = np.log(np.asarray(n_params, dtype=float) / self.n_ref)
        v = np.log(np.asarray(n_tokens, dtype=float) / self.d_ref)
        return np.log(self.eff_ref) + self.slope_n * u + self.slope_d * v

    def log_eff(self, lr, n_params) -> np.ndarray:
        return np.log(self.eff_ref) + self.k(n_params) * (np.log(lr) - np.log(self.lr_ref))

    def log_lr_opt(self, n_params, n_tokens) -> np.ndarray:
        return np.log(self.lr_ref) + (self.log_eff_opt(n_params, n_tokens) - np.log(self.eff_ref)) / self.k(n_params)


def make_effective_grid(
    truth: EffectiveTruth = EffectiveTruth(),
    n_params=(1e6, 2e6, 4e6, 8e6, 16e6, 32e6),
    n_tokens=(2e8, 8e8),
    n_lrs: int = 8,
    seed: int = 0,
    optimizer: str = "adamw",
) -> pd.DataFrame:
    """A runs table with measured eff_lr whose loss valley lives in effective-LR space."""
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
