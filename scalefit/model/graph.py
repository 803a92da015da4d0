"""The hierarchical model: every cell's loss valley in log LR plus a curved law for the optimum.

For run r in cell s, with x = ln LR and y = final loss (both standardized, see
`scalefit.model.standardize`) and z_a,s the cell's standardized ln N, ln D or ln B:

    y_r ~ StudentT(nu, L_s + A_s g(x_r - m_s), sigma_s)           observed runs
    log P(y_r >= c_r) under the same Student-t                    right-censored runs
    m_s = theta0 + sum_a (theta1_a z_a,s + theta2_a z_a,s^2) + sum_a W_a(t_a,s) + tau eps_s
    L_s ~ Normal(f0 + f_N z_N,s + f_D z_D,s, floor_sd)            floors: a loss law in N and D
    log A_s ~ Normal(mu_A, sd_A)                                  widths, partially pooled
    log sigma_s = n0 + n_N z_N,s + n_D z_D,s                      noise: smooth in scale

The law's axes a are `ModelConfig.axes`, plus B when batch size is swept; ``law="linear"`` drops
the curvatures theta2, and ``interaction=True`` adds theta_ND z_N z_D to the joint law. W_a is
the law's form error, a Brownian motion in e-folds t along each of `ModelConfig.axes` (not B;
W_a(0) = 0 at the table's smallest value, scale kappa_a; ``discrepancy="none"`` drops it), and
eps_s ~ Normal(0, 1) the cell's residual. Priors are stated in natural units (`scalefit.model.config.default_priors`)
and rescaled to z here.

g(d) = d^2 (symmetric) or LINEX 2(e^{kd} - 1 - kd)/k^2 (asymmetric: exponential on the high-LR
side, linear on the low side), scaled so that A is the mean rise one nat from the optimum; the
asymmetry k is shared by all cells or drawn per cell, partially pooled. Which runs are observed
or censored is `scalefit.model.data.run_weights`: a diverged run is censored at the worst ok loss
in its cell's LR window (it was at least as bad as anything that finished), an ok run past the
loss window at the cell's best loss x (1 + loss_window).

The sampler sees a reparameterized model: partially non-centred optima and widths, the intercept
drawn as the law's level over the cells, and each walked axis's slope and curvature drawn with its
walk as the sums the data see. None of it changes the posterior. The model page, docs/model.md,
describes all of it in prose.
"""

from __future__ import annotations

import numpy as np

from scalefit.model.config import ModelConfig
from scalefit.model.data import ModelData
from scalefit.model.law import term_value, terms_with_walk
from scalefit.model.valley import valley_rise, student_t_logsf

__all__ = ["build_model", "initial_values"]

INIT_TAU = 0.3  # initial law residual sd, so a non-centred start can put each cell at its best run


def initial_values(data: ModelData) -> dict[str, np.ndarray]:
    """The sampler's starting point: each cell at its best observed run, the law flat at zero.

    Far from it, the exponential valley sides overflow and a chain can stall before adaptation
    begins.

    Parameters
    ----------
    data : ModelData
        The model's arrays.

    Returns
    -------
    dict of str to numpy.ndarray
        Start values of the model's free variables, by name (the rest start at PyMC's default).
    """
    observed = (data.weight > 0) & (data.censored == 0)
    best_x = np.zeros(data.n_cells)
    best_y = np.zeros(data.n_cells)
    for c in np.unique(data.cell[observed]):
        idx = np.flatnonzero(observed & (data.cell == c))
        i = idx[np.argmin(data.y[idx])]
        best_x[c], best_y[c] = data.x[i], data.y[i]
    w = data.centring
    start = {"law_level": np.array(0.0), "law_residual_sd": np.array(INIT_TAU), "floor": best_y,
             # partially non-centred: m = law + tau^(1-w) (m_raw - w law), law = 0 at the start
             "log_lr_opt_raw": best_x / INIT_TAU ** (1 - w)}
    with_walk = terms_with_walk(data)
    for name, _, _ in data.terms:
        if name not in with_walk:
            start[name] = np.array(0.0)
    for axis, step in (data.walk_step or {}).items():
        start |= {f"law_trend_{axis}": np.array(0.0), f"law_trend_split_{axis}": np.array(0.0)}
        if len(step) > 1:
            start[f"law_bridge_{axis}_z"] = np.zeros(len(step) - 1)
        if f"law_curvature_{axis}" in with_walk:
            start |= {f"law_bend_{axis}": np.array(0.0), f"law_bend_split_{axis}": np.array(0.0)}
    return start


