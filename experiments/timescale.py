"""
timescale.py: a second lens on the bend -- one-third time scaling of learning peaked distributions.

Liu, Liu, Pehlevan, Gore, "Universal One-third Time Scaling in Learning Peaked Distributions"
(arXiv 2602.03685; docs/science.md §7). Softmax + cross-entropy on a peaked target give a loss
and a gradient that vanish as powers of the logit scale, so training slows into a power law in
*dynamic time*, the summed learning rate:

    tau_t = sum_{s <= t} lr_s                      (= lr t under a constant learning rate)
    L(tau) ~ c tau^(-alpha) + L0,   alpha = 1/3

The mechanism, for logits beta z against a teacher's beta* z (one scalar, the logit scale beta):

    L(beta) = KL(softmax(beta* z) || softmax(beta z)),    dL/dbeta = E_beta[z] - E_beta*[z]

For sqrt(2 ln V) << beta << beta*, L ~ 1/beta and |dL/dbeta| ~ 1/beta^2, so gradient flow
dbeta/dtau = -dL/dbeta ~ beta^-2 gives beta ~ tau^(1/3) and L ~ tau^(-1/3).

Read top to bottom:
  1. dynamic time
  2. the mechanism: one logit scale beta
  3. the toy: their teacher-student softmax head (exp-1 of liuyz0/TimeScaling)
  4. the fit  log L = log(c tau^-alpha + L0), by variable projection (as in bnsl.py)
  5. our runs through the same lens: tau from log.csv, the logit scale at every checkpoint
  (figures, reproduce.py's report section and the command line: timescale_report.py)

The fit window, a rule stated before any measurement: the last decade of dynamic time,
tau >= tau_T / 10 (a power-law exponent needs a decade; the end of training is where a slow
phase lives). For our runs we also fit from t_d (bnsl.py's 1-break fit) to the end, to ask
whether the slow phase after the bend is the tau^(-1/3) phase, and compare the log-log slope
of the logit scale against tau before and after t_d.

    python timescale.py toy                         # the paper's toy: alpha, figure timescale_toy.png
    python timescale.py toy --temperature=0.1 --lr=0.01 --json
    python timescale.py runs/a runs/b --plot timescale.png

Python API (used by the tests and reproduce.py):
    dynamic_time(lrs); scalar_beta_loss(beta, beta_star, z); scalar_beta_grad(beta, beta_star, z)
    toy_loss(student, teacher, x, temperature); train_toy(...) -> dict
    fit_time_power_law(tau, loss) -> dict;  log_log_slope(tau, values) -> (slope, error)
    analyse_run(run_dir) -> dict;  summary_row(result) -> dict (its numbers, JSON-ready)
    in timescale_report.py: plot_toy, plot_runs, markdown_table(rows), main(argv),
                            report_section(run_dirs, fits, out_dir) -> (markdown, dict)
"""
import math
import os
import sys

if __package__ in (None, ""):  # run as `python experiments/NAME.py`: import from the repository root,
    sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # as `python -m experiments.NAME` does
if __name__ == "__main__":  # Ctrl-C while torch loads (a second or more): one line, not a traceback
    from support.cli import quiet_ctrl_c_while_loading
    quiet_ctrl_c_while_loading("timescale.py")

import numpy as np
import torch
from tqdm import tqdm

import bnsl
import curves
from support import runfiles
from support.cli import UsageError

ALPHA_MAX = 3.0                        # the exponent is searched in [0, ALPHA_MAX]
ALPHA_GRID = np.linspace(0.0, ALPHA_MAX, 61)     # steps of 0.05, refined by golden-section search
WINDOW_DECADES = 1.0                   # the fit window: tau >= tau_T / 10^WINDOW_DECADES
MAX_RELATIVE_ERROR = 0.5               # alpha is "pinned" when alpha_err < 50 % of alpha
# When the power law does not describe the curve (rules stated before any run was judged by them):
STRUCTURE_RANGE = 0.02                 # the residuals' systematic part (a cubic in log tau) has an RMS above 2 %
STRUCTURE_SHARE = 0.5                  #   of the window's range of log L, carries more than half the residual
NOISE_FLOOR = 1e-3                     #   variance, and the fit misses by more than 0.1 % (RSLE)
RISE = 0.01                            # the loss ends more than 1 % above its lowest point in the window
EXPONENTIAL_BETTER = 2.0               # an exponential approach in tau fits with half the power law's RSLE
PAPER_PYTHIA_ALPHA = {"70M": (0.341, 0.028), "410M": (0.367, 0.013), "2.8B": (0.337, 0.013),
                      "12B": (0.307, 0.016)}
