"""
bnsl.py: find loss deceleration by fitting a broken neural scaling law (BNSL).

The model (design.md section 1), in log-log space, with K = 0, 1 or 2 breaks:

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

Preprocessing (the paper's recipe, each step optional, applied in this order):
  --smooth=lma       log moving average: the loss at step s becomes the mean of the loss over
                     the steps floor(s/1.2) .. s (the paper's mean(x[floor(j/1.2)..j])). The
                     window is one of steps, not of logged rows: steps that were not logged
                     are filled in by log-log interpolation first, so a curve logged every 10
                     or 100 steps is smoothed like one logged at every step.
  --subsample=log    keep every step below 100, every 10th below 1000, every 100th below
                     10000, every 1000th beyond, and the last step.
  --transient=N      drop steps <= N.
Defaults, chosen for our runs (train.py logs the noisy batch loss at every step 1..~3000,
with the knee near the end of a 100-200 step warm-up): smoothing and subsampling on, as in
the paper, and transient = 10: the paper's 100 was 5 % of its 2000-step warm-up; 5 % of ours
is 5-10 steps, which drops the first flat steps at ln(vocab) yet keeps the pre-break segment.
For the paper's own published curves use --smooth=none --subsample=none --transient=100.

    python bnsl.py runs/small runs/big --plot fits.png
    python bnsl.py curve.csv --breaks=2 --json
"""
import argparse
import csv
import json
import os
import sys

import numpy as np

DEFAULT_SMOOTH = "lma"
DEFAULT_SUBSAMPLE = "log"
DEFAULT_TRANSIENT = 10
MAX_RELATIVE_ERROR = 1.0  # a supported break has c_k and d_k each known to +-100 % (1 sigma)
MIN_RSLE_GAIN = 0.3       # ... and cuts the RSLE of one break fewer by at least 30 %
MIN_POINTS_PER_PARAM = 3  # ... from at least 3 fitted points per free parameter (15 for 1 break)
MIN_BEND = 0.05           # ... and lifts the last loss >= 5 % (in log) above the first segment
EXACT_RSLE = 1e-9         # one break fewer fitting this well (e.g. a constant curve) leaves no bend
F_MIN = 1e-3              # smallest break width f we allow (f -> 0 is a sharp corner)
MAX_SMOOTHED_STEPS = 1e7  # --smooth=lma fills in every step: at most this many
LMA_RATIO = 1.2           # --smooth=lma's window: the steps from s / 1.2 to s


class CurveError(ValueError):
    """Bad input. The command line prints it as one line and exits with status 2."""


# ---------------------------------------------------------------- 1. reading a curve