def _scale_prior(pm, name: str, prior: dict):
    """Gamma(alpha, beta) when the prior gives alpha and beta, else HalfNormal(sigma).

    Gamma with alpha >= 2 keeps a scale off zero (a boundary-avoiding prior, Chung et al. 2013,
    Psychometrika 78:685). Not the default: where the data put tau near zero it lifts it only
    slightly, so it buys no better geometry there.
    """
    if "alpha" in prior:
        return pm.Gamma(name, alpha=prior["alpha"], beta=prior["beta"])
    return pm.HalfNormal(name, **prior)


def _law_walk(pm, pt, axis: str, d: dict, priors: dict, n_steps: int, with_curvature: bool):
    """The law's form error along `axis`, drawn together with the law's slope (and curvature)
    there.

    The walk W is a Brownian motion in e-folds t from the smallest value (W(0) = 0, scale
    kappa); beyond the data it keeps diffusing, so the interval widens with the distance
    (predict continues it from the fitted cells). It is drawn as its linear part g t
    (g ~ N(0, kappa^2 / T), T the last position) plus a Brownian bridge, independent of g.
    The data see only sums: the slope b ~ N(mu, sigma) and g act together, and a curvature c
    (per e-fold^2, about the data's centre t_c) is c t_c^2 + c a t - c h(t) with a = T - 2 t_c and
    h(t) = t (T - t), the bridge's own shape. So the bridge is split into l h, with l its GLS
    coefficient on h (l ~ N(0, kappa^2 / |v|^2), v = L^-1 h for the bridge's Cholesky factor L),
    plus a remainder independent of l. The two sums the data see, S = b + g + a c ("trend") and
    U = l - c ("bend"), are drawn from their joint prior, then c given (S, U), then b given
    S - a c; what the data cannot see are standard normals of their own instead of ridges
    between slope, curvature, walk and intercept, along which the sampler mixes slowly (the
    slope against the walk's linear part, a curvature against the bridge). The joint prior of
    (b, c, W) is unchanged.

    Returns the slope's and the curvature's (None without one) natural coefficients and the walk
    at the positions.
    """
    kappa = _scale_prior(pm, f"law_discrepancy_{axis}", priors["law_discrepancy"])
    position = d[f"walk_position_{axis}"]
    total = position[-1]
    if n_steps > 1:
        reach, shape, v, increment = (d[f"walk_bridge_{axis}"][row] for row in range(4))
    slope = priors[f"law_slope_{axis}"]
    mu, sigma = slope["mu"], slope["sigma"]
    g_var = kappa**2 / total
    if with_curvature:
        curv = priors[f"law_curvature_{axis}"]
        mu_c, var_c = curv["mu"], curv["sigma"] ** 2
        a = d[f"walk_offset_{axis}"]  # T - 2 t_c
        vv = pt.sum(v**2)
        l_var = kappa**2 / vv
        s_rest = sigma**2 + g_var  # variance of b + g
        var_u, var_s, cov_su = var_c + l_var, s_rest + a**2 * var_c, -a * var_c
        # q = 0 (data: no cell at the axis's last position, as in a backtest that holds out the
        # largest cells): the sums over [0, T] are not what the data see, and the curvature is
        # drawn on its own (U then keeps its prior; nothing uses it). Splitting there would only
        # slow sampling down.
        q = d[f"bend_split_{axis}"]
        u = pm.Normal(f"law_bend_{axis}", mu=-mu_c, sigma=pt.sqrt(var_u))
        s = pm.Normal(f"law_trend_{axis}", mu=mu + q * (a * mu_c + cov_su / var_u * (u + mu_c)),
                      sigma=pt.sqrt(s_rest + q * (a**2 * var_c - cov_su**2 / var_u)))
        # c given (S, U) in precision form, stable as kappa -> 0 (then l -> 0 and c -> -U)
        denom = kappa**2 / var_c + vv + a**2 * kappa**2 / s_rest
        c_mean = (mu_c * kappa**2 / var_c - u * vv + a * (s - mu) * kappa**2 / s_rest) / denom
        e_c = pm.Normal(f"law_bend_split_{axis}", 0, 1)
        c = q * (c_mean + kappa / pt.sqrt(denom) * e_c) + (1 - q) * (mu_c + np.sqrt(var_c) * e_c)
        ell = u + c
        s = s - q * a * c
    else:
        s = pm.Normal(f"law_trend_{axis}", mu=mu, sigma=pt.sqrt(sigma**2 + g_var))
        c = None
    r = sigma**2 / (sigma**2 + g_var)
    b = mu + r * (s - mu) + sigma * pt.sqrt(1 - r) * pm.Normal(f"law_trend_split_{axis}", 0, 1)
    g = s - b
    if n_steps > 1:
        # B_k = kappa (T - t_k) sum_{j<=k} sqrt(dt_j / ((T - t_j)(T - t_{j-1}))) z_j, partially
        # centred: z = kappa^-wc z_raw, z_raw ~ N(0, kappa^wc). Non-centred (wc = 0) suits
        # tables whose few increments barely inform kappa, and there half-centring diverges
        # more. Where the data pin every position's law value (many well-swept cells per
        # position) the non-centred bridge funnels at large kappa; half-centred (wc = 0.5) is
        # the fallback for those, as the fully centred bridge diverges there too.
        wc = d["walk_centre_power"]
        zb = pm.Normal(f"law_bridge_{axis}_z", 0, kappa**wc, shape=(position.shape[0] - 2,))
        if with_curvature:  # the remainder: z with its component along v (that is, l) taken out
            zb = zb - q * v * pt.sum(v * zb) / vv
        interior = kappa ** (1 - wc) * reach * pt.cumsum(increment * zb)
        if with_curvature:
            interior = interior + q * ell * shape
        bridge = pt.concatenate([pt.zeros(1), interior, pt.zeros(1)])
    else:
        bridge = pt.zeros(2)
    walk = pm.Deterministic(f"law_walk_{axis}", g * position + bridge)
    return b, c, walk


