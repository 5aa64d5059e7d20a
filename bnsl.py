"""
bnsl.py: find loss deceleration by fitting a broken neural scaling law (BNSL).

The model, in log-log space, with K = 0, 1 or 2 breaks:

    log L(t) = log b - c0 log t - sum_k c_k f_k softplus((log t - log d_k) / f_k)

Before a break the log-log slope is -c0; after break k it is -(c0 + c1 + ... + c_k).
f_k > 0 is how gradual the break is (in units of log t). Deceleration is c1 < 0.
What we report, as in the paper:

    t_d = d1                         the step at which the loss decelerates
    L_d = b t_d^(-c0)                the loss there, on the first straight segment
    r_d = c0 + c1                    the log-log rate of improvement afterwards
    L_hat_T = L_d (t_d / T)^(r_d)    the predicted loss at the last step T, vs observed L_T
    RSLE = sqrt(mean((log L_hat - log L)^2))   over the fitted points, and the same
                                     for a plain power law (how much the break buys)

With 2 breaks (sorted, d1 < d2) t_d, L_d and r_d describe the first break, and L_hat_T is the
fitted curve at T, since the two-segment formula cannot know about break 2.

How the fit works (numpy only):
  1. Variable projection. For fixed break shapes (log d_k, f_k) the model is linear in
     (log b, c0, c_k), so one exact linear least-squares solve gives the best of those.
     We do it for every point of a grid of break shapes at once.
  2. Levenberg-Marquardt from the few best, well separated grid points, with the analytic
     Jacobian, to the least-squares optimum. Errors from sigma^2 (J^T J)^-1, sigma^2 = RSS/(n-p).
  3. The fit reports a *supported deceleration* only if every one of these holds:
     (a) it is a deceleration: c1 < 0 (c1 > 0 means the slope steepens, an acceleration);
     (b) it is a visible one: break 1 lifts the last fitted loss at least 5 % (in log units,
         -c1 f1 softplus((log T - log d1)/f1) >= 0.05) above the first segment's line -- a
         scale-free test alone finds "breaks" in the last digits of a noiseless curve (the
         paper's curves: 0.6-1.2);
     (c) there are at least 3 fitted points per free parameter (15 for one break);
     (d) each break lies inside the fitted steps;
     (e) each break's c_k and d_k have a 1-sigma error below 100 %;
     (f) one break fewer does not already fit exactly (RSLE <= 1e-9, e.g. a constant curve);
     (g) the fit beats the fit with one break fewer by BIC = n log(RSS/n) + p log n (lower
         is better), and (h) cuts its RSLE by at least 30 %. Rule (h) catches what BIC misses
         on smoothed curves, whose residuals are correlated: a corner fitted to the noisy first
         points of a pure power law lowers the RSLE by 1-25 %, a real bend by far more (ours:
         about 65 %, the paper's: about 85 %).
     The sharpness f_k is not tested: a sharp bend (f_k at its lower limit) is real even though
     its exact sharpness is not measurable. An unsupported fit is still returned, with
     supported=False and a warning that says why; t_d, L_d and r_d of an unsupported fit are
     numbers of a curve, not a deceleration, and zsl.py and reproduce.py do not use them.

Reading and preparing the curve (smoothing, thinning, the transient; in steps or in dynamic
time) are in curves.py; whether a supported break is a deceleration, rather than the learning-
rate schedule or the end of the run, is judged in deceleration.py; the command line that prints
both (a table, --json, --plot) is support/bnsl_cli.py.

    python bnsl.py runs/small runs/big --plot fits.png
    python bnsl.py curve.csv --breaks=2 --json
"""
import sys

import numpy as np

# what bnsl.py, and the tools that import it, read and prepare curves with
from curves import (DEFAULT_SMOOTH, DEFAULT_SUBSAMPLE, DEFAULT_TRANSIENT, LMA_RATIO,  # noqa: F401
                    CurveError, check_curve, dynamic_time, load_curve, log_moving_average,
                    log_subsample_mask, prepare_curve, read_curve)

MAX_RELATIVE_ERROR = 1.0  # a supported break has c_k and d_k each known to +-100 % (1 sigma)
MIN_RSLE_GAIN = 0.3       # ... and cuts the RSLE of one break fewer by at least 30 %
MIN_POINTS_PER_PARAM = 3  # ... from at least 3 fitted points per free parameter (15 for 1 break)
MIN_BEND = 0.05           # ... and lifts the last loss >= 5 % (in log) above the first segment
EXACT_RSLE = 1e-9         # one break fewer fitting this well (e.g. a constant curve) leaves no bend
F_MIN = 1e-3              # smallest break width f we allow (f -> 0 is a sharp corner)