def read_curve(path, step_column="step", loss_column="loss", lr_column="lr"):
    """A loss curve from a CSV with a header row (a train.py log.csv, a tracker's export, ...) or
    a train.py run directory (its log.csv), read as it is.

    Returns a dict: steps [n] and losses [n] (floats, steps strictly increasing), lr = (lr_steps
    [m], lrs [m]) or None when the file has no lr_column (or lr_column is None), and notes [str]:
    what was skipped. Other columns are ignored. A blank cell means "not logged at this step": a
    row without a step or a loss is skipped (its learning rate still counts), a row without a
    learning rate keeps its loss. Raises CurveError (one line: the file, the line, the fix) for
    anything else: no such column, a cell that is not a number, nan/inf, unsorted steps, ...
    """
    if os.path.isdir(path):
        path = os.path.join(path, "log.csv")
    if not os.path.isfile(path):
        what = "not a regular file" if os.path.exists(path) else "no such file"
        raise CurveError(f"{path}: {what}; give a CSV with a 'step,loss' header "
                         "or a train.py run directory holding log.csv")
    try:   # utf-8-sig: a spreadsheet's byte-order mark is not part of the first column's name
        with open(path, newline="", encoding="utf-8-sig") as file:
            rows = list(csv.reader(file))
    except UnicodeDecodeError as error:
        raise CurveError(f"{path}: not UTF-8 text (byte {error.start}); save it as a UTF-8 "
                         "CSV with a 'step,loss' header") from None
    except csv.Error as error:   # a NUL byte, a field too large, ...
        raise CurveError(f"{path}: not a readable CSV ({error}); save it as a plain CSV "
                         "with a 'step,loss' header") from None
    header = [name.strip() for name in rows[0]] if rows else []
    for column, flag in ((step_column, "--step_column"), (loss_column, "--loss_column")):
        if column not in header:
            raise CurveError(f"{path}: the first row must be a header naming the columns, and it "
                             f"has no {column!r} (it names {', '.join(map(repr, header[:8]))}); "
                             f"choose the column with {flag}=NAME")
    columns = [header.index(step_column), header.index(loss_column)]
    columns.append(header.index(lr_column) if lr_column in header else None)
    values, blank = [], [0, 0]              # rows of (step, loss, lr) as floats or None
    for line_number, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        cells = [row[c].strip() if c is not None and c < len(row) else "" for c in columns]
        try:
            step, loss, lr = [float(cell) if cell else None for cell in cells]
        except ValueError:
            raise CurveError(f"{path}, line {line_number}: cannot read a step and a loss "
                             f"from {','.join(row)!r}; fix or delete that line") from None
        blank[0] += step is None
        blank[1] += step is not None and loss is None
        if step is not None:
            values.append((step, loss, lr))
    notes = [f"skipped {count} rows with a blank {name!r} cell"
             for count, name in zip(blank, (step_column, loss_column)) if count]
    with_loss = [(s, l) for s, l, _ in values if l is not None]
    if not with_loss:
        raise CurveError(f"{path}: a header but no data rows with a {loss_column!r} value; give a "
                         "curve with at least one row per logged step (or choose --loss_column)")
    steps, losses = np.array(with_loss).T
    # A row logged twice (same step, same loss) is harmless: keep one copy.
    repeated = np.r_[False, (np.diff(steps) == 0) & (np.diff(losses) == 0)]
    steps, losses = steps[~repeated], losses[~repeated]
    check_curve(steps, losses, path)
    lr = np.unique(np.array([(s, r) for s, _, r in values if r is not None]).reshape(-1, 2), axis=0).T
    if columns[2] is None or lr.shape[1] == 0:
        if not lr_column:
            why = "no learning rates asked for"
        else:
            why = f"no {lr_column!r} column" if columns[2] is None else f"the {lr_column!r} column is blank"
        notes.append(f"{why}: fitted in steps only")
        lr = None
    else:
        if not (np.all(np.isfinite(lr[1])) and np.all(lr[1] >= 0) and np.any(lr[1] > 0)):
            raise CurveError(f"{path}: the {lr_column!r} column must hold finite learning rates "
                             f">= 0, not all 0; fix it, or fit in steps only with --lr_column=none")
        if np.any(np.diff(lr[0]) == 0):
            raise CurveError(f"{path}: two learning rates at step {lr[0][np.argmin(np.diff(lr[0]))]:g}; "
                             "keep one row per step")
        lr = (lr[0], lr[1])
    return {"steps": steps, "losses": losses, "lr": lr, "notes": notes}


def load_curve(path):
    """(steps, losses) of read_curve(path): the 'step' and 'loss' columns."""
    curve = read_curve(path, lr_column=None)
    return curve["steps"], curve["losses"]


def check_curve(steps, losses, name):
    """Raise CurveError unless the curve can be fitted in log-log space."""
    if len(steps) == 0:
        raise CurveError(f"{name}: no data rows")
    if not (np.all(np.isfinite(steps)) and np.all(np.isfinite(losses))):
        raise CurveError(f"{name}: steps and losses must be finite numbers (found nan or inf); "
                         "a diverged run cannot be fitted")
    if np.any(losses <= 0):
        raise CurveError(f"{name}: losses must be positive to take their log "
                         f"(found {losses.min():g})")
    if np.any(np.diff(steps) <= 0):
        bad = int(np.argmax(np.diff(steps) <= 0))
        raise CurveError(f"{name}: steps must be strictly increasing, but step {steps[bad]:g} "
                         f"is followed by {steps[bad + 1]:g}; sort the file and drop duplicates")


# ---------------------------------------------------------------- 2. preparing a curve

def dynamic_time(lr, last_step):
    """tau(t) = sum_{s <= t} lr_s / max lr for t = 1 .. last_step: [last_step] floats, in steps
    at the peak learning rate, so that a constant LR gives tau(t) = t and a warm-up or a decay
    gives the clock in which the optimizer actually moved. lr = (lr_steps, lrs) as read_curve
    returns it: lr_s between logged rows is interpolated linearly in s; before the first logged
    row it is taken to be the first logged value (a log that starts late does not say)."""
    lr_steps, lrs = lr
    lr_every = np.interp(np.arange(1, last_step + 1), lr_steps, lrs)
    if not lr_every.max() > 0:
        raise CurveError(f"the learning rate is 0 at every step up to {last_step}: there is no "
                         "dynamic time; fit in steps only (--lr_column=none)")
    return np.cumsum(lr_every) / lr_every.max()


