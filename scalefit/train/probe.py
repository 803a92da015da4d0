"""Weight-norm probe: per 2-D matrix norms, relative updates and per-step angles.

On a probe step t the probe copies each tracked matrix before ``optimizer.step()`` and, after it,
records (THEORY.md §1.3-1.4), with all reductions in float64:

- ``norm``        ||W_{t+1}||_F (and ``norm_prev`` = ||W_t||_F),
- ``rel_update``  ||W_{t+1} - W_t||_F / ||W_t||_F,
- ``theta``       the angle between W_t and W_{t+1}: with dW = W_{t+1} - W_t, a = <dW, W_t>/||W_t||
                  and dW_perp = dW - a W_t/||W_t||, theta = atan2(||dW_perp||, ||W_t|| + a)
                  (acos of the cosine in fp32 is ~35% off at theta = 1e-3),
- ``lr_mult``     s(t), the schedule multiplier used for the step.

Tracked: every hidden matrix (group ``hidden``: q, k, v, o, fc, proj), the token embedding
(``embedding``) and an untied LM head (``head``); only ``hidden`` enters the aggregates.
Cadence: every step for t < ``dense_until`` (the fast early transient), then every ``every``
steps, and always the last step.

Run aggregates (:func:`summarize`), with theta_bar_t = mean of theta over hidden matrices:

- ``eff_lr``            mean over probed t with s(t) >= 0.1 of theta_bar_t / s(t): "the angle the
                        run would take at peak LR", comparable with the peak nominal LR;
- ``eff_lr_whole_run``  mean over probed t of theta_bar_t (the implicit schedule's mean);
- ``eff_lr_stable``     mean of theta_bar_t / s(t) over probed t with s(t) >= 0.99 (the plateau);
- ``theta_sum``         integrated angular distance, sum_t theta_bar_t estimated from the probed
                        steps (mean x total steps);
- ``rel_update_eff``    like ``eff_lr`` with the relative update instead of the angle;
- ``rms_final``         mean over hidden matrices of RMS(W) = ||W||/sqrt(numel) at the last probe;
- AdamW only: ``t_eq`` the first probed step where the mean hidden RMS^2 is within 10% of its
  quasi-equilibrium lr_t / (2 wd) (THEORY §3.2; NaN if never), ``transient_frac`` = t_eq / steps,
  and ``equilibration_number`` E = 2 wd sum_t lr_t.
"""
from __future__ import annotations

import math

import numpy as np
import torch

TRAJECTORY_COLUMNS = ["step", "lr_mult", "matrix", "group", "numel", "norm_prev", "norm",
                      "rel_update", "theta"]


class WeightProbe:
    def __init__(self, model, every: int = 10, dense_until: int = 20):
        self.every, self.dense_until = every, dense_until
        self.tracked = [(n, p, "hidden") for n, p in model.hidden_matrices()]
        self.tracked.append(("wte.weight", model.wte.weight, "embedding"))
        if model.lm_head is not None:
            self.tracked.append(("lm_head.weight", model.lm_head.weight, "head"))
        self.records: list[dict] = []
        self._prev: list[torch.Tensor] | None = None

    def due(self, step: int, total: int) -> bool:
        if self.every <= 0:
            return False
        return step < self.dense_until or step % self.every == 0 or step == total - 1

    @torch.no_grad()
    def before(self) -> None:
        self._prev = [p.detach().clone() for _, p, _ in self.tracked]

    @torch.no_grad()
    def after(self, step: int, lr_mult: float) -> None:
        stats = []
        for (_, p, _), w0 in zip(self.tracked, self._prev):
            w0 = w0.double()
            dw = p.detach().double() - w0
            n0 = w0.norm()
            a = (dw * w0).sum() / n0
            perp = (dw - (a / n0) * w0).norm()
            stats.append(torch.stack([n0, p.detach().double().norm(), dw.norm() / n0,
                                      torch.atan2(perp, n0 + a)]))
        vals = torch.stack(stats).cpu().tolist()  # one host sync per probe step
        for (name, p, group), (n0, n1, rel, th) in zip(self.tracked, vals):
            self.records.append(dict(step=step, lr_mult=lr_mult, matrix=name, group=group,
                                     numel=p.numel(), norm_prev=n0, norm=n1, rel_update=rel,
                                     theta=th))
        self._prev = None


def _nanmean(x) -> float:
    x = np.asarray(x, dtype=float)
    return float(np.mean(x)) if x.size else math.nan


def summarize(records: list[dict], *, steps: int, lr: float, weight_decay: float,
              optimizer: str, eq_tolerance: float = 0.1) -> dict:
    """Run-level effective-LR aggregates from probe records (see the module docstring)."""
    hid = [r for r in records if r["group"] == "hidden"]
    out = dict(eff_lr=math.nan, eff_lr_whole_run=math.nan, eff_lr_stable=math.nan,
               theta_sum=math.nan, rel_update_eff=math.nan, rms_final=math.nan,
               t_eq=math.nan, transient_frac=math.nan, equilibration_number=math.nan)
    if not hid:
        return out
    by_step: dict[int, list[dict]] = {}
    for r in hid:
        by_step.setdefault(r["step"], []).append(r)
    st = sorted(by_step)
    s = np.array([by_step[t][0]["lr_mult"] for t in st])
    theta = np.array([np.mean([r["theta"] for r in by_step[t]]) for t in st])
    rel = np.array([np.mean([r["rel_update"] for r in by_step[t]]) for t in st])
    rms2 = np.array([np.mean([r["norm"] ** 2 / r["numel"] for r in by_step[t]]) for t in st])
    ok = s >= 0.1
    out["eff_lr"] = _nanmean(theta[ok] / s[ok])
    out["rel_update_eff"] = _nanmean(rel[ok] / s[ok])
    out["eff_lr_whole_run"] = _nanmean(theta)
    stable = s >= 0.99
    out["eff_lr_stable"] = _nanmean(theta[stable] / s[stable])
    out["theta_sum"] = float(np.mean(theta) * steps)
    out["rms_final"] = float(np.sqrt(rms2[-1]))
    if optimizer == "adamw" and weight_decay > 0:
        eq = lr * s / (2 * weight_decay)
        pos = eq > 0  # s(t) = 0 (end of a decay to zero) has no equilibrium to compare with
        within = np.nonzero(pos & (np.abs(rms2 / np.where(pos, eq, 1.0) - 1) <= eq_tolerance))[0]
        if within.size:
            out["t_eq"] = float(st[within[0]])
            out["transient_frac"] = out["t_eq"] / steps
    return out