# ---------------------------------------------------------------- 1. the model and its Jacobian
# Parameters theta = [log b, c0, (c_k, log d_k, f_k) for each break k].

def softplus(z):
    """log(1 + e^z) without overflow: max(z, 0) + log(1 + e^-|z|)."""
    return np.maximum(z, 0.0) + np.log1p(np.exp(-np.abs(z)))


def sigmoid(z):
    """1 / (1 + e^-z) without overflow: e^-|z| is never larger than 1."""
    small = np.exp(-np.abs(z))
    return np.where(z >= 0, 1.0 / (1.0 + small), small / (1.0 + small))


def bnsl_log_loss(theta, log_t):
    """log L(t) = log b - c0 log t - sum_k c_k f_k softplus((log t - log d_k) / f_k)."""
    log_loss = theta[0] - theta[1] * log_t
    for c, log_d, f in theta[2:].reshape(-1, 3):
        log_loss = log_loss - c * f * softplus((log_t - log_d) / f)
    return log_loss


def bnsl_jacobian(theta, log_t):
    """d log L / d theta, one column per parameter, with z = (log t - log d) / f."""
    columns = [np.ones_like(log_t), -log_t]                 # d/d log b = 1,  d/d c0 = -log t
    for c, log_d, f in theta[2:].reshape(-1, 3):
        z = (log_t - log_d) / f
        columns.append(-f * softplus(z))                    # d/dc     = -f softplus(z)
        columns.append(c * sigmoid(z))                      # d/dlog d = c sigmoid(z)
        columns.append(-c * (softplus(z) - z * sigmoid(z)))  # d/df     = -c (softplus(z) - z sigmoid(z))
    return np.stack(columns, axis=1)


# ---------------------------------------------------------------- 2. fitting

def projection_starts(log_t, log_loss, n_breaks, grid_size, max_starts=4):
    """Best (log d_k, f_k) on a grid, each with its exact linear fit of (log b, c0, c_k).

    The design matrix for fixed breaks is A = [1, -log t, -f_k softplus((log t - log d_k)/f_k)].
    All its inner products come from one small matrix product, so every grid point (or pair of
    grid points, for 2 breaks) is solved at once: beta = (A^T A)^-1 A^T y and
    RSS = y^T y - 2 beta^T A^T y + beta^T A^T A beta.
    """
    n_d, n_f = grid_size
    log_d_grid, f_grid = np.meshgrid(np.linspace(log_t[0], log_t[-1], n_d),
                                     np.geomspace(0.02, 3.0, n_f), indexing="ij")
    log_d_grid, f_grid = log_d_grid.ravel(), f_grid.ravel()
    break_columns = -f_grid[:, None] * softplus((log_t - log_d_grid[:, None]) / f_grid[:, None])
    columns = np.vstack([np.ones_like(log_t), -log_t, break_columns])   # every possible column
    gram, moments, yy = columns @ columns.T, columns @ log_loss, log_loss @ log_loss
    first = np.arange(len(log_d_grid))
    if n_breaks == 1:
        chosen = first[:, None]
    else:  # every pair with the first break strictly before the second
        i, j = np.meshgrid(first, first, indexing="ij")
        pair = log_d_grid[i] < log_d_grid[j]
        chosen = np.stack([i[pair], j[pair]], axis=1)
    which = np.hstack([np.zeros((len(chosen), 1), int), np.ones((len(chosen), 1), int), chosen + 2])
    a_t_a = gram[which[:, :, None], which[:, None, :]]
    a_t_y = moments[which]
    # Solve with unit-norm columns and a tiny ridge, so that collinear columns (a break at the
    # edge of the data is a straight line) give a finite answer instead of an error.
    scale = 1.0 / np.sqrt(np.einsum("gii->gi", a_t_a))
    scaled_a_t_a = a_t_a * scale[:, :, None] * scale[:, None, :] + 1e-10 * np.eye(which.shape[1])
    beta = scale * np.linalg.solve(scaled_a_t_a, (scale * a_t_y)[:, :, None])[:, :, 0]
    rss = yy - 2 * np.einsum("gi,gi->g", beta, a_t_y) + np.einsum("gi,gij,gj->g", beta, a_t_a, beta)
    # The best grid points whose breaks are more than one grid spacing from every chosen one.
    spacing = (log_t[-1] - log_t[0]) / (n_d - 1)
    starts, taken = [], []
    for g in np.argsort(rss)[:500]:
        log_ds = log_d_grid[chosen[g]]
        if all(np.max(np.abs(log_ds - other)) > spacing for other in taken):
            taken.append(log_ds)
            theta = [beta[g, 0], beta[g, 1]]
            for k, shape in enumerate(chosen[g]):
                theta += [beta[g, 2 + k], log_d_grid[shape], f_grid[shape]]
            starts.append(np.array(theta))
            if len(starts) == max_starts:
                break
    return starts