def log_moving_average(steps, losses, ratio=LMA_RATIO, lr=None):
    """smoothed(s) = mean of the loss over the whole steps floor(s/ratio), ..., s (the paper's
    mean(x[floor(j/1.2) .. j]), ratio 1.2), with the steps that were not logged filled in first.

    The window is one of *steps*, not of logged rows: a run logged every 10 steps has one row
    in the window of step 20 but seven in that of step 400, and a mean over rows would then be
    unlagged early and lagged late -- a bend that is not in the loss. So the loss at an unlogged
    step j between logged steps t_a < j < t_b is interpolated linearly in log-log space,
        log L(j) = log L(t_a) + (log j - log t_a) / (log t_b - log t_a) (log L(t_b) - log L(t_a)),
    which is exact for a power law. A window that reaches before the first logged step (or into
    a gap next to a step <= 0, where log t does not exist) cannot be averaged: its step gets nan,
    and prepare_curve drops it. Logged at every step, nothing is interpolated and nothing but
    the first step is dropped.

    With learning rates, lr = (lr_steps, lrs), the window is one of dynamic time tau (see
    dynamic_time): the steps u from the last one with tau(u) <= tau(s)/ratio to s, each weighted
    by the tau it adds, lr_u:  smoothed(s) = sum_u lr_u L(u) / sum_u lr_u. At a constant LR that
    is the window of steps; under a warm-up or a decay it keeps a power law in tau one in tau.

    steps, losses: [n]. Returns [n] floats, nan where the window is incomplete. Raises
    CurveError for steps that are not whole numbers or span more than MAX_SMOOTHED_STEPS.
    """
    steps, losses = np.asarray(steps, dtype=float), np.asarray(losses, dtype=float)
    if np.any(steps != np.round(steps)):
        raise CurveError("--smooth=lma averages over whole steps, but the steps are not whole "
                         "numbers; use --smooth=none")
    if steps[-1] - steps[0] > MAX_SMOOTHED_STEPS:
        raise CurveError(f"--smooth=lma fills in every step, and the curve spans "
                         f"{steps[-1] - steps[0]:.3g} steps (at most {MAX_SMOOTHED_STEPS:.0e}); "
                         "use --smooth=none")
    first = int(steps[0])
    every_step = np.arange(first, int(steps[-1]) + 1, dtype=float)
    per_step = np.full(len(every_step), np.nan)
    per_step[(steps - first).astype(np.int64)] = losses
    positive = steps > 0
    fill = np.isnan(per_step) & (every_step > steps[positive][0] if positive.any() else False)
    per_step[fill] = np.exp(np.interp(np.log(every_step[fill]), np.log(steps[positive]),
                                      np.log(losses[positive])))
    end = (steps - first).astype(np.int64)                   # window end, as an index
    if lr is None:
        weight = np.ones(len(every_step))
        start = np.floor(steps / ratio) - first              # window start, as an index
    else:
        if first < 1:
            raise CurveError("a window of dynamic time needs steps >= 1; drop the others")
        tau = dynamic_time(lr, int(steps[-1]))
        weight = np.diff(np.r_[0.0, tau])[first - 1:]        # lr_u / max lr
        tau = tau[first - 1:]
        start = np.searchsorted(tau, tau[end] / ratio, side="right") - 1
    known = ~np.isnan(per_step)
    running_sum = np.r_[0.0, np.cumsum(np.where(known, weight * per_step, 0.0))]
    running_weight = np.r_[0.0, np.cumsum(np.where(known, weight, 0.0))]
    running_known = np.r_[0, np.cumsum(known)]
    inside = start >= 0
    start = np.maximum(start, 0).astype(np.int64)
    complete = inside & (running_known[end + 1] - running_known[start] == end + 1 - start)
    with np.errstate(invalid="ignore", divide="ignore"):   # a window where the LR is 0 throughout
        mean = (running_sum[end + 1] - running_sum[start]) / (running_weight[end + 1] - running_weight[start])
    return np.where(complete, mean, np.nan)


