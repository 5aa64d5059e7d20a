"""
curves.py: reading a loss curve and preparing it for bnsl.py's fit.

Reading (read_curve): a CSV with a header row -- a train.py log.csv (step,loss,lr,tokens,time_s)
or a tracker's export -- read as it is: any other columns are ignored, the step, loss and
learning-rate columns can be named (--step_column, --loss_column, --lr_column), a blank cell
means "not logged at this step" and is skipped, and every skip is reported in the notes.

Dynamic time (dynamic_time): tau(t) = sum_{s <= t} lr_s / max lr, the step count at the peak
learning rate; the clock in which a warm-up or a decay does not bend the curve.

Preprocessing (the paper's recipe, each step optional, applied in this order):
  --smooth=lma       log moving average: the loss at step s becomes the mean of the loss over
                     the steps floor(s/1.2) .. s (the paper's mean(x[floor(j/1.2)..j])). The
                     window is one of steps, not of logged rows: steps that were not logged
                     are filled in by log-log interpolation first, so a curve logged every 10
                     or 100 steps is smoothed like one logged at every step.
  --subsample=log    thinning: keep one logged row per bin -- bins of 1 step below 100, 10
                     below 1000, 100 below 10000, 1000 beyond -- and the last row: for a log
                     of every step, the paper's every step < 100, every 10th < 1000, ...
  --transient=N      drop steps <= N.
Defaults, chosen for our runs (train.py logs the noisy batch loss at every step 1..~3000,
with the knee near the end of a 100-200 step warm-up): smoothing and subsampling on, as in
the paper, and transient = 10: the paper's 100 was 5 % of its 2000-step warm-up; 5 % of ours
is 5-10 steps, which drops the first flat steps at ln(vocab) yet keeps the pre-break segment.
For the paper's own published curves use --smooth=none --subsample=none --transient=100.
Given learning rates, the smoothing can run in dynamic time instead (log_moving_average).
"""
import csv
import os

import numpy as np

from support.cli import UsageError

DEFAULT_SMOOTH = "lma"
DEFAULT_SUBSAMPLE = "log"
DEFAULT_TRANSIENT = 10
MAX_SMOOTHED_STEPS = 1e7  # --smooth=lma and tau fill in every step: at most this many
LMA_RATIO = 1.2           # --smooth=lma's window: the steps from s / 1.2 to s


CurveError = UsageError  # bad input: the command line prints it as one line and exits with status 2


# ---------------------------------------------------------------- 1. reading a curve

def read_rows(path):
    """(path of the CSV, its rows as lists of strings), from a CSV or a train.py run directory."""
    if os.path.isdir(path):
        path = os.path.join(path, "log.csv")
    if not os.path.isfile(path):
        what = "not a regular file" if os.path.exists(path) else "no such file"
        raise CurveError(f"{path}: {what}; give a CSV with a 'step,loss' header "
                         "or a train.py run directory holding log.csv")
    try:   # utf-8-sig: a spreadsheet's byte-order mark is not part of the first column's name
        with open(path, newline="", encoding="utf-8-sig") as file:
            return path, list(csv.reader(file))
    except UnicodeDecodeError as error:
        raise CurveError(f"{path}: not UTF-8 text (byte {error.start}); save it as a UTF-8 "
                         "CSV with a 'step,loss' header") from None
    except csv.Error as error:   # a NUL byte, a field too large, ...
        raise CurveError(f"{path}: not a readable CSV ({error}); save it as a plain CSV "
                         "with a 'step,loss' header") from None


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
    path, rows = read_rows(path)
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
    lr = learning_rates([(s, r) for s, _, r in values if r is not None], path, lr_column,
                        columns[2] is not None, notes)
    return {"steps": steps, "losses": losses, "lr": lr, "notes": notes}


def learning_rates(pairs, path, lr_column, has_column, notes):
    """(lr_steps, lrs) from [(step, lr)], checked; None (and a note why) when there are none."""
    if not pairs:
        if not lr_column:
            why = "no learning rates asked for"
        else:
            why = f"the {lr_column!r} column is blank" if has_column else f"no {lr_column!r} column"
        notes.append(f"{why}: fitted in steps only")
        return None
    lr_steps, lrs = np.unique(np.array(pairs), axis=0).T     # sorted; a row logged twice once
    if not (np.all(np.isfinite(lrs)) and np.all(lrs >= 0) and np.any(lrs > 0)):
        raise CurveError(f"{path}: the {lr_column!r} column must hold finite learning rates "
                         f">= 0, not all 0; fix it, or fit in steps only with --lr_column=none")
    if np.any(np.diff(lr_steps) == 0):
        raise CurveError(f"{path}: two learning rates at step {lr_steps[np.argmin(np.diff(lr_steps))]:g}; "
                         "keep one row per step")
    return lr_steps, lrs


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
    if last_step > MAX_SMOOTHED_STEPS:
        raise CurveError(f"tau sums the learning rate of every step, and the curve has {last_step:.3g} "
                         f"(at most {MAX_SMOOTHED_STEPS:.0e}); fit in steps only (--lr_column=none)")
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