def levenberg_marquardt(theta, log_t, log_loss, max_iterations=200):
    """Minimise RSS = sum of squared residuals r = model - data from theta; f_k stays >= F_MIN.

    Each iteration solves (J^T J + damping diag(J^T J)) step = -J^T r. Our residuals are smooth
    and systematic, not small, and there such Gauss-Newton steps overshoot, alternating in sign
    (hundreds of iterations). So we also take the step length alpha that minimises the parabola
    through RSS(theta), its slope 2 r^T J step, and RSS(theta + step), and keep the better one.
    """
    def rss_at(point):
        if np.any(point[4::3] < F_MIN):
            return np.inf
        residual = bnsl_log_loss(point, log_t) - log_loss
        return residual @ residual

    rss, damping = rss_at(theta), 1e-3
    for _ in range(max_iterations):
        residual = bnsl_log_loss(theta, log_t) - log_loss
        jacobian = bnsl_jacobian(theta, log_t)
        j_t_j, j_t_r = jacobian.T @ jacobian, jacobian.T @ residual
        diagonal = np.maximum(np.diag(j_t_j), 1e-9 * np.max(np.diag(j_t_j)))
        for attempt in range(12):                       # raise the damping until RSS drops
            step = np.linalg.solve(j_t_j + damping * np.diag(diagonal), -j_t_r)
            rss_full = rss_at(theta + step)
            slope = 2 * j_t_r @ step                    # d RSS(theta + alpha step) / d alpha at 0
            curvature = rss_full - rss - slope          # RSS(alpha) ~ rss + slope alpha + curvature alpha^2
            alpha = np.clip(-slope / (2 * curvature), 0.1, 2.0) if curvature > 0 else 1.0
            new_rss, new_alpha = min((rss_full, 1.0), (rss_at(theta + alpha * step), alpha))
            if new_rss < rss:
                break
            damping *= 4.0
        else:
            return theta                                # no step improves: we are at the optimum
        improvement = (rss - new_rss) / rss
        theta, rss, damping = theta + new_alpha * step, new_rss, max(damping / 3.0, 1e-7)
        if improvement < 1e-13:
            break
    return theta


def fit_power_law(log_t, log_loss):
    """Plain power law log L = log b - c0 log t, by ordinary least squares."""
    design = np.stack([np.ones_like(log_t), -log_t], axis=1)
    (log_b, c0), *_ = np.linalg.lstsq(design, log_loss, rcond=None)
    return np.array([log_b, c0])


def fit_theta(log_t, log_loss, n_breaks):
    """Least-squares parameters for 0, 1 or 2 breaks, breaks sorted by location."""
    if n_breaks == 0:
        return fit_power_law(log_t, log_loss)
    grid_size = (32, 10) if n_breaks == 1 else (20, 6)   # (log d values, f values)
    best, best_rss = None, np.inf
    for start in projection_starts(log_t, log_loss, n_breaks, grid_size):
        theta = levenberg_marquardt(start, log_t, log_loss)
        residual = bnsl_log_loss(theta, log_t) - log_loss
        if residual @ residual < best_rss:
            best, best_rss = theta, residual @ residual
    breaks = best[2:].reshape(-1, 3)
    return np.r_[best[:2], breaks[np.argsort(breaks[:, 1])].ravel()]