def log_subsample_mask(steps):
    """Thinning: keep the first logged row in each bin, and the last row. Bins are 1 step wide
    below step 100, 10 below 1000, 100 below 10000 and 1000 beyond, so a log of every step keeps
    the paper's every step < 100, every 10th < 1000, every 100th < 10000, every 1000th beyond,
    and a log of steps 105, 115, ... keeps one row in each 10 steps, not only round ones.
    steps: [n], increasing. Returns a boolean mask [n]."""
    steps = np.asarray(steps, dtype=float)
    width = np.where(steps < 100, 1, np.where(steps < 1000, 10, np.where(steps < 10000, 100, 1000)))
    first_step_of_bin = np.floor(steps / width) * width
    keep = np.r_[True, first_step_of_bin[1:] != first_step_of_bin[:-1]]
    keep[-1] = True
    return keep


def long_gaps(steps):
    """[(a, b)]: consecutive logged steps a < b between which a whole smoothing window is filled
    in: b > 1.2 a (the window floor(b/1.2)..b holds no other logged step) and b - a more than 3
    times the log's median spacing (a log of every 10th step has no gap at 10..20)."""
    steps = np.asarray(steps, dtype=float)
    spacing = np.diff(steps)
    if len(spacing) == 0:
        return []
    long = (steps[1:] > LMA_RATIO * steps[:-1]) & (spacing > 3 * np.median(spacing))
    return list(zip(steps[:-1][long], steps[1:][long]))


def prepare_curve(steps, losses, smooth=DEFAULT_SMOOTH, subsample=DEFAULT_SUBSAMPLE,
                  transient=DEFAULT_TRANSIENT, lr=None, ratio=LMA_RATIO, report=None):
    """Smooth, then thin, then drop steps <= transient (the paper's order); a step whose smoothing
    window reaches before the first logged step is dropped too (it has no value).

    steps, losses: [n] as read. lr = (lr_steps, lrs) smooths in dynamic time instead of steps,
    ratio is the window's (see log_moving_average). Returns (steps [m], losses [m]). report: if a
    list, a line is appended saying how many rows each stage dropped, and one naming any long gap
    the smoothing filled in (long_gaps). Raises CurveError if no step is left.
    """
    steps, losses = np.asarray(steps, dtype=float), np.asarray(losses, dtype=float)
    if smooth not in ("lma", "none") or subsample not in ("log", "none"):
        raise CurveError(f"unknown preprocessing smooth={smooth!r} subsample={subsample!r}; "
                         "use smooth=lma|none and subsample=log|none")
    if len(steps) == 0:
        return steps, losses
    n_rows, gaps = len(steps), []
    if smooth == "lma":
        losses, gaps = log_moving_average(steps, losses, ratio, lr), long_gaps(steps)
    keep = log_subsample_mask(steps) if subsample == "log" else np.ones(n_rows, bool)
    thinned = n_rows - keep.sum()
    steps, losses = steps[keep], losses[keep]
    keep = steps > transient
    if not keep.any():
        raise CurveError(f"--transient={transient:g} drops every step (the curve ends at step "
                         f"{steps[-1]:g}); use a smaller --transient")
    no_window = np.sum(keep & np.isnan(losses))
    keep &= ~np.isnan(losses)
    if not keep.any():
        raise CurveError(f"no step after {steps[0]:g} has a full smoothing window "
                         f"(steps {steps[0]:g}..{steps[-1]:g}); give a longer curve or --smooth=none")
    if report is not None:
        report.append(f"kept {keep.sum()} of {n_rows} rows: {thinned} thinned to one per bin "
                      f"(--subsample), {len(steps) - np.sum(steps > transient)} at steps <= "
                      f"{transient:g} (--transient), {no_window} without a full smoothing window")
        if gaps:
            a, b = max(gaps, key=lambda gap: gap[1] - gap[0])
            report.append(f"warning: the smoothing filled in {len(gaps)} long gap(s) in the log, "
                          f"the longest from step {a:g} to {b:g}: no loss was logged there")
    return steps[keep], losses[keep]


# ---------------------------------------------------------------- 3. the model and its Jacobian
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


# ---------------------------------------------------------------- 4. fitting

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
    rss_power_law = rss_of(power_law)
    result["rsle"] = np.sqrt(rss / n)                          # sqrt(mean((log L_hat - log L)^2))
    result["rsle_power_law"] = np.sqrt(rss_power_law / n)
    result["L_T"] = losses[-1]
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

    # Is there a supported deceleration? See the rules in the module docstring.
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
            if bic >= bic_fewer or gain < MIN_RSLE_GAIN:
                problems.append(f"{breaks} break(s) no better than {breaks - 1}: RSLE {gain:.0%} "
                                f"lower (needs {MIN_RSLE_GAIN:.0%}), BIC {bic:.1f} vs "
                                f"{bic_fewer:.1f} (needs lower)")
    result["supported"] = not problems
    result["warning"] = "; ".join(problems) or None
    result["steps"], result["losses"] = steps, losses        # the fitted points, for plots
    return result