TOY_DEFAULTS = dict(temperature=1e-3, lr=0.081, steps=2000, vocab=128, width=32, batch=1024, seed=0,
                    optimizer="adam", control_temperature=0.37)



# ---------------------------------------------------------------- 1. dynamic time

def dynamic_time(lrs):
    """tau_t = sum_{s <= t} lr_s: the dynamic time after update t (lrs[0] is update 1's lr)."""
    return np.cumsum(np.asarray(lrs, dtype=float))


# ---------------------------------------------------------------- 2. the mechanism: one logit scale

def scalar_beta_loss(beta, beta_star, z):
    """L(beta) = KL(softmax(beta* z) || softmax(beta z)) = sum_v p*_v (log p*_v - log p_v).

    z: [V] or [N, V] fixed logit directions; the result is the mean over rows. Works on numbers
    and on tensors (autograd flows through beta)."""
    z = torch.as_tensor(z, dtype=torch.float64)
    log_p_star = torch.log_softmax(beta_star * z, dim=-1)
    log_p = torch.log_softmax(beta * z, dim=-1)
    return (log_p_star.exp() * (log_p_star - log_p)).sum(-1).mean()


def scalar_beta_grad(beta, beta_star, z):
    """dL/dbeta = E_beta[z] - E_beta*[z] (mean over rows): the student's expected logit direction
    minus the teacher's. Zero at beta = beta*; it vanishes as beta grows past sqrt(2 ln V)."""
    z = torch.as_tensor(z, dtype=torch.float64)
    expected_student = (torch.softmax(beta * z, dim=-1) * z).sum(-1)        # E_beta[z]
    expected_teacher = (torch.softmax(beta_star * z, dim=-1) * z).sum(-1)   # E_beta*[z]
    return (expected_student - expected_teacher).mean()


# ---------------------------------------------------------------- 3. the toy

def rms_normalise(x):
    """x / sqrt(mean(x^2)) per row: an RMSNorm with no learned gain."""
    return x / x.pow(2).mean(-1, keepdim=True).add(1e-12).sqrt()


def toy_loss(student, teacher, x, temperature):
    """The toy's loss KL(teacher || student) = sum_v p_v (log p_v - log q_v), batch mean, on
    RMS-normalised x; only the teacher's logits are divided by the temperature.
    student, teacher: [V, d] weight matrices; x: [B, d]. Differentiable (autograd)."""
    x = rms_normalise(x)
    log_p_teacher = torch.log_softmax(x @ teacher.T / temperature, dim=-1)
    log_p_student = torch.log_softmax(x @ student.T, dim=-1)
    return (log_p_teacher.exp() * (log_p_teacher - log_p_student)).sum(-1).mean()


def toy_loss_and_gradient(student, teacher, x, temperature):
    """toy_loss and its gradient with respect to the student's weights, by hand (no autograd).

    With teacher probabilities p and student probabilities q = softmax(W x), the gradient of the
    KL with respect to the student's logits is q - p (softmax + cross-entropy), so
    dL/dW = (q - p)^T x / B. x must already be RMS-normalised. Returns (loss, dL/dW, logits)."""
    teacher_logits, student_logits = x @ teacher.T / temperature, x @ student.T
    log_p_teacher = torch.log_softmax(teacher_logits, dim=-1)
    log_p_student = torch.log_softmax(student_logits, dim=-1)
    # exp of a very negative float32 is ~10x slower on CPU than of a moderate one; a peaked
    # teacher has many: p < e^-80 ~ 2e-35 are raised to e^-80, invisible at float32 precision
    p_teacher = log_p_teacher.clamp(min=-80).exp()
    loss = (p_teacher * (log_p_teacher - log_p_student)).sum(-1).mean()
    gradient = (log_p_student.exp() - p_teacher).T @ x / len(x)          # (q - p)^T x / B
    return loss.item(), gradient, student_logits