def build_model(data: ModelData, config: ModelConfig):
    """The PyMC model for `data` (the module docstring states it).

    PyMC is imported here, not at module level, so that commands that never sample (the CLI's
    ``check``) stay fast.

    Parameters
    ----------
    data : ModelData
        The model's arrays (`scalefit.model.data.prepare`); they become ``pm.Data`` containers,
        so a compiled model can swap in another table of the same structure.
    config : ModelConfig
        The model settings (valley, asymmetry, nu and priors; the law's form is in `data`).

    Returns
    -------
    pymc.Model
        The model, with a "cell" coordinate.

    Examples
    --------
    >>> from scalefit.model.config import ModelConfig
    >>> from scalefit.model.data import prepare
    >>> from scalefit.model.graph import build_model
    >>> from scalefit.runs.synthetic import make_grid
    >>> from scalefit.runs.table import load_runs
    >>> table, config = load_runs(make_grid()), ModelConfig(axis="N")
    >>> model = build_model(prepare(table.runs, table.cells, config), config)  # doctest: +SKIP
    """
    import pymc as pm
    import pytensor.tensor as pt

    pr = config.priors
    coords = {"cell": np.arange(data.n_cells)}
    with pm.Model(coords=coords) as model:
        d = {name: pm.Data(name, value, dims="cell" if name.startswith(("z_", "cell_share")) or name.endswith("centring") else None)
             for name, value in data.arrays().items()}
        z = {"N": d["z_n"], "D": d["z_d"]}
        z["B"] = d.get("z_b")  # present only when the law has a batch-size term
        sds = {a: d.get(f"sd_{a}") for a in ("N", "D", "B")}
        with_walk = terms_with_walk(data)
        walks = {axis: _law_walk(pm, pt, axis, d, pr, len(step), f"law_curvature_{axis}" in with_walk)
                 for axis, step in (data.walk_step or {}).items()}
        coefs = {}
        for name, axis, power in data.terms:
            # Priors are stated per e-fold (power 1) or per e-fold^2 (power 2); a coefficient on
            # z = (ln v - centre) / sd is the natural one times sd^power.
            # The sd is data (not a constant of the graph), so a refit that swaps in another
            # table keeps its priors per e-fold.
            sd = term_value(sds, axis, power)
            if name in with_walk:
                natural = walks[axis][power - 1]
                coefs[name] = pm.Deterministic(name, natural * sd)
            else:
                coefs[name] = pm.Normal(name, mu=pr[name]["mu"] * sd, sigma=pr[name]["sigma"] * sd)
                natural = coefs[name] / sd
            pm.Deterministic(f"{name}_natural", natural)
        rest = pt.zeros_like(d["z_n"])
        for name, axis, power in data.terms:
            rest = rest + coefs[name] * term_value(z, axis, power)
        for axis, (_, _, walk) in walks.items():
            rest = rest + walk[d[f"walk_index_{axis}"]]
        # The data pin the law's mean over the cells with data: the intercept is drawn as that
        # level (centred) and recovered exactly, so it does not trade off against the walk or
        # the curvatures (whose mean over the cells is not 0).
        shift = pt.sum(d["cell_share"] * rest)
        level = pm.Normal("law_level", mu=pr["law_intercept"]["mu"] + shift, sigma=pr["law_intercept"]["sigma"])
        law = pm.Deterministic("law_intercept", level - shift) + rest
        tau = _scale_prior(pm, "law_residual_sd", pr["law_residual_sd"])
        # Partially non-centred by how informative each cell's own sweep is (cell_centring):
        # m = law + tau^(1-w) (m_raw - w law), m_raw ~ N(w law, tau^w). w = 1 is centred, w = 0
        # non-centred; w is data, so cells of any mix share one compiled model.
        w = d["centring"]
        raw = pm.Normal("log_lr_opt_raw", mu=w * law, sigma=tau**w, dims="cell")
        m = pm.Deterministic("log_lr_opt", law + tau ** (1 - w) * (raw - w * law), dims="cell")

        floor_mean = (pm.Normal("floor_intercept", **pr["floor_intercept"])
                      + pm.Normal("floor_slope_N", **pr["floor_slope"]) * z["N"]
                      + pm.Normal("floor_slope_D", **pr["floor_slope"]) * z["D"])
        floor = pm.Normal("floor", mu=floor_mean, sigma=_scale_prior(pm, "floor_sd", pr["floor_sd"]), dims="cell")
        width_mean = pm.Normal("log_width_mean", **pr["log_width_mean"])
        width_sd = pm.HalfNormal("log_width_sd", **pr["log_width_sd"])
        # Partially non-centred like the optima (cell_centring): a sweep that pins its valley's
        # width is centred, a thin one non-centred. When cells share one width the centred form
        # funnels; when every sweep pins its width (many sharp cells) the non-centred form mixes
        # slowly. Either wrong choice costs several-fold in effective sample size.
        ww = d["width_centring"]
        width_raw = pm.Normal("log_width_raw", mu=ww * width_mean, sigma=width_sd**ww, dims="cell")
        log_width = pm.Deterministic("log_width", width_mean + width_sd ** (1 - ww) * (width_raw - ww * width_mean),
                                     dims="cell")
        # Noise is a smooth function of scale, not a free effect per cell: a sweep's handful of
        # runs barely informs its own noise, and a per-cell hierarchy funnels and slows sampling.
        log_noise = pm.Deterministic(
            "log_noise", pm.Normal("log_noise_mean", **pr["log_noise_mean"])
            + pm.Normal("log_noise_slope_N", 0.0, pr["log_noise_sd"]["sigma"]) * z["N"]
            + pm.Normal("log_noise_slope_D", 0.0, pr["log_noise_sd"]["sigma"]) * z["D"],
            dims="cell")

        asymmetry = pm.Normal("valley_asymmetry", **pr["valley_asymmetry"]) if config.valley == "asymmetric" else None
        if asymmetry is not None and config.asymmetry == "per_cell":
            # Valley-shape discrepancy: each cell its own asymmetry, partially pooled, so a
            # cell's optimum is only as certain as its sweep pins the shape.
            asym_sd = pm.HalfNormal("valley_asymmetry_sd", **pr["valley_asymmetry_sd"])
            asymmetry = pm.Deterministic(
                "valley_asymmetry_cell", asymmetry + asym_sd * pm.Normal("valley_asymmetry_z", 0, 1, dims="cell"),
                dims="cell")
        valley = {}  # per part: (mean loss, noise scale) of each run
        for part in ("obs", "cens"):
            cell = d[f"cell_{part}"]
            k = asymmetry[cell] if asymmetry is not None and config.asymmetry == "per_cell" else asymmetry
            mu = floor[cell] + pt.exp(log_width)[cell] * valley_rise(d[f"x_{part}"] - m[cell], k, xp=pt)
            valley[part] = (mu, pt.exp(log_noise)[cell])
        obs_mu, obs_sigma = valley["obs"]
        pm.Potential("loglik_obs", pm.logp(pm.StudentT.dist(nu=config.nu, mu=obs_mu, sigma=obs_sigma),
                                           d["y_obs"]).sum())
        cens_mu, cens_sigma = valley["cens"]
        pm.Potential("loglik_cens", student_t_logsf((d["threshold_cens"] - cens_mu) / cens_sigma, config.nu,
                                                    pm, pt).sum())
    return model