def bnsl_curve(result, steps):
    """The fitted loss at the given steps, from a fit_bnsl result."""
    theta = [np.log(result["b"]), result["c0"]]
    for k in range(1, result["breaks"] + 1):
        theta += [result[f"c{k}"], np.log(result[f"d{k}"]), result[f"f{k}"]]
    return np.exp(bnsl_log_loss(np.array(theta), np.log(steps)))


# ---------------------------------------------------------------- 5. output

def check_figure_path(path, inputs=()):
    """Raise CurveError unless a figure can be saved at path without touching an input file."""
    from matplotlib.backend_bases import FigureCanvasBase
    formats = FigureCanvasBase.get_supported_filetypes()
    extension = os.path.splitext(path)[1][1:].lower()
    if extension not in formats:
        raise CurveError(f"--plot={path!r}: name the figure file with a known extension "
                         f"(e.g. fits.png; known: {', '.join(sorted(formats))})")
    parent = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path) or not os.path.isdir(parent):
        raise CurveError(f"--plot={path}: {'a directory' if os.path.isdir(path) else 'no directory ' + parent}; "
                         "give a file name in an existing directory")
    for given in inputs:
        given = os.path.join(given, "log.csv") if os.path.isdir(given) else given
        if os.path.exists(path) and os.path.exists(given) and os.path.samefile(path, given):
            raise CurveError(f"--plot={path} is an input curve; choose another file name")


def plot_fits(results, path):
    """Paper-style figure: curves on log-log axes, the fits, their two straight segments, t_d."""
    import matplotlib
    import matplotlib.ticker
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    figure, axes = plt.subplots(figsize=(7, 5))
    for index, result in enumerate(results):
        colour = f"C{index % 10}"
        steps = result["steps"]
        dense = np.geomspace(steps[0], steps[-1], 400)
        axes.plot(steps, result["losses"], color=colour, lw=2, alpha=0.35)
        label = result.get("name", f"curve {index + 1}")
        if result["t_d"] is None or not result["supported"]:   # no deceleration: no t_d to mark
            axes.plot(dense, bnsl_curve(result, dense), color=colour, lw=1,
                      label=label if result["t_d"] is None else f"{label}: no supported deceleration")
            continue
        t_d, L_d, r_d = result["t_d"], result["L_d"], result["r_d"]
        axes.plot(dense, bnsl_curve(result, dense), color=colour, lw=1,
                  label=f"{label}: t_d={t_d:.3g}, L_d={L_d:.3g}, r_d={r_d:.3g}")
        end = result["d2"] if result["breaks"] == 2 else steps[-1]   # segment 2 ends at break 2
        before, after = dense[dense <= t_d], dense[(dense >= t_d) & (dense <= end)]
        axes.plot(before, result["b"] * before ** -result["c0"], color=colour, ls=":", lw=1)
        axes.plot(after, L_d * (t_d / after) ** r_d, color=colour, ls="--", lw=1)  # L_d (t_d/t)^r_d
        axes.plot([t_d], [L_d], "o", color=colour, ms=5)
        axes.axvline(t_d, color=colour, lw=0.5, alpha=0.5)
    all_losses = np.concatenate([result["losses"] for result in results])
    axes.set(xscale="log", yscale="log", xlabel="step", ylabel="training loss",
             ylim=(0.95 * all_losses.min(), 1.05 * all_losses.max()),
             title="BNSL fits (dotted: before t_d, dashed: after t_d)")
    axes.yaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
    axes.yaxis.set_minor_formatter(matplotlib.ticker.ScalarFormatter())
    axes.legend(fontsize=7)
    figure.tight_layout()
    temporary = f"{path}.tmp{os.getpid()}"    # written whole, then renamed: never half a figure
    try:
        figure.savefig(temporary, dpi=120, format=os.path.splitext(path)[1][1:].lower())
        os.replace(temporary, path)
    finally:
        plt.close(figure)
        if os.path.exists(temporary):
            os.remove(temporary)


