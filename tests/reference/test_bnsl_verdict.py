"""Tests for deceleration.py: the verdict rules on fits with known numbers, and curves whose
answer is known -- a power law in dynamic time under a warm-up or a cosine decay (the schedule),
a break in dynamic time (a deceleration), a curve that ends mid-bend (the end of the run), and
the paper's OLMo curves (decelerations)."""
import os

import numpy as np
import pytest

import curves
import deceleration

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")


def bnsl_loss(t, b, c0, c1, d1, f1):
    """L(t) = b t^-c0 (1 + (t/d1)^(1/f1))^(-c1 f1), written independently of bnsl.py."""
    return b * t ** -c0 * (1 + (t / d1) ** (1 / f1)) ** (-c1 * f1)


def learning_rates(T, warmup, decay="constant", start=0.1, peak=3e-3):
    """lr_s for s = 1..T: a linear warm-up from start * peak, then constant or a cosine to 0."""
    lrs = []
    for s in range(1, T + 1):
        if s <= warmup:
            lrs.append(peak * (start + (1 - start) * (s - 1) / warmup))
        elif decay == "constant":
            lrs.append(peak)
        else:
            progress = (s - warmup - 1) / (T - warmup - 1)
            lrs.append(0.5 * (1 + np.cos(np.pi * progress)) * peak)
    return np.array(lrs)


def tau_by_loop(lrs):
    """tau(t) = sum_{s <= t} lr_s / max lr, one step at a time."""
    total, taus = 0.0, []
    for lr in lrs:
        total += lr
        taus.append(total / max(lrs))
    return np.array(taus)


def noisy(loss, sigma, seed):
    return loss * np.exp(sigma * np.random.default_rng(seed).standard_normal(len(loss)))


def verdict_of(losses, lrs=None, **prep):
    steps = np.arange(1.0, len(losses) + 1)
    lr = None if lrs is None else (steps, lrs)
    return deceleration.deceleration_verdict(steps, losses, lr=lr, **prep)


# ---------------------------------------------------------------- the rules, on made-up fits

def fit(t_d, err=1.0, supported=True, warning=None):
    return {"t_d": t_d, "t_d_err": err, "supported": supported, "warning": warning}


def test_no_supported_break_is_none():
    assert deceleration.judge(fit(100.0, supported=False, warning="too slight"))[0] == "none"


def test_a_break_that_vanishes_in_tau_or_moves_far_is_the_schedule():
    stays = [(0.75, fit(100.0)), (0.5, fit(100.0))]
    judged = deceleration.judge(fit(100.0), fit(50.0, supported=False, warning="no better"), None, stays)
    assert judged[0] == "schedule" and "no better" in judged[1]
    assert deceleration.judge(fit(100.0), fit(40.0), 210.0, stays)[0] == "schedule"  # 2.1x away
    assert deceleration.judge(fit(100.0), fit(40.0), 190.0, stays)[0] == "deceleration"
    assert deceleration.judge(fit(100.0), fit(40.0), 51.0, stays)[0] == "deceleration"


def test_a_break_that_follows_the_cut_is_the_end_of_the_run():
    judge = deceleration.judge
    assert judge(fit(100.0), cuts=[(0.75, fit(100.0)), (0.5, fit(70.0))])[0] == "end of run"
    assert judge(fit(100.0), cuts=[(0.75, fit(79.0)), (0.5, fit(100.0))])[0] == "end of run"
    assert judge(fit(100.0), cuts=[(0.75, fit(121.0)), (0.5, fit(100.0))])[0] == "end of run"
    assert judge(fit(100.0), cuts=[(0.75, fit(119.0)), (0.5, fit(84.0))])[0] == "deceleration"
    # a move beyond 1.2x but within 2 sigma of a noisy fit stays
    assert judge(fit(100.0, err=20.0), cuts=[(0.5, fit(75.0, err=15.0))])[0] == "deceleration"
    assert judge(fit(100.0, err=5.0), cuts=[(0.5, fit(75.0, err=4.0))])[0] == "end of run"
    lost = judge(fit(100.0), cuts=[(0.5, fit(None, None, False, "cannot be fitted (too short)"))])
    assert lost[0] == "end of run" and "too short" in lost[1]


def test_the_schedule_is_judged_before_the_end_of_the_run():
    moved = [(0.5, fit(50.0))]
    assert deceleration.judge(fit(100.0), fit(9.0, supported=False, warning="x"), None, moved)[0] == "schedule"
    assert deceleration.judge(fit(100.0), None, None, moved)[0] == "end of run"


# ---------------------------------------------------------------- dynamic time