def logit_scale(logits):
    """The logit scale: the std of the logits over the vocabulary, mean over rows (tokens)."""
    centred = logits - logits.mean(dim=-1, keepdim=True)
    return centred.pow(2).mean(dim=-1).sqrt().mean().item()   # (torch's .std is 7x slower here)


def train_toy(temperature=TOY_DEFAULTS["temperature"], lr=TOY_DEFAULTS["lr"], steps=TOY_DEFAULTS["steps"],
              vocab=TOY_DEFAULTS["vocab"], width=TOY_DEFAULTS["width"], batch=TOY_DEFAULTS["batch"],
              seed=TOY_DEFAULTS["seed"], optimizer="adam", progress=False):
    """Train a zero-initialised student head on a fresh batch per step; log loss and logit scale.

    The setup of their exp-1: x ~ N(0, I_width), RMS-normalised; teacher Linear(width -> vocab,
    no bias) with PyTorch's default init U(-1/sqrt(width), 1/sqrt(width)); student the same
    shape, all zeros. Returns arrays over n = 0 .. steps-1 updates done: tau (= n lr), the loss
    of the batch drawn after n updates (before update n+1) and the student's logit scale on it."""
    if optimizer not in ("adam", "sgd"):
        raise UsageError(f"optimizer {optimizer!r}: choose adam or sgd")
    for name, value in (("temperature", temperature), ("lr", lr)):
        if not (value > 0 and math.isfinite(value)):
            raise UsageError(f"--{name} must be a positive number, got {value}")
    for name, value in (("steps", steps), ("vocab", vocab), ("width", width), ("batch", batch)):
        if value < 2:
            raise UsageError(f"--{name} must be at least 2, got {value}")
    generator = torch.Generator().manual_seed(seed)
    bound = 1 / math.sqrt(width)
    teacher = (torch.rand(vocab, width, generator=generator) * 2 - 1) * bound   # U(-1/sqrt(d), 1/sqrt(d))
    student = torch.zeros(vocab, width)
    opt = (torch.optim.Adam([student], lr=lr) if optimizer == "adam"
           else torch.optim.SGD([student], lr=lr))
    losses, scales = np.zeros(steps), np.zeros(steps)
    for n in tqdm(range(steps), desc=f"toy T={temperature:g}", unit="step", leave=False,
                  disable=not progress, file=sys.stderr):
        x = rms_normalise(torch.randn(batch, width, generator=generator))     # a fresh batch
        losses[n], gradient, student_logits = toy_loss_and_gradient(student, teacher, x, temperature)
        student.grad = gradient                  # the optimizer steps on our hand-made gradient
        scales[n] = logit_scale(student_logits)
        if not math.isfinite(losses[n]):
            raise UsageError(f"the toy's loss became {losses[n]} at step {n}; try a smaller --lr")
        opt.step()
    return {"tau": lr * np.arange(steps), "loss": losses, "logit_scale": scales,
            "settings": dict(temperature=temperature, lr=lr, steps=steps, vocab=vocab, width=width,
                             batch=batch, seed=seed, optimizer=optimizer)}


# ---------------------------------------------------------------- 4. the fit

def box_least_squares(rows, targets, lower, upper):
    """min |rows x - targets|^2 for two unknowns with lower <= x <= upper.

    With G = rows^T rows and g = rows^T targets the objective is x^T G x - 2 g^T x + const.
    A convex quadratic on a box has its minimum inside (the unconstrained solution) or on an
    edge; on an edge it is a one-unknown problem whose solution is clipped to the edge."""
    gram, moments = rows.T @ rows, rows.T @ targets
    objective = lambda x: x @ gram @ x - 2 * moments @ x
    if abs(np.linalg.det(gram)) > 1e-12 * np.trace(gram) ** 2:
        solution = np.linalg.solve(gram, moments)
        if np.all(solution >= lower) and np.all(solution <= upper):
            return solution
    best = None
    for fixed in (0, 1):
        free = 1 - fixed
        for value in (lower[fixed], upper[fixed]):
            if not np.isfinite(value):
                continue
            x = np.empty(2)
            x[fixed] = value   # d/dx_free = 0:  G_ff x_free = g_f - G_f,fixed value
            x[free] = min(max((moments[free] - gram[free, fixed] * value) / max(gram[free, free], 1e-300),
                              lower[free]), upper[free])
            if best is None or objective(x) < objective(best):
                best = x
    return best


