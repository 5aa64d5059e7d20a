"""
deceleration.py: is a bend in a loss curve a deceleration, or the learning-rate schedule, or
the end of the run?

bnsl.py fits a broken power law to the loss against the step and says whether its break is
*supported*: a real bend in this curve (its rules (a)-(h)). A supported bend is not yet a loss
deceleration, for two reasons that have nothing to do with how the model learns:

  * The schedule. A step at half the learning rate moves the weights about half as far, so the
    loss's own clock is the dynamic time tau(t) = sum_{s <= t} lr_s / max lr (curves.dynamic_time,
    in steps at the peak LR). A linear warm-up of W steps from 10 % of the peak makes tau grow as
    0.1 t + 0.45 t^2 / W, then as t - 0.45 W, so a power law in tau looks bent in t around
    1-3 W; a cosine or linear decay slows tau near the end and bends the curve there.
  * The end of the run. A curve whose log-log slope keeps drifting has no break of its own, but
    a fit window that ends where the run ends puts one near the window's log-middle: cut the
    run, and the "break" moves with the cut.

So the curve is fitted three more times, and judged by these rules (written down before they
were tried on any real curve; the thresholds are the constants below):

  S      the 1-break fit against steps (bnsl.fit_bnsl): t_d and its 1-sigma error t_d_err;
  Θ      the same rows against tau, smoothed in tau (only when the log has learning rates);
  S_c    against steps, the run cut at c T for c = 3/4 and 1/2 (T: the last logged step).

  1. "none"          S has no supported break.
  2. "schedule"      the log has learning rates, and Θ has no supported break, or Θ's break
                     tau_d, read back as the step t(tau_d) at which tau reaches it, lies more
                     than a factor TAU_MATCH = 2 from t_d (Θ found another bend).
  3. "end of run"    for c = 3/4 or c = 1/2, S_c has no supported break (or cannot be fitted),
                     or its break moved: |log(t_d,c / t_d)| > log CUT_SHIFT, CUT_SHIFT = 1.2,
                     and > 2 sigma, sigma^2 = (t_d_err / t_d)^2 + (t_d,c_err / t_d,c)^2.
  4. "deceleration"  otherwise. Only then is t_d returned as a deceleration step.

Why these numbers. A break fitted to an evenly curving curve sits near the log-middle of the
window, so the cut at 1/2 moves it by about sqrt(2) = 1.41, while a fixed break does not move:
CUT_SHIFT = 1.2 is about halfway between, in log. The 2-sigma guard keeps noise from moving a
noisy curve's break; CUT_SHIFT keeps a noiseless curve's tiny sigma from calling any move
significant. TAU_MATCH = 2: a warm-up or a decay moves where the fit in steps puts a bend, by
less than that. A break found in tau but not in steps is not looked for: the question is
whether the bend in steps is a deceleration.

Measured too, outside the verdict: the smoothing's shift. The log moving average lags (its
window [s/1.2, s] is centred near 0.92 s), so an exact break at step 500 is fitted at ~543
with a 1-sigma error of ~1. The lag grows with the window's log-width, so refitting with the
window halved (ratio sqrt 1.2) moves each of t_d, L_d, r_d by half the shift: we report
shift = 2 (value - value with half the window), and t_d_err_total = t_d_err + |shift of t_d|.

    curve = curves.read_curve("runs/small")        # a train.py run directory, or any CSV
    result = deceleration_verdict(curve["steps"], curve["losses"], curve["lr"])   # lr None: steps
    result["verdict"], result["t_d"]                 # t_d is None unless "deceleration"
"""
import numpy as np

import bnsl
import curves

TAU_MATCH = 2.0    # Θ's break, as a step, within this factor of t_d: the same bend
CUT_SHIFT = 1.2    # t_d of the cut run within this factor of t_d (or 2 sigma): it stayed
CUTS = (0.75, 0.5)  # the run is cut at these fractions of its last step
VERDICTS = ("deceleration", "schedule", "end of run", "none")


