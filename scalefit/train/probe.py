"""Weight-norm probe: per 2-D matrix norms, relative updates and per-step angles.

On a cadence step t the probe copies each tracked matrix before ``optimizer.step()`` and, after
it, records one row per matrix (see the theory page, docs/theory.md#per-step-measures), with all
reductions in float64:

- ``norm``        ||W_{t+1}||_F (and ``norm_prev`` = ||W_t||_F),
- ``rel_update``  ||W_{t+1} - W_t||_F / ||W_t||_F,
- ``theta``       the angle between W_t and W_{t+1}: with dW = W_{t+1} - W_t, a = <dW, W_t>/||W_t||
                  and dW_perp = dW - a W_t/||W_t||, theta = atan2(||dW_perp||, ||W_t|| + a)
                  (acos of the cosine in fp32 is ~35% off at theta = 1e-3),
- ``lr_mult``     s(t), the schedule multiplier used for the step.

The aggregates (everything below :class:`WeightProbe`) need numpy only, not torch.

Tracked: every hidden matrix (group ``hidden``: q, k, v, o, fc, proj), the token embedding
(``embedding``) and an untied LM head (``head``); only ``hidden`` enters the aggregates.
Cadence: every step for t < ``dense_until`` (the fast early transient), then every ``every``
steps, and always the last step.

Run aggregates (:func:`summarize`). Over matrices: theta_bar_t = **geometric mean** of theta over
the hidden matrices, unweighted (docs/theory.md#eff-lr-aggregate: at equilibrium every hidden
matrix rotates at the same rate whatever its shape, so an unweighted average is the natural one;
the geometric mean is the primary choice there because, in the transient, the residual
projections (init std 0.02/sqrt(2L)) turn several times faster than the rest and would dominate
an arithmetic mean; it is also the average that matches the log-space map and fit). Over time, **every step counts once**:

- **every step is accumulated**: on every step the probe also computes theta_t and the relative
  update of each hidden matrix cheaply (fp32 copy into persistent buffers, fp64 only on the
  per-matrix scalars, no host sync) and keeps one row per step, group ``hidden_gmean``, with their
  geometric means. The aggregates are plain sums over these rows, so they do not depend on the
  cadence at all; the cadence only decides which steps also get per-matrix float64 rows. Cost:
  a few percent of a CPU training step. Why not weight sparse probes by the steps they stand
  for: the early Adam transient (bias correction, the first ~20 steps) moves theta/s severalfold
  within a few steps, so interpolating between sparse probes is off by percents unless the
  first steps are probed densely; accumulating every step removes the question.
  The per-step rows live in ``records``, so a checkpoint/resume keeps them.
- stored trajectories without per-step rows (written by older runners) are
  recomputed by interpolating theta_bar_t / s(t) and s(t) linearly between probed steps, so that
  each probe stands for the steps around it (:func:`per_step`; :mod:`scripts.experiments.recompute_eff_lr`).
  A plain mean over probed steps would weight the densely probed early transient about as many
  times too much as it is probed more densely, and overstate ``eff_lr``.

- ``eff_lr``            mean over steps with s(t) >= 0.1 of theta_bar_t / s(t): comparable with the
                        peak nominal LR;
- ``eff_lr_whole_run``  mean over all steps of theta_bar_t (the implicit schedule's mean);
- ``eff_lr_stable``     mean of theta_bar_t / s(t) over steps with s(t) >= 0.99 (the plateau);
- ``theta_sum``         integrated angular distance, sum over all steps of theta_bar_t;
- ``rel_update_eff``    like ``eff_lr`` with the relative update instead of the angle;
- ``rms_final``         mean over hidden matrices of RMS(W) = ||W||/sqrt(numel) at the last probe;
- AdamW only: ``t_eq`` the first step where the mean hidden RMS^2 (interpolated between probes)
  is within 10% of its quasi-equilibrium lr_t / (2 wd) (docs/theory.md#timescale; NaN if never),
  ``transient_frac`` = t_eq / steps; ``equilibration_number`` E = 2 wd sum_t lr_t is set by the
  caller, which knows the schedule.

The runner (:func:`scalefit.train.run.training_function`) drives :class:`WeightProbe` and writes
its records to ``trajectory.parquet``; :func:`summarize` gives the result's ``eff_lr`` columns.

Examples
--------
>>> probe = WeightProbe(model, every=10, dense_until=20)  # doctest: +SKIP
>>> if probe.due(step, steps):  # doctest: +SKIP
...     probe.before(); optimizer.step(); probe.after(step, s)
>>> summarize(probe.records, steps=steps, lr=lr, weight_decay=wd, optimizer="adamw")  # doctest: +SKIP
"""
from __future__ import annotations

import math

import numpy as np

