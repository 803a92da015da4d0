"""Which runs to buy next: the cells whose sweeps are expected to shrink the target's 90%
interval most per FLOP.

Method: a linearized preposterior analysis (Lindley 1956; Chaloner & Verdinelli 1995, Stat.
Sci. 10:273). A new sweep of cell c measures that cell's optimum m_c with an error whose
variance s_c^2 follows from the sweep's expected Fisher information (its LR window, the
valley's width and asymmetry, the noise, the runs the loss window censors, Student-t noise),
averaged over the posterior. The posterior draws give the joint covariance of the target's
optimum m_t with every candidate's m_c: each candidate as a new cell (the law, the discrepancy
walk continued jointly through every point, a fresh residual), a repeat of a fitted cell as that
cell's own optimum. Conditioning the Gaussian with that covariance on the measurements gives
the target's variance after a batch,

    Var(m_t | batch) = S_tt - S_tB (S_BB + diag(s_B^2))^-1 S_Bt,

which does not depend on what the runs will show, so the expected 90% width after the batch is
today's width times sqrt(Var(m_t | batch) / S_tt). Candidates interact through S_BB: a second
cell next to a chosen one adds less. Batches are greedy: each step adds the affordable
candidate with the largest width reduction per FLOP. What it leaves out: a sweep also teaches
the model the residual scatter tau, the walk's scale and the valley shapes, which the linear
update does not count, and the posterior is not Gaussian; the simulated campaign in
scripts/experiments/suggest_campaign.py checks the expected widths against refits of simulated
sweeps (results on the calibration page, docs/calibration.md, "Checking `scalefit suggest`").

Examples
--------
>>> from scalefit import load_fit
>>> from scalefit.design.suggest import suggest, format_suggestion
>>> s = suggest(load_fit("fit.nc"), n_params=1.3e8, n_tokens=4e8, budget=3e13)  # doctest: +SKIP
>>> print(format_suggestion(s))  # doctest: +SKIP
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from scalefit.model.valley import valley_rise
from scalefit.fit.predict import (
    check_batch_size, continue_walk, law_draws, law_z, posterior_scalars, posterior_vector, walk_context)
from scalefit.grids.spec import lattice_lr  # the runners' LR lattice: suggested LRs match collected ones

__all__ = ["suggest", "Suggestion", "Proposal", "Candidate", "SweepPlan", "format_suggestion",
           "candidates_from_ladder", "candidates_from_table", "default_tokens", "plan_candidates", "plan_sweeps",
           "joint_draws", "window", "optimum_variance", "DEFAULT_LATTICE", "MIN_GAIN"]

PROB = 0.9
LN10 = math.log(10.0)
MIN_LRS, MAX_LRS = 5, 13
DEFAULT_LATTICE = {"base": 1e-3, "per_octave": 2, "digits": 4}
INFO_DRAWS = 400  # posterior draws the sweep information is averaged over
MIN_GAIN = 0.01  # a cell must narrow the target's interval by >= 1% of today's width to be bought


@dataclass(frozen=True)
class Candidate:
    """A cell one could sweep next.

    Attributes
    ----------
    n_params : float
        Model size N.
    n_tokens : float
        Training tokens D.
    flops_per_run : float
        Cost of one run.
    size : str or None
        The ladder's size name (None: no ladder given).
    lrs : tuple of float or None
        A fixed LR set to sweep (None: a lattice window about the cell's predicted optimum).
    """

    n_params: float
    n_tokens: float
    flops_per_run: float
    size: str | None = None  # the ladder's size name (None: no ladder given)
    lrs: tuple[float, ...] | None = None  # a fixed LR set (None: a lattice window about the prediction)


@dataclass(frozen=True)
class Proposal:
    """One chosen cell: where to sweep, what it costs, and what it is expected to buy.

    Attributes
    ----------
    size : str or None
        The ladder's size name.
    n_params : float
        Model size N.
    n_tokens : float
        Training tokens D.
    seeds : int
        Seeds per LR.
    lrs : tuple of float
        The LRs to sweep, ascending.
    k_range : tuple of (int, int) or None
        LR lattice indices of the window (inclusive); None for a fixed LR set.
    flops : float
        Cost of the sweep (every LR, every seed).
    optimum_sd_from_sweep : float
        How well the sweep alone pins the cell's optimum (sd, nats of LR).
    width_after_alone : float
        Expected 90% width of the target's interval (decades) with this cell alone.
    width_after_batch : float
        The same with every cell chosen so far, this one included.
    repeats_cell : int or None
        The fitted cell this one repeats, if any.
    """

    size: str | None
    n_params: float
    n_tokens: float
    seeds: int
    lrs: tuple[float, ...]
    k_range: tuple[int, int] | None  # LR lattice indices (inclusive); None for a fixed LR set
    flops: float
    optimum_sd_from_sweep: float  # nats of LR: how well the sweep alone pins the cell's optimum
    width_after_alone: float  # expected 90% width of the target (decades) with this cell alone
    width_after_batch: float  # ... with every cell chosen so far, this one included
    repeats_cell: int | None = None


@dataclass
class Suggestion:
    """What `suggest` proposes: the batch of sweeps and the target interval it is expected to leave.

    Attributes
    ----------
    n_params : float
        Target model size N.
    n_tokens : float
        Target training tokens D.
    batch_size : float or None
        Tokens per step at the target.
    budget : float
        FLOPs allowed for the whole batch.
    lr_median : float
        Today's posterior median of the optimal LR at the target.
    interval : tuple of (float, float)
        Today's 90% ETI of the optimal LR at the target.
    width_now : float
        Its width, in decades.
    proposals : list of Proposal
        The chosen cells, in the order they were chosen (the best value per FLOP first).
    n_candidates : int
        How many candidate cells were considered.
    lattice : dict
        The LR lattice the windows are on (base, per_octave, digits).
    prob : float
        Probability of the interval (0.9).
    interval_kind : str
        "ETI".
    method : str
        How the expected widths were computed.
    notes : list of str
        Why nothing was proposed, when so.
    flops : float
        Total cost of the proposals.
    width_after : float
        Expected 90% width (decades) after the whole batch.
    interval_after : tuple of (float, float)
        Today's interval shrunk about its median by the expected width ratio.
    """

    n_params: float
    n_tokens: float
    batch_size: float | None
    budget: float
    lr_median: float
    interval: tuple[float, float]  # today's 90% ETI of the optimal LR at the target
    width_now: float  # decades
    proposals: list[Proposal]
    n_candidates: int
    lattice: dict
    prob: float = PROB
    interval_kind: str = "ETI"
    method: str = "linearized preposterior (Gaussian update of the posterior draws' covariance)"
    notes: list[str] = field(default_factory=list)

    @property
    def flops(self) -> float:
        """Total FLOPs of the proposals."""
        return float(sum(p.flops for p in self.proposals))

    @property
    def width_after(self) -> float:
        """Expected 90% width of the target's interval after the batch, in decades."""
        return self.proposals[-1].width_after_batch if self.proposals else self.width_now

    @property
    def interval_after(self) -> tuple[float, float]:
        """Today's interval shrunk about its median in log space by the expected width ratio."""
        r = self.width_after / self.width_now
        lo, hi = self.interval
        return (float(self.lr_median * (lo / self.lr_median) ** r), float(self.lr_median * (hi / self.lr_median) ** r))

    def table(self) -> pd.DataFrame:
        """The proposals as a table (what ``scalefit suggest --table`` writes).

        Returns
        -------
        pandas.DataFrame
            One row per proposal: order, size, n_params, n_tokens, seeds, n_lrs, lr_low,
            lr_high, flops, cumulative_flops, optimum_sd_dec, width90_after_alone_dec,
            width90_after_batch_dec, repeats_fitted_cell.
        """
        rows = []
        cum = 0.0
        for i, p in enumerate(self.proposals, 1):
            cum += p.flops
            rows.append({"order": i, "size": p.size or "", "n_params": p.n_params, "n_tokens": p.n_tokens,
                         "seeds": p.seeds, "n_lrs": len(p.lrs), "lr_low": p.lrs[0], "lr_high": p.lrs[-1],
                         "flops": p.flops, "cumulative_flops": cum,
                         "optimum_sd_dec": p.optimum_sd_from_sweep / LN10,
                         "width90_after_alone_dec": p.width_after_alone,
                         "width90_after_batch_dec": p.width_after_batch,
                         "repeats_fitted_cell": p.repeats_cell is not None})
        return pd.DataFrame(rows)

    def to_dict(self) -> dict:
        """Every field and property as a plain dict (what ``scalefit suggest --json`` prints)."""
        out = asdict(self)
        out.update(flops=self.flops, width_after=self.width_after, interval_after=list(self.interval_after))
        return out


# ------------------------------------------------------------------------------------ candidates

def candidates_from_ladder(ladder, tokens, vocab_size: int = 256, seq_len: int | None = None) -> list[Candidate]:
    """Every ladder size at every token budget, with the runners' FLOP count per run.

    Parameters
    ----------
    ladder : scalefit.grids.spec.Ladder
        A model-size ladder (`scalefit.grids.spec.load_ladder`).
    tokens : iterable of float
        Token budgets D.
    vocab_size : int, default 256
        Vocabulary size of the runs (it changes N and the FLOPs per token).
    seq_len : int, optional
        Sequence length, overriding the ladder's.

    Returns
    -------
    list of Candidate
    """
    from scalefit.grids.spec import count_params, flops_per_token

    out = []
    for name, arch in ladder.sizes.items():
        arch = dict(arch, seq_len=seq_len or arch["seq_len"])
        n_params, _ = count_params(vocab_size=vocab_size, **arch)
        per_token = flops_per_token(n_params, arch["d_model"], arch["n_layer"], vocab_size, arch["seq_len"])
        out += [Candidate(float(n_params), float(d), float(per_token * d), size=name) for d in tokens]
    return out


def candidates_from_table(fit, tokens) -> list[Candidate]:
    """Without a ladder: the fitted sizes at every token budget, 6 N D FLOPs per run.

    Parameters
    ----------
    fit : scalefit.fit.core.Fit
        The fit.
    tokens : iterable of float
        Token budgets D.

    Returns
    -------
    list of Candidate
    """
    sizes = np.unique(fit.table.cells["n_params"].to_numpy(dtype=float))
    return [Candidate(float(n), float(d), 6.0 * n * d) for n in sizes for d in tokens]


def default_tokens(fit) -> list[float]:
    """The fitted token budgets and twice the largest.

    Parameters
    ----------
    fit : scalefit.fit.core.Fit
        The fit.

    Returns
    -------
    list of float
        Ascending.
    """
    fitted = np.unique(fit.table.cells.loc[fit.fitted_cells(), "n_tokens"].to_numpy(dtype=float))
    return sorted({*fitted.tolist(), 2.0 * float(fitted.max())})


def _repeats(fit, cand: Candidate) -> int | None:
    cells = fit.table.cells.loc[fit.fitted_cells()]
    same = (np.isclose(cells["n_params"].to_numpy(dtype=float), cand.n_params, rtol=0.02)
            & np.isclose(cells["n_tokens"].to_numpy(dtype=float), cand.n_tokens, rtol=0.02))
    return int(cells.index[same][0]) if same.any() else None


# ------------------------------------------------------------------------------- joint draws

def joint_draws(fit, points, batch_size=None, seed: int = 0) -> dict[str, np.ndarray]:
    """Per posterior draw, jointly at every point taken as a new cell: optimum, width, floor, noise.

    Draws share the law and the discrepancy walk (continued through all points at once, so two
    nearby points move together); each point gets its own residual and valley.

    Parameters
    ----------
    fit : scalefit.fit.core.Fit
        The fit.
    points : list of tuple of (float, float)
        (n_params, n_tokens) per point.
    batch_size : float, optional
        Tokens per step (when the law has a batch-size term).
    seed : int, default 0
        Seed of the new cells' random effects.

    Returns
    -------
    dict
        ``m`` (optimum, standardized ln LR), ``width``, ``floor`` and ``noise`` (standardized
        loss), each (draws, points), and ``asymmetry`` (per draw; None for a quadratic valley).
    """
    rng = np.random.default_rng([seed, 2])
    post = {k: np.asarray(v).reshape(-1) for k, v in posterior_scalars(fit.posterior).items()}
    n, k = len(post["law_intercept"]), len(points)
    z = [law_z(fit.std, fit.config, p[0], p[1], batch_size) for p in points]
    m = np.column_stack([law_draws(post, fit.config, fit.std, zi) for zi in z])
    for axis, (positions, fitted) in walk_context(fit).items():
        values, known = posterior_vector(fit.posterior, f"law_walk_{axis}")[:, fitted], positions[fitted]
        kappa = post[f"law_discrepancy_{axis}"]
        col = 0 if axis == "N" else 1
        logs = np.log([p[col] for p in points])
        for j in np.argsort(logs, kind="stable"):  # Markov: each new point given its known neighbours
            w = continue_walk(values, known, kappa, logs[j], rng)
            m[:, j] += w
            if not np.isclose(known, logs[j], rtol=0, atol=1e-9).any():
                at = np.searchsorted(known, logs[j])
                known = np.insert(known, at, logs[j])
                values = np.insert(values, at, w, axis=1)
    m += post["law_residual_sd"][:, None] * rng.standard_normal((n, k))
    width = np.exp(post["log_width_mean"][:, None] + post["log_width_sd"][:, None] * rng.standard_normal((n, k)))
    zn = np.array([zi["N"] for zi in z], dtype=float)
    zd = np.array([zi["D"] for zi in z], dtype=float)
    floor = (post["floor_intercept"][:, None] + post["floor_slope_N"][:, None] * zn + post["floor_slope_D"][:, None] * zd
             + post["floor_sd"][:, None] * rng.standard_normal((n, k)))
    noise = np.exp(post["log_noise_mean"][:, None] + post["log_noise_slope_N"][:, None] * zn
                   + post["log_noise_slope_D"][:, None] * zd)
    asym = post.get("valley_asymmetry") if fit.config.valley == "asymmetric" else None
    return {"m": m, "width": width, "floor": floor, "noise": noise, "asymmetry": asym}


# ------------------------------------------------------------------------- sweep information

def window(m_draws: np.ndarray, x_center: float, lattice: dict) -> tuple[int, int]:
    """Lattice indices covering the cell's 90% predictive interval of its optimum plus one step
    each side (at least MIN_LRS, at most MAX_LRS points, centred on the median).

    Parameters
    ----------
    m_draws : numpy.ndarray
        Draws of the cell's optimum, standardized ln LR.
    x_center : float
        The fit's ``std.x_center``.
    lattice : dict
        The LR lattice (``base``, ``per_octave``).

    Returns
    -------
    tuple of (int, int)
        First and last lattice index, inclusive.
    """
    step = math.log(2.0) / lattice["per_octave"]
    lo, med, hi = np.quantile(m_draws + x_center, [0.05, 0.5, 0.95])
    base = math.log(lattice["base"])
    k_med = round((med - base) / step)
    k_lo, k_hi = math.floor((lo - base) / step) - 1, math.ceil((hi - base) / step) + 1
    half = min(max(k_med - k_lo, k_hi - k_med, MIN_LRS // 2), MAX_LRS // 2)
    return k_med - half, k_med + half


def optimum_variance(x: np.ndarray, m, width, floor, noise, asymmetry, fit, seeds: int = 1) -> float:
    """Variance (nats^2) of a cell's optimum from a sweep at standardized ln LRs `x`.

    The inverse of the sweep's expected Fisher information about (floor, ln width, optimum),
    averaged over the draws. Runs the fit would censor (past the loss window) carry no
    information here.

    Parameters
    ----------
    x : numpy.ndarray
        The sweep's standardized ln LRs.
    m, width, floor, noise : numpy.ndarray
        Per draw: the cell's optimum, valley width, floor and noise sd (standardized units).
    asymmetry : numpy.ndarray or None
        Per draw valley asymmetry (None for a quadratic valley).
    fit : scalefit.fit.core.Fit
        The fit (its Student-t nu, loss window and standardization).
    seeds : int, default 1
        Seeds per LR.

    Returns
    -------
    float
        ``inf`` when the sweep cannot pin the optimum.
    """
    nu = float(fit.config.nu)
    std, lw = fit.std, fit.config.loss_window
    d = x[None, :] - m[:, None]  # (draws, points)
    k = None if asymmetry is None else asymmetry[:, None]
    rise = valley_rise(d, k)
    h = 1e-4
    slope = (valley_rise(d + h, k) - valley_rise(d - h, k)) / (2 * h)
    observed = np.ones_like(d, dtype=bool)
    if lw is not None:  # loss > best x (1 + loss_window) is censored
        best_raw = std.y_center + std.y_scale * floor
        observed = width[:, None] * rise * std.y_scale <= lw * np.abs(best_raw)[:, None]
    grads = np.stack([np.ones_like(d), width[:, None] * rise, -width[:, None] * slope], axis=-1)
    fisher = (nu + 1) / ((nu + 3) * noise**2)  # Student-t location information per run
    info = np.einsum("dp,dpi,dpj->ij", observed * fisher[:, None], grads, grads) / len(m) * seeds
    try:
        cov = np.linalg.inv(info)
    except np.linalg.LinAlgError:
        return math.inf
    return float(cov[2, 2]) if cov[2, 2] > 0 else math.inf


# ------------------------------------------------------------------------------------- suggest

def suggest(fit, n_params: float, n_tokens: float, budget: float, candidates: list[Candidate] | None = None,
            batch_size: float | None = None, seeds: int = 1, lattice: dict | None = None,
            seed: int = 0, tokens=None) -> Suggestion:
    """The batch of cells (sweeps) that shrinks the target's 90% interval most per FLOP.

    Greedy: each step adds the affordable candidate with the largest expected width reduction
    per FLOP, as long as it narrows the interval by at least ``MIN_GAIN`` of today's width.

    Parameters
    ----------
    fit : scalefit.fit.core.Fit
        A nominal-LR fit.
    n_params, n_tokens : float
        The target scale.
    budget : float
        FLOPs to spend on the whole batch.
    candidates : list of Candidate, optional
        Cells to choose from. Default: the fitted sizes at `tokens`, 6 N D FLOPs per run; give
        ladder candidates (`candidates_from_ladder`) for a runnable spec.
    batch_size : float, optional
        Tokens per step at the target (when the law depends on it).
    seeds : int, default 1
        Seeds per proposed LR.
    lattice : dict, optional
        LR lattice overrides (``base``, ``per_octave``, ``digits``); default ``DEFAULT_LATTICE``.
    seed : int, default 0
        Seed of the new cells' random effects.
    tokens : iterable of float, optional
        Token budgets of the default candidates (default: `default_tokens`).

    Returns
    -------
    Suggestion

    Raises
    ------
    ValueError
        When the fit is not in nominal LR, `budget` is not positive, `seeds` < 1, there are no
        candidates, the budget is below the cheapest candidate, or the batch size does not fit
        the law.

    Examples
    --------
    >>> from scalefit import load_fit
    >>> from scalefit.design.suggest import suggest
    >>> s = suggest(load_fit("fit.nc"), n_params=1.3e8, n_tokens=4e8, budget=3e13)  # doctest: +SKIP
    >>> s.table()  # doctest: +SKIP
    """
    if fit.config.lr_kind != "nominal":
        raise ValueError("suggest works on nominal-LR fits: the eff_lr map adds an uncertainty a new "
                         "sweep does not reduce the same way; fit with --lr-kind nominal")
    if not budget > 0:
        raise ValueError(f"--budget must be > 0 FLOPs, got {budget!r}")
    if seeds < 1:
        raise ValueError(f"--seeds must be >= 1, got {seeds}")
    lattice = {**DEFAULT_LATTICE, **(lattice or {})}
    batch_size = check_batch_size(fit, batch_size)
    if candidates is None:
        candidates = candidates_from_table(fit, tokens or default_tokens(fit))
    candidates = list(candidates)
    if not candidates:
        raise ValueError("no candidate cells: give a ladder and token budgets")
    points = [(n_params, n_tokens)] + [(c.n_params, c.n_tokens) for c in candidates]
    draws = joint_draws(fit, points, batch_size, seed=seed)
    repeats = _use_fitted_optima(fit, draws, candidates)
    x_center = fit.std.x_center
    target = draws["m"][:, 0]
    lo, med, hi = np.quantile(target, [(1 - PROB) / 2, 0.5, (1 + PROB) / 2])
    width_now = float((hi - lo) / LN10)

    plans = plan_sweeps(fit, draws, candidates, lattice, seeds, seed)
    cheapest = min(range(len(candidates)), key=lambda i: plans[i].flops)
    if plans[cheapest].flops > budget:
        c = candidates[cheapest]
        raise ValueError(f"--budget {budget:.3g} FLOPs is below the cheapest candidate's cost: "
                         f"{_label(c)} with {len(plans[cheapest].lrs)} LRs x {seeds} seed(s) costs "
                         f"{plans[cheapest].flops:.3g} FLOPs; raise --budget or offer smaller sizes or --tokens")

    cov = np.cov(draws["m"], rowvar=False)
    chosen: list[int] = []
    proposals, spent = [], 0.0

    def width_after(batch: list[int]) -> float:
        if not batch:
            return width_now
        idx = np.array(batch) + 1
        s_bb = cov[np.ix_(idx, idx)] + np.diag([plans[i].variance for i in batch])
        s_tb = cov[0, idx]
        var = cov[0, 0] - s_tb @ np.linalg.solve(s_bb, s_tb)
        return width_now * math.sqrt(max(var, 0.0) / cov[0, 0])

    current = width_now
    while True:
        best, best_score = None, 0.0
        for i, plan in enumerate(plans):
            if i in chosen or not math.isfinite(plan.variance) or spent + plan.flops > budget:
                continue
            gain = current - width_after(chosen + [i])
            if gain / plan.flops > best_score and gain >= MIN_GAIN * width_now:
                best, best_score = i, gain / plan.flops
        if best is None:
            break
        chosen.append(best)
        spent += plans[best].flops
        current = width_after(chosen)
        c, plan = candidates[best], plans[best]
        proposals.append(Proposal(size=c.size, n_params=c.n_params, n_tokens=c.n_tokens, seeds=seeds, lrs=plan.lrs,
                                  k_range=plan.k_range, flops=plan.flops,
                                  optimum_sd_from_sweep=math.sqrt(plan.variance),
                                  width_after_alone=width_after([best]), width_after_batch=current,
                                  repeats_cell=repeats[best]))
    notes = []
    if not proposals:
        notes.append(f"no affordable cell is expected to narrow the interval by {MIN_GAIN:.0%} or more")
    return Suggestion(n_params=float(n_params), n_tokens=float(n_tokens), batch_size=batch_size, budget=float(budget),
                      lr_median=float(np.exp(med + x_center)),
                      interval=(float(np.exp(lo + x_center)), float(np.exp(hi + x_center))),
                      width_now=width_now, proposals=proposals, n_candidates=len(candidates), lattice=lattice,
                      notes=notes)


@dataclass(frozen=True)
class SweepPlan:
    """The sweep `suggest` would run at one candidate.

    Attributes
    ----------
    k_range : tuple of (int, int) or None
        LR lattice indices (inclusive); None for a fixed LR set.
    lrs : tuple of float
        The LRs, ascending.
    flops : float
        Cost of the sweep.
    variance : float
        Variance of the cell's optimum from this sweep alone (nats^2).
    """

    k_range: tuple[int, int] | None
    lrs: tuple[float, ...]
    flops: float
    variance: float  # of the cell's optimum from this sweep alone (nats^2)


def _use_fitted_optima(fit, draws: dict, candidates, first: int = 1) -> list[int | None]:
    """A candidate that repeats a fitted cell measures that cell's own optimum again: its columns
    of the joint draws become the cell's posterior draws. Returns each candidate's cell."""
    cell_draws = {"m": posterior_vector(fit.posterior, "log_lr_opt"), "floor": posterior_vector(fit.posterior, "floor"),
                  "width": np.exp(posterior_vector(fit.posterior, "log_width"))}
    repeats = [_repeats(fit, c) for c in candidates]
    for j, cell in enumerate(repeats, start=first):
        if cell is not None:  # its own optimum, valley width and floor, as the fit knows them
            for key, values in cell_draws.items():
                draws[key][:, j] = values[:, cell]
    return repeats


def plan_sweeps(fit, draws: dict, candidates, lattice: dict, seeds: int = 1, seed: int = 0,
                first: int = 1) -> list[SweepPlan]:
    """Per candidate: its LRs, its cost, and how well the sweep alone pins its optimum.

    Parameters
    ----------
    fit : scalefit.fit.core.Fit
        The fit.
    draws : dict
        From `joint_draws`; candidate j is column `first` + j.
    candidates : list of Candidate
        The candidates (a fixed LR set, or a lattice window about the predicted optimum).
    lattice : dict
        The LR lattice.
    seeds : int, default 1
        Seeds per LR.
    seed : int, default 0
        Seed of the draws the information is averaged over.
    first : int, default 1
        Column of the first candidate (0 when the draws hold no target column).

    Returns
    -------
    list of SweepPlan
    """
    rng = np.random.default_rng([seed, 3])
    n = draws["m"].shape[0]
    sub = rng.choice(n, size=min(INFO_DRAWS, n), replace=False)
    a = draws["asymmetry"][sub] if draws["asymmetry"] is not None else None
    plans = []
    for j, c in enumerate(candidates, start=first):
        if c.lrs is not None:
            krange, lrs = None, tuple(sorted(float(v) for v in c.lrs))
        else:
            krange = window(draws["m"][:, j], fit.std.x_center, lattice)
            lrs = tuple(lattice_lr(lattice, k) for k in range(krange[0], krange[1] + 1))
        var = optimum_variance(np.log(lrs) - fit.std.x_center, draws["m"][sub, j], draws["width"][sub, j],
                               draws["floor"][sub, j], draws["noise"][sub, j], a, fit, seeds=seeds)
        plans.append(SweepPlan(krange, lrs, c.flops_per_run * len(lrs) * seeds, var))
    return plans


def plan_candidates(fit, candidates, batch_size=None, lattice: dict | None = None, seeds: int = 1,
                    seed: int = 0) -> list[SweepPlan]:
    """The sweeps `suggest` would run at these cells, without choosing among them (baselines use
    the same LR windows and costs).

    Parameters
    ----------
    fit : scalefit.fit.core.Fit
        The fit.
    candidates : list of Candidate
        The cells.
    batch_size : float, optional
        Tokens per step.
    lattice : dict, optional
        LR lattice overrides.
    seeds : int, default 1
        Seeds per LR.
    seed : int, default 0
        Seed of the new cells' random effects.

    Returns
    -------
    list of SweepPlan
    """
    lattice = {**DEFAULT_LATTICE, **(lattice or {})}
    draws = joint_draws(fit, [(c.n_params, c.n_tokens) for c in candidates], batch_size, seed=seed)
    _use_fitted_optima(fit, draws, candidates, first=0)
    return plan_sweeps(fit, draws, candidates, lattice, seeds, seed, first=0)


def _label(c: Candidate) -> str:
    return f"{c.size + ' ' if c.size else ''}N={c.n_params:.3g} at D={c.n_tokens:.3g}"


def format_suggestion(s: Suggestion) -> str:
    """The plain-text report: today's interval, each proposed cell, the expected interval after.

    Parameters
    ----------
    s : Suggestion
        From `suggest`.

    Returns
    -------
    str
    """
    lo, hi = s.interval
    lines = [f"target N={s.n_params:.4g} D={s.n_tokens:.4g}"
             + (f" B={s.batch_size:.4g}" if s.batch_size else "")
             + f": optimal LR {s.lr_median:.3g}, {s.prob:.0%} {s.interval_kind} [{lo:.3g}, {hi:.3g}] "
             f"({s.width_now:.2f} decades)",
             f"method: {s.method}; {s.n_candidates} candidate cells, budget {s.budget:.3g} FLOPs"]
    if not s.proposals:
        lines += [f"  {n}" for n in s.notes]
        return "\n".join(lines)
    table = s.table()
    lines.append(f"{'#':>2} {'size':>6} {'N':>9} {'D':>9} {'LRs':>3} {'LR window':>19} {'FLOPs':>9} "
                 f"{'alone':>6} {'batch':>6}  (expected 90% width at the target, decades)")
    for _, r in table.iterrows():
        lines.append(f"{r['order']:>2} {r['size']:>6} {r['n_params']:>9.3g} {r['n_tokens']:>9.3g} {r['n_lrs']:>3} "
                     f"{r['lr_low']:>9.3g}-{r['lr_high']:<9.3g} {r['flops']:>9.3g} "
                     f"{r['width90_after_alone_dec']:>6.2f} {r['width90_after_batch_dec']:>6.2f}"
                     + ("  (repeat of a fitted cell)" if r["repeats_fitted_cell"] else ""))
    alo, ahi = s.interval_after
    lines.append(f"after the batch ({s.flops:.3g} FLOPs): expected {s.prob:.0%} width {s.width_after:.2f} decades "
                 f"(x{s.width_after / s.width_now:.2f}), about [{alo:.3g}, {ahi:.3g}]")
    return "\n".join(lines)