def test_dynamic_time_matches_a_loop_and_is_the_step_at_a_constant_lr():
    lrs = learning_rates(700, warmup=100, decay="cosine")
    steps = np.arange(1.0, 701)
    np.testing.assert_allclose(curves.dynamic_time((steps, lrs), 700), tau_by_loop(lrs), rtol=1e-12)
    # logged at steps 1, 8, 15, ...: the lr between rows is linear in s, so a linear warm-up
    # whose corner (step 295, the first at the peak) is logged is summed exactly
    lrs = learning_rates(700, warmup=294)
    np.testing.assert_allclose(curves.dynamic_time((steps[::7], lrs[::7]), 700)[:694],
                               tau_by_loop(lrs)[:694], rtol=1e-12)
    np.testing.assert_allclose(curves.dynamic_time((steps, np.full(700, 0.01)), 700), steps, rtol=1e-12)


def power_law_misfit(x, y):
    """RMS of log y about its least-squares line in log x."""
    design = np.stack([np.ones(len(x)), np.log(x)], axis=1)
    coefficients, *_ = np.linalg.lstsq(design, np.log(y), rcond=None)
    return np.sqrt(np.mean((np.log(y) - design @ coefficients) ** 2))


def test_smoothing_in_tau_keeps_a_power_law_in_tau_one():
    lrs = learning_rates(3000, warmup=500)
    steps, tau = np.arange(1.0, 3001), tau_by_loop(lrs)
    losses = 6.0 * tau ** -0.15
    in_tau = curves.log_moving_average(steps, losses, lr=(steps, lrs))
    in_steps = curves.log_moving_average(steps, losses)
    fitted = ~np.isnan(in_tau) & ~np.isnan(in_steps) & (steps > 10)
    # a sum over whole steps in place of an integral over tau leaves a little jitter
    assert power_law_misfit(tau[fitted], in_tau[fitted]) < 5e-4
    assert power_law_misfit(tau[fitted], in_steps[fitted]) > 4 * power_law_misfit(tau[fitted], in_tau[fitted])


# ---------------------------------------------------------------- curves with a known answer

@pytest.mark.parametrize("warmup, transient", [(100, 10), (100, 100), (500, 10), (500, 500)])
def test_power_law_in_tau_under_warmup_is_never_a_deceleration(warmup, transient):
    lrs = learning_rates(3000, warmup)
    judged = verdict_of(6.0 * tau_by_loop(lrs) ** -0.15, lrs, transient=transient)
    assert judged["verdict"] in ("schedule", "none") and judged["t_d"] is None, judged["reason"]
    # where the fit in steps does find a bend (the warm-up's), it is the schedule's
    assert judged["verdict"] == ("schedule" if judged["fit"]["supported"] else "none")
    assert not judged["tau_fit"]["supported"]


def test_warmup_makes_a_supported_bend_in_steps_that_is_the_schedule():
    # Fitted from step 10, a 100-step warm-up puts a supported break into a power law in tau.
    lrs = learning_rates(3000, warmup=100)
    judged = verdict_of(6.0 * tau_by_loop(lrs) ** -0.15, lrs)
    assert judged["fit"]["supported"] and judged["verdict"] == "schedule", judged["reason"]


@pytest.mark.parametrize("transient", [10, 100])
def test_power_law_in_tau_under_cosine_decay_is_never_a_deceleration(transient):
    lrs = learning_rates(3000, warmup=100, decay="cosine")
    judged = verdict_of(6.0 * tau_by_loop(lrs) ** -0.15, lrs, transient=transient)
    assert judged["verdict"] in ("schedule", "none") and judged["t_d"] is None, judged["reason"]
    assert judged["verdict"] == ("schedule" if judged["fit"]["supported"] else "none")


@pytest.mark.parametrize("noise", [0.0, 0.01])
def test_break_in_tau_under_warmup_is_a_deceleration(noise):
    lrs = learning_rates(3000, warmup=100)
    tau = tau_by_loop(lrs)
    losses = noisy(bnsl_loss(tau, 6.0, 0.12, -0.09, 300.0, 0.3), noise, seed=11)
    judged = verdict_of(losses, lrs)
    assert judged["verdict"] == "deceleration", judged["reason"]
    # The fit in tau finds the break where it is, lagged by the smoothing to ~1/0.92 of it
    # (tau reaches 300 at step 345); the fit in steps sees the same bend, mixed with the
    # warm-up's, and puts it earlier.
    assert judged["tau_fit"]["t_d"] == pytest.approx(300.0 / 0.92, rel=0.05)
    t_of_break = np.interp(300.0, tau, np.arange(1.0, 3001))
    assert judged["tau_d_step"] == pytest.approx(t_of_break / 0.92, rel=0.05)
    assert judged["tau_d_step"] / deceleration.TAU_MATCH < judged["t_d"] < judged["tau_d_step"]