__all__ = ["WeightProbe", "TRAJECTORY_COLUMNS", "STEP_GROUP", "STEP_MATRIX", "S_MIN", "per_probe",
           "per_step_curve", "per_step", "summarize"]

TRAJECTORY_COLUMNS = ["step", "lr_mult", "matrix", "group", "numel", "norm_prev", "norm",
                      "rel_update", "theta"]


STEP_GROUP = "hidden_gmean"  # trajectory rows written every step (see the module docstring)
STEP_MATRIX = "hidden (geometric mean)"


class WeightProbe:
    """Call ``due(step, total)`` then, if it says so, ``before()`` / ``optimizer.step()`` /
    ``after(step, s)``. Every step gets the cheap per-step row; cadence steps also get the
    per-matrix float64 rows.

    Parameters
    ----------
    model : GPT
        The model (unwrapped); its hidden matrices, token embedding and untied LM head are
        tracked.
    every : int, default 10
        Per-matrix rows every this many steps after ``dense_until``; 0 or less turns the probe
        off.
    dense_until : int, default 20
        Per-matrix rows on every step before this one.

    Attributes
    ----------
    tracked : list of tuple
        ``(name, parameter, group)`` of every tracked matrix.
    """

    def __init__(self, model, every: int = 10, dense_until: int = 20):
        self.every, self.dense_until = every, dense_until
        self.tracked = [(n, p, "hidden") for n, p in model.hidden_matrices()]
        self.tracked.append(("wte.weight", model.wte.weight, "embedding"))
        if model.lm_head is not None:
            self.tracked.append(("lm_head.weight", model.lm_head.weight, "head"))
        self._hidden = [p for _, p, g in self.tracked if g == "hidden"]
        self._hidden_numel = sum(p.numel() for p in self._hidden)
        self._records: list[dict] = []
        self._pending: list[tuple] = []  # (step, s, device tensor [theta, rel]) not yet on the host
        self._prev = None
        self._buf = None  # persistent copies of the hidden matrices (allocated once)
        self._cadence = True  # per-matrix rows on every step unless due() says otherwise

    @property
    def records(self) -> list[dict]:
        """All rows so far (``scalefit.train.run`` checkpoints and restores this list)."""
        self._flush()
        return self._records

    @records.setter
    def records(self, value: list[dict]) -> None:
        self._pending, self._records = [], list(value)

    def on_cadence(self, step: int, total: int) -> bool:
        """Whether ``step`` gets per-matrix rows: before ``dense_until``, every ``every`` steps,
        and the last step.

        Parameters
        ----------
        step : int
            0-based step.
        total : int
            Steps in the run.

        Returns
        -------
        bool
            True on a cadence step.
        """
        return step < self.dense_until or step % self.every == 0 or step == total - 1

    def due(self, step: int, total: int) -> bool:
        """True on every step while the probe is on (``every > 0``): every step is accumulated.

        Parameters
        ----------
        step : int
            0-based step about to be taken.
        total : int
            Steps in the run.

        Returns
        -------
        bool
            Whether to call :meth:`before` and :meth:`after` around this step.
        """
        if self.every <= 0:
            return False
        self._cadence = self.on_cadence(step, total)
        return True

    def before(self) -> None:
        """Copy the tracked matrices just before ``optimizer.step()``."""
        import torch

        with torch.no_grad():
            if self._buf is None:
                self._buf = [p.detach().clone() for p in self._hidden]
            else:
                torch._foreach_copy_(self._buf, [p.detach() for p in self._hidden])
            if self._cadence:
                self._prev = [p.detach().clone() for _, p, _ in self.tracked]

    def after(self, step: int, lr_mult: float) -> None:
        """Record the step just taken: the per-step row, and per-matrix rows on a cadence step.

        Parameters
        ----------
        step : int
            The step just taken.
        lr_mult : float
            s(t), the schedule multiplier it used.
        """
        import torch  # here, not at the top: the aggregates below are used without the train extra

        with torch.no_grad():
            self._pending.append((step, lr_mult, self._step_stats()))
            if not self._cadence:
                return
            vals = self._stats()
        for (name, p, group), (n0, n1, rel, th) in zip(self.tracked, vals):
            self._records.append(dict(step=step, lr_mult=lr_mult, matrix=name, group=group,
                                      numel=p.numel(), norm_prev=n0, norm=n1, rel_update=rel,
                                      theta=th))
        self._prev = None

    def _step_stats(self):
        """[geometric mean theta, geometric mean rel_update] over hidden matrices, on the device,
        without a host sync. fp32 elementwise work, fp64 only on the per-matrix scalars: the
        difference D = W_{t+1} - W_t is exact enough in fp32, and with <D, W_t> = <D, W_{t+1}> -
        ||D||^2 no copy of W_t has to outlive the subtraction (the atan2 form of
        docs/theory.md#measuring-the-angle)."""
        import torch

        hid = [p.detach() for p in self._hidden]
        torch._foreach_sub_(self._buf, hid)  # buf = W_t - W_{t+1} = -D
        dn = torch.stack(torch._foreach_norm(self._buf)).double()
        d_w1 = -torch.stack([torch.dot(b.view(-1), p.view(-1)) for b, p in zip(self._buf, hid)]).double()
        n1 = torch.stack(torch._foreach_norm(hid)).double()
        n0 = torch.sqrt(n1 ** 2 - 2 * d_w1 + dn ** 2)  # ||W_t||^2 = ||W_{t+1} - D||^2
        a = (d_w1 - dn ** 2) / n0  # <D, W_t> / ||W_t||
        theta = torch.atan2(torch.sqrt(torch.clamp(dn ** 2 - a ** 2, min=0.0)), n0 + a)
        return torch.stack([torch.exp(torch.log(theta).mean()), torch.exp(torch.log(dn / n0).mean())])

    def _flush(self) -> None:
        if not self._pending:
            return
        import torch

        vals = torch.stack([v for _, _, v in self._pending]).cpu().tolist()  # one host sync
        for (step, s, _), (th, rel) in zip(self._pending, vals):
            self._records.append(dict(step=step, lr_mult=s, matrix=STEP_MATRIX, group=STEP_GROUP,
                                      numel=self._hidden_numel, norm_prev=math.nan, norm=math.nan,
                                      rel_update=rel, theta=th))
        self._pending = []

    def _stats(self) -> list[list[float]]:
        import torch

        stats = []
        for (_, p, _), w0 in zip(self.tracked, self._prev):
            w0 = w0.double()
            dw = p.detach().double() - w0
            n0 = w0.norm()
            a = (dw * w0).sum() / n0
            perp = (dw - (a / n0) * w0).norm()
            stats.append(torch.stack([n0, p.detach().double().norm(), dw.norm() / n0,
                                      torch.atan2(perp, n0 + a)]))
        return torch.stack(stats).cpu().tolist()  # one host sync per probe step