def fit_for_alpha(alpha, tau, log_loss, L0_max, iterations=50):
    """For fixed alpha, the (c, L0) minimising RSS = sum (log(c u + L0) - log L)^2, u = tau^-alpha,
    with c >= 0 and 0 <= L0 <= L0_max. Returns (c, L0, RSS)."""
    return fit_for_shape(tau ** -alpha, log_loss, L0_max, iterations)


def fit_for_shape(u, log_loss, L0_max, iterations=50):
    """The (c, L0) minimising RSS = sum (log(c u + L0) - log L)^2 for a fixed shape u(tau) (a power
    tau^-alpha, or an exponential), with c >= 0 and 0 <= L0 <= L0_max. Returns (c, L0, RSS).

    The model m = c u + L0 is linear in (c, L0) but the residual is in log space, so we use
    Gauss-Newton: around the current model m_hat, log m ~ log m_hat + (m - m_hat) / m_hat, a
    linear least-squares problem in (c, L0) with rows [u / m_hat, 1 / m_hat] and targets
    1 + log L - log m_hat. The first m_hat is the data itself (a relative-error fit)."""
    lower, upper = np.array([0.0, 0.0]), np.array([np.inf, L0_max])

    def rss_of(params):
        model = params[0] * u + params[1]
        if np.any(model <= 0):
            return np.inf
        residual = np.log(model) - log_loss
        return residual @ residual

    m_hat = np.exp(log_loss)
    params = box_least_squares(np.stack([u / m_hat, 1 / m_hat], axis=1), np.ones_like(u), lower, upper)
    rss = rss_of(params)
    for _ in range(iterations):
        m_hat = params[0] * u + params[1]
        rows = np.stack([u / m_hat, 1 / m_hat], axis=1)
        proposal = box_least_squares(rows, 1 + log_loss - np.log(m_hat), lower, upper)
        for _ in range(30):                       # halve the step until the RSS does not rise
            new_rss = rss_of(proposal)
            if new_rss <= rss:
                break
            proposal = (proposal + params) / 2
        else:
            break
        converged = rss - new_rss <= 1e-14 * max(rss, 1e-300)
        params, rss = proposal, new_rss
        if converged:
            break
    return params[0], params[1], rss