@pytest.mark.parametrize("with_lr", [False, True])
def test_curve_whose_slope_keeps_flattening_to_the_end_is_the_end_of_the_run(with_lr):
    # log L = 2 - 0.3 u + 0.025 u^2, u = log t: the slope drifts evenly, there is no break of
    # its own, and a fitted one sits near the log-middle of the window: the cut at 1/2 moves it
    # by about sqrt(2), more than CUT_SHIFT.
    steps = np.arange(1.0, 3001)
    losses = np.exp(2.0 - 0.3 * np.log(steps) + 0.025 * np.log(steps) ** 2)
    judged = verdict_of(losses, np.full(3000, 1e-3) if with_lr else None)
    assert judged["fit"]["supported"] and judged["verdict"] == "end of run", judged["reason"]
    assert judged["t_d"] is None and judged["cuts"][1]["t_d"] < judged["fit"]["t_d"] / 1.3


def test_curve_that_ends_mid_bend_is_not_a_deceleration():
    # a bend centred at 0.7 T, 2/3 done at T: the fit places the break past the end
    steps = np.arange(1.0, 3001)
    judged = verdict_of(bnsl_loss(steps, 8.0, 0.3, -0.25, 0.7 * 3000, 0.5))
    assert judged["verdict"] in ("none", "end of run") and judged["t_d"] is None, judged["reason"]


def test_constant_lr_fits_the_same_break_in_tau_and_in_steps():
    losses = bnsl_loss(np.arange(1.0, 3001), 6.0, 0.12, -0.09, 200.0, 0.3)
    judged = verdict_of(losses, np.full(3000, 3e-3))
    assert judged["verdict"] == "deceleration", judged["reason"]
    assert judged["tau_d_step"] == pytest.approx(judged["t_d"], rel=1e-3)
    assert judged["tau_fit"]["t_d"] == pytest.approx(judged["t_d"], rel=1e-3)
    assert not any("steps only" in note for note in judged["notes"])


def test_power_law_is_none_and_a_csv_without_lr_says_steps_only(tmp_path):
    steps = np.arange(1, 3001)
    path = tmp_path / "curve.csv"
    path.write_text("step,loss\n" + "".join(f"{s},{l}\n" for s, l in
                                           zip(steps, noisy(4.0 * steps ** -0.1, 0.03, seed=12))))
    curve = curves.read_curve(str(path))
    assert curve["lr"] is None and any("fitted in steps only" in n for n in curve["notes"])
    judged = deceleration.deceleration_verdict(curve["steps"], curve["losses"], curve["lr"])
    assert judged["verdict"] == "none" and judged["t_d"] is None and judged["tau_fit"] is None
    assert judged["smoothing_shift"] is None          # no supported break: nothing was shifted


def test_the_error_of_t_d_covers_the_smoothings_shift():
    # An exact corner at step 500: smoothed, the fit puts it at ~543 with a 1-sigma error ~1.
    steps = np.arange(1.0, 3001)
    losses = np.where(steps < 500, 5 * steps ** -0.15, 5 * 500 ** -0.15 * (steps / 500) ** -0.05)
    judged = verdict_of(losses)
    t_d, err, shift = judged["fit"]["t_d"], judged["fit"]["t_d_err"], judged["smoothing_shift"]
    assert t_d - 500 > 10 * err                                  # the 1-sigma error alone misses it
    assert abs(t_d - 500) <= judged["t_d_err_total"]
    assert t_d - shift["t_d"] == pytest.approx(500, rel=0.02)    # the shift is the lag, not noise
    unsmoothed = verdict_of(losses, smooth="none")
    assert unsmoothed["smoothing_shift"] is None
    assert unsmoothed["t_d_err_total"] == unsmoothed["fit"]["t_d_err"]


@pytest.mark.parametrize("name", ["olmo-14M", "olmo-472M"])
def test_the_papers_olmo_curves_are_decelerations(name):
    # The paper's published curves: already smoothed and thinned, fitted from step 100.
    curve = curves.read_curve(os.path.join(DATA, f"{name}.csv"))
    judged = deceleration.deceleration_verdict(curve["steps"], curve["losses"], curve["lr"],
                                               smooth="none", subsample="none", transient=100)
    assert judged["verdict"] == "deceleration", judged["reason"]
    assert 4600 / 1.1 < judged["t_d"] < 6100 * 1.1      # the paper: 4.6k-6.1k for every size


def test_a_curve_too_long_to_sum_tau_is_judged_in_steps_and_says_so():
    steps = np.unique(np.geomspace(10, 3e7, 300).round())
    losses = bnsl_loss(steps, 6.0, 0.12, -0.09, 3e4, 0.3)
    judged = deceleration.deceleration_verdict(steps, losses, lr=(steps, np.full(len(steps), 1e-3)),
                                               smooth="none")
    assert judged["verdict"] == "deceleration" and judged["tau_fit"] is None, judged["reason"]
    assert any("fitted in steps only" in note for note in judged["notes"])