S_MIN = 1e-3  # theta/s is 0/0 where the schedule reaches 0 (a decay to zero): such probes are no nodes


def _gmean(x: np.ndarray) -> float:
    """Geometric mean (0 if any entry is 0: a step that did not move)."""
    x = np.asarray(x, dtype=float)
    return 0.0 if np.any(x == 0) else float(np.exp(np.mean(np.log(x))))


def _as_dicts(records) -> list[dict]:
    return records.to_dict("records") if hasattr(records, "to_dict") else records


def per_probe(records) -> dict[str, np.ndarray]:
    """Hidden-matrix aggregates per probed (cadence) step: ``step``, ``s``, ``theta`` and ``rel``
    (geometric means over matrices), ``rms2`` (arithmetic mean of RMS^2). ``records`` are probe
    records (dicts) or a trajectory frame.

    Parameters
    ----------
    records : list of dict or pandas.DataFrame
        Probe records (:attr:`WeightProbe.records`) or a ``trajectory.parquet`` frame.

    Returns
    -------
    dict of str to numpy.ndarray
        Keys step, s, theta, rel, rms2, one entry per probed step in step order.
    """
    by_step: dict[int, list[dict]] = {}
    for r in _as_dicts(records):
        if r["group"] == "hidden":
            by_step.setdefault(int(r["step"]), []).append(r)
    st = np.array(sorted(by_step), dtype=int)
    col = lambda f: np.array([f(by_step[t]) for t in st], dtype=float)  # noqa: E731
    return dict(step=st, s=col(lambda rs: rs[0]["lr_mult"]),
                theta=col(lambda rs: _gmean([r["theta"] for r in rs])),
                rel=col(lambda rs: _gmean([r["rel_update"] for r in rs])),
                rms2=col(lambda rs: np.mean([r["norm"] ** 2 / r["numel"] for r in rs])))


def per_step_curve(step, s, value, total: int) -> tuple[np.ndarray, np.ndarray]:
    """(s(t), value_t / s(t)) at every step 0..total-1, linear between probed steps (flat
    beyond the ends). value/s is interpolated rather than value because it is the smooth part
    (docs/theory.md#schedules: theta/s is nearly constant through a fast cooldown).

    Parameters
    ----------
    step : array_like
        Probed steps, increasing.
    s : array_like
        s(t) at those steps.
    value : array_like
        The measure at those steps (theta or the relative update); probes with s(t) <=
        :data:`S_MIN` or a non-finite value are not used as nodes.
    total : int
        Steps in the run.

    Returns
    -------
    tuple of numpy.ndarray
        ``(s_all, value_over_s)`` at every step; the second is all NaN without any node.
    """
    t = np.arange(total)
    step, s, value = (np.asarray(a, dtype=float) for a in (step, s, value))
    s_all = np.interp(t, step, s)
    node = (s > S_MIN) & np.isfinite(value)
    if not node.any():
        return s_all, np.full(total, math.nan)
    return s_all, np.interp(t, step[node], value[node] / s[node])