def fit_time_power_law(tau, loss):
    """Fit log L = log(c tau^-alpha + L0) by least squares in log space (their fit).

    alpha in [0, ALPHA_MAX], c >= 0, 0 <= L0 <= the last loss. Variable projection: for each
    alpha on a grid the best (c, L0) (fit_for_alpha), so RSS(alpha) is a curve in one unknown;
    its grid minimum is refined by golden-section search. Errors: sigma^2 (J^T J)^-1 with
    sigma^2 = RSS / (n - 3) and J = d log(model) / d(c, alpha, L0) (what curve_fit reports).
    Returns alpha, c, L0 and their errors, the RSLE, and a warning when alpha is not pinned."""
    tau, loss = np.asarray(tau, dtype=float), np.asarray(loss, dtype=float)
    if tau.shape != loss.shape or tau.ndim != 1:
        raise UsageError(f"tau and loss must be 1-D arrays of one length, got {tau.shape} and {loss.shape}")
    if len(tau) < 4:
        raise UsageError(f"{len(tau)} points in the fit window, but the fit has 3 parameters; "
                             "give a longer curve (at least 4 points)")
    if not (np.all(np.isfinite(tau)) and np.all(np.isfinite(loss))):
        raise UsageError("tau and the losses must be finite numbers (found nan or inf); "
                             "a diverged run cannot be fitted")
    if np.any(loss <= 0):
        raise UsageError(f"losses must be positive to take their log (found {loss.min():g})")
    if np.any(tau <= 0):
        raise UsageError(f"dynamic time must be positive (found tau = {tau.min():g}); drop the "
                             "points before the first update or with a zero learning rate")
    log_loss, L0_max = np.log(loss), loss[-1]
    profile = lambda alpha: fit_for_alpha(alpha, tau, log_loss, L0_max)[2]
    grid_rss = np.array([profile(alpha) for alpha in ALPHA_GRID])
    best = int(np.argmin(grid_rss))
    # golden-section search for the minimum of RSS(alpha) between the grid neighbours
    low, high = ALPHA_GRID[max(best - 1, 0)], ALPHA_GRID[min(best + 1, len(ALPHA_GRID) - 1)]
    golden = (math.sqrt(5) - 1) / 2
    a, b = high - golden * (high - low), low + golden * (high - low)
    rss_a, rss_b = profile(a), profile(b)
    for _ in range(30):                           # the bracket shrinks to 0.1 * 0.618^30 ~ 1e-7
        if rss_a <= rss_b:
            high, b, rss_b = b, a, rss_a
            a = high - golden * (high - low)
            rss_a = profile(a)
        else:
            low, a, rss_a = a, b, rss_b
            b = low + golden * (high - low)
            rss_b = profile(b)
    alpha = min((ALPHA_GRID[best], grid_rss[best]), (a, rss_a), (b, rss_b), key=lambda p: p[1])[0]
    c, L0, rss = fit_for_alpha(alpha, tau, log_loss, L0_max)

    n = len(tau)
    u = tau ** -alpha
    model = c * u + L0
    jacobian = np.stack([u / model, -c * u * np.log(tau) / model, 1 / model], axis=1)
    try:
        covariance = rss / (n - 3) * np.linalg.inv(jacobian.T @ jacobian)
        errors = np.sqrt(np.abs(np.diag(covariance)))
    except np.linalg.LinAlgError:                 # the data cannot separate c, alpha and L0
        errors = np.full(3, np.inf)
    errors = np.where(np.isfinite(errors), errors, np.inf)
    result = {"alpha": alpha, "alpha_err": errors[1], "c": c, "c_err": errors[0], "L0": L0,
              "L0_err": errors[2], "rsle": math.sqrt(rss / n), "n_points": n,
              "tau_first": tau[0], "tau_last": tau[-1]}
    problems = []
    if alpha == 0 or c == 0:
        problems.append("no power-law decay in this window (the best fit is a constant)")
    elif not result["alpha_err"] < MAX_RELATIVE_ERROR * alpha:
        problems.append(f"alpha is not pinned down by the data (alpha_err {result['alpha_err']:.2g} "
                        f"is more than {MAX_RELATIVE_ERROR:.0%} of alpha {alpha:.3g})")
    if alpha >= ALPHA_MAX - 1e-6:
        problems.append(f"alpha hit the search limit {ALPHA_MAX:g}")
    problems += misfit(tau, loss, result)
    result["warning"] = "; ".join(problems) or None
    return result