def plus_minus(result, key):
    value, error = result.get(key), result.get(key + "_err")
    if value is None:
        return "-"
    return f"{value:.4g}" if error is None or not np.isfinite(error) else f"{value:.4g}±{error:.2g}"


def print_table(results):
    keys = ["b", "c0"] + [f"{p}{k}" for k in range(1, results[0]["breaks"] + 1) for p in "cfd"]
    header = ["name", "n"] + keys + ["L_d", "r_d", "L_hat_T", "L_T", "rsle", "rsle_pl", "note"]
    rows = []
    for r in results:
        rows.append([r["name"], str(r["n_points"])] + [plus_minus(r, key) for key in keys]
                    + [plus_minus(r, "L_d"), plus_minus(r, "r_d"), f"{r['L_hat_T']:.4g}",
                       f"{r['L_T']:.4g}", f"{r['rsle']:.4f}", f"{r['rsle_power_law']:.4f}",
                       "ok" if r["supported"] else "UNSUPPORTED: " + r["warning"]])
    widths = [max(len(row[i]) for row in rows + [header]) for i in range(len(header))]
    for row in [header] + rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
    print("(d1 = t_d; errors are 1 sigma from sigma^2 (J^T J)^-1)")


def as_json(value):
    """numpy scalars to plain floats, nan/inf to null (JSON has no nan)."""
    if isinstance(value, (float, np.floating)):
        return float(value) if np.isfinite(value) else None
    return value.item() if isinstance(value, np.generic) else value


class OneLineParser(argparse.ArgumentParser):
    def error(self, message):
        sys.stderr.write(f"bnsl.py: error: {message} (see python bnsl.py --help)\n")
        sys.exit(2)


def main(argv=None):
    parser = OneLineParser(prog="bnsl.py", allow_abbrev=False,
                           description="Fit a broken neural scaling law to loss curves and report "
                           "loss deceleration: t_d, L_d = b t_d^-c0, r_d = c0 + c1.")
    parser.add_argument("paths", nargs="+", metavar="RUN_DIR_OR_CSV",
                        help="train.py run directories (log.csv) or CSV files with step,loss columns")
    parser.add_argument("--breaks", type=int, choices=[0, 1, 2], default=1, help="breaks (default 1)")
    parser.add_argument("--smooth", choices=["lma", "none"], default=DEFAULT_SMOOTH,
                        help="lma: loss at s = mean over steps floor(s/1.2)..s (default lma)")
    parser.add_argument("--subsample", choices=["log", "none"], default=DEFAULT_SUBSAMPLE,
                        help="log: every step <100, 10th <1e3, 100th <1e4, 1000th beyond, + last "
                        "(default log)")
    parser.add_argument("--transient", type=int, default=DEFAULT_TRANSIENT, metavar="N",
                        help=f"drop steps <= N (default {DEFAULT_TRANSIENT}: about 5%% of our "
                        "100-200 step warm-up, as the paper's 100 was of its 2000; the paper's "
                        "published curves need --smooth=none --subsample=none --transient=100)")
    parser.add_argument("--json", action="store_true", help="print a JSON list instead of a table")
    parser.add_argument("--plot", metavar="FILE.png", help="save a log-log figure of the fits")
    args = parser.parse_args(argv)
    if args.transient < 0:
        parser.error(f"argument --transient: must be >= 0, got {args.transient}")

    results = []
    try:
        if args.plot is not None:   # before any fitting
            check_figure_path(args.plot, args.paths)
        for path in args.paths:
            name = os.path.basename(os.path.normpath(path))
            name = name[:-4] if name.endswith(".csv") else name
            steps, losses = prepare_curve(*load_curve(path), args.smooth, args.subsample,
                                          args.transient)
            try:
                result = fit_bnsl(steps, losses, breaks=args.breaks)
            except CurveError as error:
                raise CurveError(f"{path}: {error}") from None
            results.append({"name": name, **result})
        if args.plot is not None:
            plot_fits(results, args.plot)
    except (CurveError, OSError) as error:
        parser.exit(2, f"bnsl.py: error: {error}\n")

    try:
        if args.json:
            print(json.dumps([{key: as_json(value) for key, value in r.items()
                               if key not in ("steps", "losses")} for r in results], indent=1))
        else:
            print_table(results)
        sys.stdout.flush()
    except BrokenPipeError:   # the reader stopped early (e.g. `| head -1`): nothing more to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)


if __name__ == "__main__":
    main()