def per_step(records, steps: int) -> tuple[dict[str, np.ndarray], str]:
    """s(t), theta_bar_t / s(t) and rel_bar_t / s(t) at every step 0..steps-1, and how they were
    obtained: ``"every_step"`` from the probe's per-step rows when they cover every step, else
    ``"interpolated"`` between the per-matrix cadence rows (trajectories written before the
    per-step rows existed; within ~1% at the default cadence, several % at coarser ones).

    Parameters
    ----------
    records : list of dict or pandas.DataFrame
        Probe records or a trajectory frame.
    steps : int
        Steps taken.

    Returns
    -------
    tuple of (dict, str)
        Arrays s, q (theta_bar / s), q_rel (rel_bar / s) and theta per step, and the method
        (``"every_step"`` or ``"interpolated"``).
    """
    rows = {int(r["step"]): r for r in _as_dicts(records) if r["group"] == STEP_GROUP}
    if steps > 0 and all(t in rows for t in range(steps)):
        s = np.array([rows[t]["lr_mult"] for t in range(steps)], dtype=float)
        th = np.array([rows[t]["theta"] for t in range(steps)], dtype=float)
        rel = np.array([rows[t]["rel_update"] for t in range(steps)], dtype=float)
        safe = np.where(s > S_MIN, s, np.nan)
        return dict(s=s, q=th / safe, q_rel=rel / safe, theta=th), "every_step"
    p = per_probe(records)
    s, q = per_step_curve(p["step"], p["s"], p["theta"], steps)
    _, q_rel = per_step_curve(p["step"], p["s"], p["rel"], steps)
    return dict(s=s, q=q, q_rel=q_rel, theta=s * q), "interpolated"


def _nanmean(x) -> float:
    x = np.asarray(x, dtype=float)
    return float(np.mean(x)) if x.size else math.nan


def summarize(records, *, steps: int, lr: float, weight_decay: float,
              optimizer: str, eq_tolerance: float = 0.1) -> dict:
    """Run-level effective-LR aggregates from probe records, every step counted once (see the
    module docstring).

    Parameters
    ----------
    records : list of dict or pandas.DataFrame
        Probe records or a trajectory frame.
    steps : int
        Number of steps taken.
    lr : float
        Peak LR.
    weight_decay : float
        Weight decay (``t_eq`` needs AdamW with weight decay > 0).
    optimizer : str
        ``"adamw"`` or ``"adamh"``.
    eq_tolerance : float, default 0.1
        Relative distance to lr_t / (2 wd) at which ``t_eq`` counts the run equilibrated.

    Returns
    -------
    dict
        eff_lr, eff_lr_whole_run, eff_lr_stable, theta_sum, rel_update_eff, rms_final, t_eq,
        transient_frac and equilibration_number (NaN here: the caller sets it). All NaN
        without probe records.

    Examples
    --------
    >>> agg = summarize(traj, steps=1000, lr=3e-3, weight_decay=0.1, optimizer="adamw")  # doctest: +SKIP
    >>> agg["eff_lr"]  # doctest: +SKIP
    """
    out = dict(eff_lr=math.nan, eff_lr_whole_run=math.nan, eff_lr_stable=math.nan,
               theta_sum=math.nan, rel_update_eff=math.nan, rms_final=math.nan,
               t_eq=math.nan, transient_frac=math.nan, equilibration_number=math.nan)
    p = per_probe(records)
    if not len(p["step"]) or steps <= 0:
        return out
    c, _ = per_step(records, steps)
    s, q = c["s"], c["q"]
    ok, stable = s >= 0.1, s >= 0.99
    out["eff_lr"] = _nanmean(q[ok])
    out["rel_update_eff"] = _nanmean(c["q_rel"][ok])
    out["eff_lr_stable"] = _nanmean(q[stable])
    out["theta_sum"] = float(np.nansum(c["theta"]))
    out["eff_lr_whole_run"] = out["theta_sum"] / steps
    out["rms_final"] = float(np.sqrt(p["rms2"][-1]))
    if optimizer == "adamw" and weight_decay > 0:
        rms2 = np.interp(np.arange(steps), p["step"], p["rms2"])
        eq = lr * s / (2 * weight_decay)
        pos = eq > 0  # s(t) = 0 (end of a decay to zero) has no equilibrium to compare with
        within = np.nonzero(pos & (np.abs(rms2 / np.where(pos, eq, 1.0) - 1) <= eq_tolerance))[0]
        if within.size:
            out["t_eq"] = float(within[0])
            out["transient_frac"] = out["t_eq"] / steps
    return out