def misfit(tau, loss, fit):
    """Why c tau^-alpha + L0 does not describe the curve (a list, empty when it does), by the rules above:
      - the loss rises at the end of the window (a run diverging, a learning rate rising): no decay law;
      - the floor L0 is stuck at its upper bound, the last loss: the curve flattens faster than any
        power law with a floor below it;
      - an exponential approach c e^(-tau/T) + L0 fits with less than 1/EXPONENTIAL_BETTER of its RSLE;
      - the log residuals r = log L - log(c tau^-alpha + L0) have structure: their least-squares cubic in
        log tau, r_hat, has RMS > STRUCTURE_RANGE (max log L - min log L) and sum r_hat^2 >
        STRUCTURE_SHARE sum r^2 (two power laws in turn, a bump; smoothed noise about a good fit has
        neither the size nor the shape).
    None of them applies to a fit that misses by less than NOISE_FLOOR (RSLE): that is a description."""
    problems = []
    lowest = int(np.argmin(loss))
    if loss[-1] > (1 + RISE) * loss[lowest]:
        return [f"the loss rises {100 * (loss[-1] / loss[lowest] - 1):.0f}% from tau {tau[lowest]:.3g} to the end "
                f"(a diverging run? a rising learning rate?): no decay law describes it"]
    if fit["rsle"] <= NOISE_FLOOR:
        return []
    if fit["c"] > 0 and fit["L0"] >= loss[-1] * (1 - 1e-9):
        problems.append("the floor L0 is stuck at its bound, the last loss: the curve flattens faster than a "
                        "power law")
    exponential = exponential_rsle(tau, loss)
    if exponential * EXPONENTIAL_BETTER < fit["rsle"]:
        problems.append(f"an exponential decay in tau fits better (RSLE {exponential:.2g} against {fit['rsle']:.2g}): "
                        f"this is not a power law, so alpha describes no curve")
    residual = np.log(loss) - np.log(time_power_law_curve(fit, tau))
    if len(tau) >= 8 and np.all(np.isfinite(residual)):
        x = np.log(tau)
        x = (x - x.mean()) / (x.std() or 1.0)
        systematic = np.polynomial.polynomial.polyval(x, np.polynomial.polynomial.polyfit(x, residual, 3))
        rms, spread = math.sqrt(np.mean(systematic ** 2)), np.log(loss).max() - np.log(loss).min()
        if rms > STRUCTURE_RANGE * spread and systematic @ systematic > STRUCTURE_SHARE * (residual @ residual) \
                and not any("exponential" in p for p in problems):
            problems.append(f"the residuals have structure ({100 * rms:.2g}% of the loss, RMS, over a window where "
                            f"it falls {100 * (1 - math.exp(-spread)):.2g}%): the curve is not one power law in tau "
                            f"here, so alpha describes no curve")
    return problems


def exponential_rsle(tau, loss, n_scales=61):
    """The RSLE of the best exponential approach log L = log(c e^(-(tau - tau_0)/T) + L0) (c >= 0,
    0 <= L0 <= the last loss), over T on a log grid from 1/100 to 100 times the window's span."""
    tau, log_loss = np.asarray(tau, dtype=float), np.log(np.asarray(loss, dtype=float))
    span = tau[-1] - tau[0]
    best = np.inf
    for T in np.geomspace(span / 100, span * 100, n_scales):
        u = np.exp(-(tau - tau[0]) / T)               # (shifted by tau_0: no underflow at large tau)
        best = min(best, fit_for_shape(u, log_loss, loss[-1])[2])
    return math.sqrt(best / len(tau))


def time_power_law_curve(fit, tau):
    """c tau^-alpha + L0 from a fit_time_power_law result."""
    return fit["c"] * np.asarray(tau, dtype=float) ** -fit["alpha"] + fit["L0"]


def log_log_slope(tau, values):
    """Ordinary least-squares slope of log(values) against log(tau), and its 1-sigma error."""
    tau, values = np.asarray(tau, dtype=float), np.asarray(values, dtype=float)
    keep = (tau > 0) & (values > 0)
    if keep.sum() < 2:
        return float("nan"), float("nan")
    x, y = np.log(tau[keep]), np.log(values[keep])
    design = np.stack([np.ones_like(x), x], axis=1)
    coefficients, *_ = np.linalg.lstsq(design, y, rcond=None)
    if keep.sum() < 3:
        return coefficients[1], float("nan")
    residual = y - design @ coefficients
    variance = residual @ residual / (len(x) - 2) / ((x - x.mean()) @ (x - x.mean()))
    return coefficients[1], math.sqrt(variance)


def last_decade(tau):
    """The fit window rule: tau >= tau_T / 10^WINDOW_DECADES (and tau > 0)."""
    tau = np.asarray(tau, dtype=float)
    return (tau > 0) & (tau >= tau[-1] / 10 ** WINDOW_DECADES)