def fit_bnsl(steps, losses, breaks=1, clock="step"):
    """Fit the BNSL to a prepared curve; a dict of parameters, errors and derived numbers.
    steps: [n] positive times (steps, or tau when clock="tau": it names them in the warning)."""
    steps, losses = np.asarray(steps, dtype=float), np.asarray(losses, dtype=float)
    check_curve(steps, losses, "curve")
    n_params = 2 + 3 * breaks
    if breaks not in (0, 1, 2):
        raise CurveError(f"breaks={breaks!r}: choose 0, 1 or 2")
    if len(steps) <= n_params:
        raise CurveError(f"{len(steps)} points left after preprocessing, but a {breaks}-break fit "
                         f"has {n_params} parameters; give a longer or denser curve")
    if steps[0] <= 0:
        raise CurveError("steps must be positive for log t; drop step 0 (e.g. --transient=0)")
    log_t, log_loss = np.log(steps), np.log(losses)
    n = len(steps)

    def rss_of(theta):
        residual = bnsl_log_loss(theta, log_t) - log_loss
        return residual @ residual

    theta = fit_theta(log_t, log_loss, breaks)
    rss = rss_of(theta)
    # Covariance sigma^2 (J^T J)^-1 with sigma^2 = RSS / (n - p).
    jacobian = bnsl_jacobian(theta, log_t)
    try:
        with np.errstate(all="ignore"):   # a singular J^T J (e.g. a constant curve): nan errors
            covariance = rss / (n - n_params) * np.linalg.inv(jacobian.T @ jacobian)
    except np.linalg.LinAlgError:
        covariance = np.full((n_params, n_params), np.nan)
    if not np.all(np.isfinite(covariance)):
        covariance = np.full((n_params, n_params), np.nan)
    error = np.sqrt(np.abs(np.diag(covariance)))

    result = {"breaks": breaks, "n_points": n, "first_step": steps[0], "T": steps[-1],
              "b": np.exp(theta[0]), "b_err": np.exp(theta[0]) * error[0],   # d b = b d log b
              "c0": theta[1], "c0_err": error[1]}
    for k in range(breaks):
        c, log_d, f = theta[2 + 3 * k: 5 + 3 * k]
        result.update({f"c{k + 1}": c, f"c{k + 1}_err": error[2 + 3 * k],
                       f"d{k + 1}": np.exp(log_d), f"d{k + 1}_err": np.exp(log_d) * error[3 + 3 * k],
                       f"f{k + 1}": f, f"f{k + 1}_err": error[4 + 3 * k]})
    # A sharp corner drives f_k to its bound F_MIN: its value is "sharper than we resolve" and
    # its +- (from a curvature the bound cuts off) means nothing.
    result["at_bound"] = [f"f{k + 1}" for k in range(breaks) if result[f"f{k + 1}"] <= 2 * F_MIN]

    power_law = theta if breaks == 0 else fit_power_law(log_t, log_loss)
    result["rsle"] = np.sqrt(rss / n)                          # sqrt(mean((log L_hat - log L)^2))
    result["rsle_power_law"] = np.sqrt(rss_of(power_law) / n)
    result["L_T"] = losses[-1]
    add_deceleration_numbers(result, theta, covariance, steps, log_t)
    problems = support_problems(result, theta, steps, log_t, log_loss, power_law, rss_of, clock)
    result["supported"] = not problems
    result["warning"] = "; ".join(problems) or None
    result["steps"], result["losses"] = steps, losses        # the fitted points, for plots
    return result


def add_deceleration_numbers(result, theta, covariance, steps, log_t):
    """t_d, L_d = b t_d^-c0 and r_d = c0 + c1 of break 1, with errors by the delta method (None for
    a fit without breaks), and L_hat_T, the fitted loss at the last step."""
    breaks, n_params = result["breaks"], len(theta)
    if breaks == 0:
        result.update(c1=None, f1=None, d1=None, t_d=None, L_d=None, r_d=None,
                      L_hat_T=np.exp(theta[0]) * steps[-1] ** -theta[1])
    else:
        t_d = result["d1"]
        L_d = np.exp(theta[0]) * t_d ** -theta[1]              # L_d = b t_d^(-c0)
        r_d = theta[1] + theta[2]                               # r_d = c0 + c1
        # Delta method: errors of log L_d = log b - c0 log d1 and of r_d = c0 + c1.
        grad_log_L_d = np.zeros(n_params)
        grad_log_L_d[[0, 1, 3]] = [1.0, -np.log(t_d), -theta[1]]
        grad_r_d = np.zeros(n_params)
        grad_r_d[[1, 2]] = 1.0
        result.update(t_d=t_d, t_d_err=result["d1_err"], L_d=L_d,
                      L_d_err=L_d * np.sqrt(abs(grad_log_L_d @ covariance @ grad_log_L_d)),
                      r_d=r_d, r_d_err=np.sqrt(abs(grad_r_d @ covariance @ grad_r_d)),
                      L_hat_T=L_d * (t_d / steps[-1]) ** r_d)   # L_hat_T = L_d (t_d / T)^r_d
        if breaks == 2:   # the two-segment formula ignores break 2: use the fitted curve at T
            result["L_hat_T"] = np.exp(bnsl_log_loss(theta, log_t[-1:]))[0]