def judge(fit, tau_fit=None, tau_d_step=None, cuts=()):
    """The rules of the module docstring, on fits already made: (verdict, reason).

    fit: bnsl.fit_bnsl of the curve in steps. tau_fit: the fit in tau, or None when there are no
    learning rates; tau_d_step: the step at which tau reaches its break. cuts: [(c, result)] for
    the run cut at c T, result a fit_bnsl result or {"supported": False, "warning": why not}.
    The reason is one sentence with the numbers the verdict rests on.
    """
    if not fit["supported"]:
        return "none", f"no supported break in steps: {fit['warning']}"
    t_d, t_d_err = fit["t_d"], fit["t_d_err"]
    if tau_fit is not None:
        if not tau_fit["supported"]:
            return "schedule", f"the break at step {t_d:.4g} vanishes in tau: {tau_fit['warning']}"
        factor = max(tau_d_step / t_d, t_d / tau_d_step)
        if factor > TAU_MATCH:
            return "schedule", (f"the break at step {t_d:.4g} vanishes in tau: the break in tau is "
                                f"at step {tau_d_step:.4g}, a factor {factor:.3g} away (the same "
                                f"bend is within {TAU_MATCH:g})")
    for c, cut in cuts:
        if not cut["supported"]:
            return "end of run", (f"the run cut at {c:g} T has no supported break (t_d = {t_d:.4g} "
                                  f"on the whole run): {cut['warning']}")
        moved = abs(np.log(cut["t_d"] / t_d))                   # |log(t_d,c / t_d)|
        sigma = np.hypot(t_d_err / t_d, cut["t_d_err"] / cut["t_d"])
        if moved > np.log(CUT_SHIFT) and moved > 2 * sigma:
            return "end of run", (f"t_d follows the end: {t_d:.4g} on the whole run, "
                                  f"{cut['t_d']:.4g} on the run cut at {c:g} T, a factor "
                                  f"{np.exp(moved):.3g} (staying is within {CUT_SHIFT:g} or "
                                  f"2 sigma = {np.exp(2 * sigma):.3g})")
    in_tau = "" if tau_fit is None else f", in tau at step {tau_d_step:.4g}"
    stays = ", ".join(f"{cut['t_d']:.4g} cut at {c:g} T" for c, cut in cuts)
    return "deceleration", f"supported at step {t_d:.4g}{in_tau}; stays put: {stays}"


def smoothing_shift(fit, steps, losses, prep):
    """{t_d, L_d, r_d}: how far the log moving average moved each, estimated as
    2 (value - value with the window's log-width halved, ratio sqrt 1.2). None when the curve
    is not smoothed, the fit has no supported break (its t_d is no step of anything), or the
    refit fails."""
    if prep["smooth"] != "lma" or not fit["supported"]:
        return None
    try:
        half = bnsl.fit_bnsl(*curves.prepare_curve(steps, losses, **prep,
                                                   ratio=np.sqrt(curves.LMA_RATIO)))
    except curves.CurveError:
        return None
    return {key: 2 * (fit[key] - half[key]) for key in ("t_d", "L_d", "r_d")}


def fit_in_tau(steps, losses, lr, prep, notes):
    """The 1-break fit of the curve against tau: (result, t(tau_d)), or (None, None), with a note,
    if tau cannot be formed. The rows are those of the fit in steps, smoothed in tau
    (curves.log_moving_average); a fit that fails is {"supported": False, "warning": why}."""
    if np.any(steps != np.round(steps)) or steps[-1] > curves.MAX_SMOOTHED_STEPS:
        notes.append("tau sums the learning rate of every whole step, and these steps are not "
                     f"whole or more than {curves.MAX_SMOOTHED_STEPS:.0e}: fitted in steps only")
        return None, None
    tau = curves.dynamic_time(lr, int(steps[-1]))             # tau at steps 1 .. T
    counted = steps >= 1                                       # tau(t) starts at step 1
    try:
        kept, smoothed = curves.prepare_curve(steps[counted], losses[counted], **prep, lr=lr)
        x = tau[kept.astype(np.int64) - 1]
        moves = np.r_[True, np.diff(x) > 0]                    # a step at lr 0 adds no tau: drop it
        if not moves.all():
            notes.append(f"{np.sum(~moves)} rows at a learning rate of 0 dropped from the fit in tau")
        fit = bnsl.fit_bnsl(x[moves], smoothed[moves], clock="tau")
    except curves.CurveError as error:
        return {"supported": False, "warning": f"cannot be fitted against tau ({error})",
                "t_d": None, "t_d_err": None}, None
    return fit, float(np.interp(fit["t_d"], tau, np.arange(1.0, len(tau) + 1)))