def fit_toy(toy):
    """The exponent of a toy run over the last decade of tau, and the logit scale's slope there.

    The curve is prepared as bnsl.py prepares ours: a log moving average (the per-step loss of a
    peaked teacher is heavy-tailed, hence noisy) and log subsampling (every step below 100, every
    10th below 1000, ...), so the many late steps do not dominate the fit."""
    steps = np.arange(1, len(toy["tau"]) + 1)            # row n holds the loss after n-1 updates
    smoothed = bnsl.log_moving_average(steps, toy["loss"])
    keep = bnsl.log_subsample_mask(steps) & last_decade(toy["tau"])
    fit = fit_time_power_law(toy["tau"][keep], smoothed[keep])
    fit["logit_scale_slope"], fit["logit_scale_slope_err"] = log_log_slope(toy["tau"][keep],
                                                                           toy["logit_scale"][keep])
    return fit


# ---------------------------------------------------------------- 5. our runs through the same lens

def load_log(run_dir):
    """(steps, losses, lrs) from a train.py run directory's log.csv (columns step, loss, lr)."""
    path = os.path.join(run_dir, "log.csv")
    if not os.path.isdir(run_dir):
        raise UsageError(f"{run_dir}: {'a file, not a run directory' if os.path.exists(run_dir) else 'no such directory'}"
                         f"; pass the --out_dir of a train.py run")
    if not os.path.isfile(path):
        raise UsageError(f"{run_dir}: no log.csv; pass the --out_dir of a train.py run "
                             "(log.csv is written while it trains)")
    path, rows = curves.read_rows(path)   # (not UTF-8, a NUL byte: one line that says so)
    header = [name.strip() for name in rows[0]] if rows else []
    if not {"step", "loss", "lr"} <= set(header):
        raise UsageError(f"{path}: the first row must name 'step', 'loss' and 'lr' columns")
    columns = [header.index(name) for name in ("step", "loss", "lr")]
    values = []
    for line_number, row in enumerate(rows[1:], start=2):
        if not row:
            continue
        try:
            values.append([float(row[column]) for column in columns])
        except (ValueError, IndexError):
            raise UsageError(f"{path}, line {line_number}: cannot read a step, a loss and an lr "
                                 f"from {','.join(row)!r}; fix or delete that line") from None
    steps, losses, lrs = np.array(values).reshape(-1, 3).T
    bnsl.check_curve(steps, losses, path)
    if not (np.all(np.isfinite(lrs)) and np.all(lrs >= 0)):
        raise UsageError(f"{path}: learning rates must be finite and >= 0")
    if np.any(steps != np.arange(1, len(steps) + 1)):
        raise UsageError(f"{path}: steps must run 1, 2, 3, ... with none missing, to sum the "
                             "learning rates into tau; was the log cut or edited?")
    return steps, losses, lrs


@torch.no_grad()
def checkpoint_logit_scales(run_dir, progress=False):
    """The logit scale on the probe (std of the logits over the vocabulary, mean over the probe's
    tokens) after each checkpoint's update: [(step, scale)], in step order."""
    probe_x = runfiles.load_probe(run_dir, fix="the logit scale is measured on it")["x"]
    scales = []
    for path in tqdm(runfiles.checkpoint_paths(run_dir), desc="logit scales", leave=False,
                     disable=not progress, file=sys.stderr):
        model, checkpoint = runfiles.load_checkpoint(path)
        logits, _ = model(probe_x)
        scales.append((int(checkpoint["step"]), logit_scale(logits.float())))
    return scales


def analyse_run(run_dir, t_d="fit", name=None, progress=False):
    """alpha and the logit scale's growth of one train.py run, against tau = sum lr.

    The curve is prepared as in bnsl.py (log moving average, log subsampling). Windows:
    the last decade of tau (the rule), and from t_d to the end. t_d="fit" asks bnsl.py; give a
    number to reuse a fit (reproduce.py does), or None for no t_d."""
    return add_logit_scales(fit_log(run_dir, t_d, name), progress)