def support_problems(result, theta, steps, log_t, log_loss, power_law, rss_of, clock):
    """Why the fit's break 1 is no supported deceleration ([] if it is): the rules of the module
    docstring -- a deceleration (c1 < 0), a visible bend, enough points, breaks inside the data and
    pinned down, and clearly better than one break fewer (RSLE and BIC)."""
    breaks, n, n_params = result["breaks"], len(steps), len(theta)
    rss = rss_of(theta)
    problems = []
    if breaks > 0 and result["c1"] >= 0:
        problems.append(f"break 1 is an acceleration, not a deceleration (c1 = {result['c1']:+.3g}: "
                        "the slope steepens; a deceleration has c1 < 0)")
    if breaks > 0 and result["c1"] < 0:
        # How far break 1 lifts the last fitted loss above the first segment's extrapolation:
        # log(b T^-c0) - log L(T) from break 1 alone = -c1 f1 softplus((log T - log d1) / f1).
        c1, log_d1, f1 = theta[2:5]
        lift = -c1 * f1 * softplus((log_t[-1] - log_d1) / f1)
        if lift < MIN_BEND:
            problems.append(f"break 1 is too slight to be a deceleration: it lifts the last "
                            f"loss only {lift:.1%} above the first segment's line (needs "
                            f"{MIN_BEND:.0%})")
    if breaks > 0 and n < MIN_POINTS_PER_PARAM * n_params:
        problems.append(f"only {n} points for {n_params} parameters (a supported break needs "
                        f"{MIN_POINTS_PER_PARAM * n_params}); give a longer or denser curve")
    for k in range(breaks):
        if not steps[0] <= result[f"d{k + 1}"] <= steps[-1]:
            problems.append(f"break {k + 1} at {clock} {result[f'd{k + 1}']:.3g} lies outside "
                            f"the fitted {clock}s {steps[0]:.4g}..{steps[-1]:.4g}")
        vague = [f"{p}{k + 1}" for p in "cd"
                 if not result[f"{p}{k + 1}_err"] < MAX_RELATIVE_ERROR * abs(result[f"{p}{k + 1}"])]
        if vague:
            problems.append(f"break {k + 1} is not pinned down by the data: {', '.join(vague)} "
                            f"uncertain by more than {MAX_RELATIVE_ERROR:.0%}")
    if breaks > 0:
        fewer = power_law if breaks == 1 else fit_theta(log_t, log_loss, breaks - 1)
        rss_fewer = rss_of(fewer)
        if np.sqrt(rss_fewer / n) <= EXACT_RSLE:
            # e.g. a constant curve: log(RSS) and the RSLE ratio below would be 0/0 noise
            problems.append(f"{breaks - 1} break(s) already fit the curve exactly "
                            f"(RSLE {np.sqrt(rss_fewer / n):.1g}); there is no bend to find")
        else:
            rss_safe = max(rss, EXACT_RSLE ** 2 * n)              # log(0) would be -inf
            bic = n * np.log(rss_safe / n) + n_params * np.log(n)  # BIC = n log(RSS/n) + p log n
            bic_fewer = n * np.log(rss_fewer / n) + (n_params - 3) * np.log(n)
            gain = 1 - np.sqrt(rss / rss_fewer)                   # 1 - RSLE / RSLE(one break fewer)
            failed = []  # only the tests the fit failed, each with what it needed
            if gain < MIN_RSLE_GAIN:
                failed.append(f"RSLE {gain:.0%} lower (needs {MIN_RSLE_GAIN:.0%})")
            if bic >= bic_fewer:
                failed.append(f"BIC {bic:.1f} vs {bic_fewer:.1f} (needs lower)")
            if failed:
                problems.append(f"{breaks} break(s) no better than {breaks - 1}: " + ", ".join(failed))
    return problems


def bnsl_curve(result, steps):
    """The fitted loss at the given steps, from a fit_bnsl result."""
    theta = [np.log(result["b"]), result["c0"]]
    for k in range(1, result["breaks"] + 1):
        theta += [result[f"c{k}"], np.log(result[f"d{k}"]), result[f"f{k}"]]
    return np.exp(bnsl_log_loss(np.array(theta), np.log(steps)))


if __name__ == "__main__":  # the command line (the table, --json, --plot): support/bnsl_cli.py
    from support.bnsl_cli import main
    sys.exit(main())