def fit_cut(steps, losses, c, prep):
    """The 1-break fit in steps of the run cut at c T (the rows at steps <= c T), with "cut" and
    "T" added; {"supported": False, "warning": why} if it cannot be fitted."""
    keep = steps <= c * steps[-1]
    try:
        fit = bnsl.fit_bnsl(*curves.prepare_curve(steps[keep], losses[keep], **prep))
    except curves.CurveError as error:
        fit = {"supported": False, "warning": f"cannot be fitted ({error})",
               "t_d": None, "t_d_err": None}
    return dict(fit, cut=c, T=c * steps[-1])


def deceleration_verdict(steps, losses, lr=None, smooth=curves.DEFAULT_SMOOTH,
                         subsample=curves.DEFAULT_SUBSAMPLE, transient=curves.DEFAULT_TRANSIENT):
    """Fit a loss curve in steps, in tau and cut at 3/4 and 1/2, and judge its break.

    steps, losses: [n] as read (curves.read_curve), steps increasing; lr = (lr_steps [m], lrs [m])
    or None (steps only); smooth, subsample, transient as for curves.prepare_curve. Returns a dict:
      verdict, reason     one of VERDICTS, and the numbers it rests on (see judge)
      t_d                 the deceleration step if verdict == "deceleration", else None
      fit                 bnsl.fit_bnsl of the whole curve in steps (t_d, L_d, r_d, errors, ...)
      smoothing_shift     {t_d, L_d, r_d}: what the smoothing moved them by (None: not smoothed,
                          or no supported break)
      t_d_err_total       t_d_err + |smoothing shift of t_d|: a +- that covers the lag too
      tau_fit, tau_d_step the fit against tau and its break as a step (None without lr)
      cuts                [fit_cut results] for c = 3/4 and 1/2
      notes               what preparing the curve dropped or filled in, and the clocks used
    Raises curves.CurveError when the whole curve cannot be fitted (as bnsl.fit_bnsl does); a cut
    or a fit in tau that cannot be fitted counts as one without a supported break.
    """
    steps, losses = np.asarray(steps, dtype=float), np.asarray(losses, dtype=float)
    prep = {"smooth": smooth, "subsample": subsample, "transient": transient}
    notes = []
    prepared = curves.prepare_curve(steps, losses, **prep, report=notes)
    try:
        fit = bnsl.fit_bnsl(*prepared)
    except curves.CurveError as error:   # too few points: say which stage of preparing took them
        raise curves.CurveError("; ".join([str(error)] + notes)) from None
    shift = smoothing_shift(fit, steps, losses, prep)
    tau_fit, tau_d_step = fit_in_tau(steps, losses, lr, prep, notes) if lr is not None else (None, None)
    cuts = [fit_cut(steps, losses, c, prep) for c in CUTS]
    verdict, reason = judge(fit, tau_fit, tau_d_step, [(cut["cut"], cut) for cut in cuts])
    t_d_err_total = None
    if fit["t_d"] is not None:
        t_d_err_total = fit["t_d_err"] + (abs(shift["t_d"]) if shift else 0.0)
    return {"verdict": verdict, "reason": reason,
            "t_d": fit["t_d"] if verdict == "deceleration" else None,
            "fit": fit, "smoothing_shift": shift, "t_d_err_total": t_d_err_total,
            "tau_fit": tau_fit, "tau_d_step": tau_d_step, "cuts": cuts, "notes": notes}