def fit_log(run_dir, t_d="fit", name=None):
    """analyse_run's fits of the loss curve, from log.csv alone (quick: no checkpoint is read)."""
    steps, losses, lrs = load_log(run_dir)
    tau_after = dynamic_time(lrs)                # tau after update s
    tau_before = tau_after - lrs                 # log.csv's loss at step s is measured before update s
    smoothed = bnsl.log_moving_average(steps, losses)
    keep = bnsl.log_subsample_mask(steps) & (tau_before > 0)
    steps, tau, loss = steps[keep], tau_before[keep], smoothed[keep]
    window = last_decade(tau)
    fit = fit_time_power_law(tau[window], loss[window])
    fit["first_step"] = steps[window][0]
    if t_d == "fit":
        try:
            t_d = runfiles.deceleration_step(run_dir)  # only a break judged a deceleration
        except bnsl.CurveError:                  # a curve too short for a break: no t_d
            t_d = None
    result = {"name": name or os.path.basename(os.path.normpath(run_dir)), "run_dir": run_dir,
              "t_d": t_d, "tau_d": None, "steps": steps, "tau": tau, "loss": loss, "fit": fit,
              "fit_after_t_d": None, "tau_after": tau_after, "window_tau": tau[window][0]}
    if t_d is not None:
        result["tau_d"] = tau_after[min(int(round(t_d)), len(tau_after)) - 1]
        after = steps >= t_d
        if after.sum() >= 4:
            result["fit_after_t_d"] = fit_time_power_law(tau[after], loss[after])
            result["fit_after_t_d"]["first_step"] = steps[after][0]
    return result


def add_logit_scales(result, progress=False):
    """The logit scale at every checkpoint (within the log) and its log-log slopes against tau: in the
    fit window, and before / after t_d."""
    tau_after, t_d = result["tau_after"], result["t_d"]
    scales = [(s, v) for s, v in checkpoint_logit_scales(result["run_dir"], progress) if s <= len(tau_after)]
    scale_steps = np.array([s for s, _ in scales], dtype=int)
    scale_tau = tau_after[scale_steps - 1] if len(scales) else np.zeros(0)
    scale_values = np.array([v for _, v in scales])
    result.update(scale_steps=scale_steps, scale_tau=scale_tau, logit_scale=scale_values)
    in_window = scale_tau >= result["window_tau"]
    result["logit_scale_slope"], result["logit_scale_slope_err"] = log_log_slope(
        scale_tau[in_window], scale_values[in_window])
    result["logit_scale_slope_before_t_d"] = result["logit_scale_slope_after_t_d"] = None
    if t_d is not None:
        result["logit_scale_slope_before_t_d"] = log_log_slope(scale_tau[scale_steps <= t_d],
                                                               scale_values[scale_steps <= t_d])
        result["logit_scale_slope_after_t_d"] = log_log_slope(scale_tau[scale_steps >= t_d],
                                                              scale_values[scale_steps >= t_d])
    return result


def summary_row(r):
    """The numbers of one analysed run, JSON-ready (no arrays)."""
    fit, after = r["fit"], r["fit_after_t_d"]
    slope_before = r["logit_scale_slope_before_t_d"] or (None, None)
    slope_after = r["logit_scale_slope_after_t_d"] or (None, None)
    return {"name": r["name"], "t_d": r["t_d"], "tau_d": r["tau_d"],
            "alpha": fit["alpha"], "alpha_err": fit["alpha_err"], "c": fit["c"], "L0": fit["L0"],
            "L0_err": fit["L0_err"], "rsle": fit["rsle"], "window_first_step": fit["first_step"],
            "window_tau": [fit["tau_first"], fit["tau_last"]], "warning": fit["warning"],
            "alpha_after_t_d": after["alpha"] if after else None,
            "alpha_after_t_d_err": after["alpha_err"] if after else None,
            "L0_after_t_d": after["L0"] if after else None,
            "warning_after_t_d": after["warning"] if after else None,
            "logit_scale_slope": r["logit_scale_slope"], "logit_scale_slope_err": r["logit_scale_slope_err"],
            "logit_scale_slope_before_t_d": slope_before[0], "logit_scale_slope_before_t_d_err": slope_before[1],
            "logit_scale_slope_after_t_d": slope_after[0], "logit_scale_slope_after_t_d_err": slope_after[1],
            "logit_scale": [[int(s), float(t), float(v)]
                            for s, t, v in zip(r["scale_steps"], r["scale_tau"], r["logit_scale"])]}


if __name__ == "__main__":  # the command line, the figures and reproduce.py's section: timescale_report.py
    from experiments.timescale_report import main
    sys.exit(main())
