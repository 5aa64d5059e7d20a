"""Tests for bnsl.py on synthetic curves (the paper's curves stay outside the repo)."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import bnsl
from support import bnsl_cli

BNSL_PY = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "bnsl.py")


def bnsl_loss(steps, b, c0, breaks):
    """L(t) = b t^-c0 prod_k (1 + (t/d_k)^(1/f_k))^(-c_k f_k), written independently of bnsl.py."""
    loss = b * steps ** -c0
    for c, d, f in breaks:
        loss = loss * (1 + (steps / d) ** (1 / f)) ** (-c * f)
    return loss


def noisy(loss, sigma, seed):
    return loss * np.exp(sigma * np.random.default_rng(seed).standard_normal(len(loss)))


STEPS = np.unique(np.geomspace(10, 5000, 400).round())


def test_recovers_one_break_from_noisy_curve():
    truth = dict(b=6.0, c0=0.12, c1=-0.09, d1=300.0, f1=0.3)
    losses = noisy(bnsl_loss(STEPS, 6.0, 0.12, [(-0.09, 300.0, 0.3)]), 0.003, seed=1)
    fit = bnsl.fit_bnsl(STEPS, losses, breaks=1)
    for key, value in truth.items():
        assert abs(fit[key] - value) < 4 * fit[key + "_err"], (key, fit[key], fit[key + "_err"])
        assert fit[key + "_err"] < 0.1 * abs(value), key          # and the errors are informative
    assert fit["t_d"] == fit["d1"] and fit["r_d"] == pytest.approx(fit["c0"] + fit["c1"])
    assert fit["L_d"] == pytest.approx(fit["b"] * fit["t_d"] ** -fit["c0"])
    assert fit["L_hat_T"] == pytest.approx(fit["L_d"] * (fit["t_d"] / STEPS[-1]) ** fit["r_d"])
    assert fit["rsle"] == pytest.approx(0.003, rel=0.15)           # the fit reaches the noise floor
    assert fit["rsle_power_law"] > 5 * fit["rsle"]
    assert fit["supported"] and fit["warning"] is None


def test_recovers_two_breaks_from_noisy_curve():
    truth = [(0.15, 60.0, 0.2), (-0.25, 800.0, 0.3)]           # speed-up, then deceleration
    losses = noisy(bnsl_loss(STEPS, 8.0, 0.05, truth), 0.002, seed=2)
    fit = bnsl.fit_bnsl(STEPS, losses, breaks=2)
    for k, (c, d, f) in enumerate(truth, start=1):
        for key, value in ((f"c{k}", c), (f"d{k}", d), (f"f{k}", f)):
            assert abs(fit[key] - value) < 5 * fit[key + "_err"], (key, fit[key], fit[key + "_err"])
            assert abs(fit[key] - value) < 0.15 * abs(value), (key, fit[key])
    # both breaks are found, but t_d describes break 1, and that one speeds the loss up
    assert not fit["supported"] and "acceleration" in fit["warning"], fit["warning"]


def test_fit_needs_no_hint_of_where_the_break_is():
    # The same shape with the break early, in the middle and late: all found from the grid alone.
    for d1 in (40.0, 400.0, 3000.0):
        losses = bnsl_loss(STEPS, 5.0, 0.1, [(-0.08, d1, 0.2)])
        fit = bnsl.fit_bnsl(STEPS, losses, breaks=1)
        assert fit["d1"] == pytest.approx(d1, rel=1e-4) and fit["rsle"] < 1e-6


def test_analytic_jacobian_matches_finite_differences():
    log_t = np.log(STEPS)
    theta = np.array([1.7, 0.11, 0.2, np.log(50.0), 0.25, -0.3, np.log(900.0), 0.7])
    for n_params in (2, 5, 8):                                 # 0, 1 and 2 breaks
        analytic = bnsl.bnsl_jacobian(theta[:n_params], log_t)
        for i in range(n_params):
            h = 1e-6 * max(1.0, abs(theta[i]))
            plus, minus = theta[:n_params].copy(), theta[:n_params].copy()
            plus[i] += h
            minus[i] -= h
            numeric = (bnsl.bnsl_log_loss(plus, log_t) - bnsl.bnsl_log_loss(minus, log_t)) / (2 * h)
            np.testing.assert_allclose(analytic[:, i], numeric, rtol=1e-6, atol=1e-8)


def test_softplus_and_sigmoid_do_not_overflow():
    z = np.array([-1000.0, -30.0, 0.0, 30.0, 1000.0])
    with np.errstate(over="raise"):
        np.testing.assert_allclose(bnsl.softplus(z), [0.0, np.exp(-30.0), np.log(2), 30.0, 1000.0],
                                   rtol=1e-12, atol=0)
        np.testing.assert_allclose(bnsl.sigmoid(z), [0.0, np.exp(-30.0), 0.5, 1.0, 1.0],
                                   rtol=1e-12, atol=0)


def test_pure_power_law_has_no_supported_break():
    losses = noisy(4.0 * STEPS ** -0.1, 0.005, seed=3)
    fit = bnsl.fit_bnsl(STEPS, losses, breaks=1)
    assert not fit["supported"] and "no better than 0" in fit["warning"]
    fit2 = bnsl.fit_bnsl(STEPS, noisy(bnsl_loss(STEPS, 6.0, 0.12, [(-0.09, 300.0, 0.3)]), 0.003, 4),
                         breaks=2)
    assert not fit2["supported"] and "no better than 1" in fit2["warning"]


def test_smoothed_noise_is_not_mistaken_for_a_break():
    # Per-step noise, smoothed and subsampled as for our runs: BIC alone would accept a sharp
    # corner fitted to the noisy first points; the minimum RSLE gain must reject it.
    steps = np.arange(1, 3001.0)
    for seed in range(3):
        fit = bnsl.fit_bnsl(*bnsl.prepare_curve(steps, noisy(4.0 * steps ** -0.1, 0.03, seed)))
        assert not fit["supported"], fit
    losses = noisy(bnsl_loss(steps, 6.0, 0.12, [(-0.09, 150.0, 0.3)]), 0.03, seed=0)
    assert bnsl.fit_bnsl(*bnsl.prepare_curve(steps, losses))["supported"]


def logged_every(every, length, curve, noise=0.0, seed=0):
    """A per-step loss curve L(1..length), with per-step noise, of which every every-th step is logged."""
    steps = np.arange(1, length + 1.0)
    losses = curve(steps)
    if noise:
        losses = noisy(losses, noise, seed)
    return steps[every - 1::every], losses[every - 1::every]


SUPPORT_CASES = [  # (logged every, steps, curve, per-step noise, supported?)
    (every, length, kind, noise)
    for every in (1, 10, 100) for length in (300, 3000) if length // every >= 20
    for kind, noise in (("power law", 0.0), ("power law", 0.03), ("broken", 0.0),
                        ("acceleration", 0.0), ("constant", 0.0))
] + [(every, 3000, "power law", 0.0) for every in (2, 5, 30)]


@pytest.mark.parametrize("every, length, kind, noise", SUPPORT_CASES)
def test_support_holds_at_every_logging_interval(every, length, kind, noise):
    # A break between the first fitted step and the last (log-midway), with the default preparation.
    first_fitted = max(bnsl.DEFAULT_TRANSIENT + 1, 2 * every)
    t_break = np.sqrt(first_fitted * length)
    curve = {"power law": lambda t: 4.0 * t ** -0.1,
             "broken": lambda t: bnsl_loss(t, 6.0, 0.12, [(-0.1, t_break, 0.3)]),
             "acceleration": lambda t: bnsl_loss(t, 6.0, 0.05, [(0.2, t_break, 0.3)]),
             "constant": lambda t: np.full(len(t), 3.0)}[kind]
    steps, losses = bnsl.prepare_curve(*logged_every(every, length, curve, noise, seed=every))
    fit = bnsl.fit_bnsl(steps, losses)
    if kind == "broken":
        assert fit["supported"], fit["warning"]
        # the log moving average lags: [s/1.2, s] is centred near 0.92 s, so the bend moves to t/0.92
        assert fit["t_d"] == pytest.approx(t_break / 0.92, rel=0.1)
    else:
        assert not fit["supported"], fit
        expected = {"acceleration": "acceleration", "constant": "exactly"}.get(kind, "")
        assert expected in fit["warning"]


def test_too_few_points_for_a_supported_break():
    steps = np.array([20.0, 30, 40, 50, 60, 70])       # six points for five parameters
    fit = bnsl.fit_bnsl(steps, bnsl_loss(steps, 6.0, 0.12, [(-0.1, 40.0, 0.3)]))
    assert not fit["supported"] and "only 6 points" in fit["warning"]
    steps = np.geomspace(20, 2000, 15).round()         # fifteen: enough
    assert bnsl.fit_bnsl(steps, bnsl_loss(steps, 6.0, 0.12, [(-0.1, 200.0, 0.3)]))["supported"]


def test_break_beyond_the_data_is_flagged():
    # Gentle bend centred past the last step: the best fit puts d1 outside the data.
    losses = bnsl_loss(STEPS, 5.0, 0.05, [(0.3, 20000.0, 1.0)])
    fit = bnsl.fit_bnsl(STEPS, losses, breaks=1)
    assert fit["d1"] > STEPS[-1]
    assert not fit["supported"] and "outside the fitted steps" in fit["warning"]


def test_zero_breaks_is_the_power_law():
    losses = noisy(4.0 * STEPS ** -0.1, 0.005, seed=5)
    fit = bnsl.fit_bnsl(STEPS, losses, breaks=0)
    assert fit["t_d"] is None and fit["rsle"] == fit["rsle_power_law"]
    assert fit["b"] == pytest.approx(4.0, rel=0.02) and fit["c0"] == pytest.approx(0.1, rel=0.02)


def brute_force_log_moving_average(steps, losses):
    """The paper's mean over the whole steps floor(s/1.2)..s, an unlogged step j filled from its
    logged neighbours a < j < b as log L(j) = log L(a) + log(j/a)/log(b/a) (log L(b) - log L(a))."""
    logged = dict(zip(steps, losses))
    smoothed = []
    for s in steps:
        if np.floor(s / 1.2) < steps[0]:
            smoothed.append(np.nan)                    # the window reaches before the data
            continue
        window = []
        for j in range(int(np.floor(s / 1.2)), int(s) + 1):
            if j in logged:
                window.append(logged[j])
            else:
                a, b = steps[steps < j].max(), steps[steps > j].min()
                weight = np.log(j / a) / np.log(b / a)
                window.append(np.exp((1 - weight) * np.log(logged[a]) + weight * np.log(logged[b])))
        smoothed.append(np.mean(window))
    return np.array(smoothed)


def test_log_moving_average_matches_brute_force():
    rng = np.random.default_rng(6)
    for steps in (np.arange(1, 300.0), np.arange(10, 1001.0, 10), np.arange(7, 1000.0, 13),
                  np.unique(rng.integers(1, 1000, 100)).astype(float)):
        losses = rng.random(len(steps)) + 1
        np.testing.assert_allclose(bnsl.log_moving_average(steps, losses),
                                   brute_force_log_moving_average(steps, losses), rtol=1e-12)
    # Logged at every step from 0, it is the paper's mean(x[floor(j/1.2) .. j]).
    x = rng.random(500)
    paper = [x[int(np.floor(j / 1.2)): j + 1].mean() for j in range(500)]
    np.testing.assert_allclose(bnsl.log_moving_average(np.arange(500.0), x), paper, rtol=1e-12)


def test_log_moving_average_of_a_power_law_is_a_power_law_at_any_logging_interval():
    # The root of a false "break": a window of rows is unlagged where rows are sparse (early) and
    # lagged where they are dense; a window of steps lags every step alike.
    every_step = np.arange(1, 3001.0)
    reference = bnsl.log_moving_average(every_step, 4.0 * every_step ** -0.1)
    for every in (2, 10, 100):
        steps = np.arange(every, 3001.0, every)
        smoothed = bnsl.log_moving_average(steps, 4.0 * steps ** -0.1)
        assert np.isnan(smoothed[0])                   # its window starts before the first row
        np.testing.assert_allclose(smoothed[1:], reference[steps[1:].astype(int) - 1], rtol=1e-12)


def test_log_subsample_matches_brute_force():
    steps = np.arange(1, 23457)
    expected = [s for s in steps if s < 100 or (s < 1000 and s % 10 == 0)
                or (s < 10000 and s % 100 == 0) or s % 1000 == 0 or s == steps[-1]]
    np.testing.assert_array_equal(steps[bnsl.log_subsample_mask(steps)], expected)


def test_prepare_curve_smooths_then_subsamples_then_drops_the_transient():
    steps = np.arange(1, 3001.0)
    losses = 5.0 * steps ** -0.1 * (1 + 0.05 * np.sin(steps))
    prepared_steps, prepared_losses = bnsl.prepare_curve(steps, losses, "lma", "log", transient=20)
    keep = bnsl.log_subsample_mask(steps) & (steps > 20)
    np.testing.assert_array_equal(prepared_steps, steps[keep])
    np.testing.assert_allclose(prepared_losses, bnsl.log_moving_average(steps, losses)[keep])
    raw_steps, raw_losses = bnsl.prepare_curve(steps, losses, "none", "none", transient=0)
    np.testing.assert_array_equal(raw_losses, losses)
    with pytest.raises(bnsl.CurveError):
        bnsl.prepare_curve(steps, losses, smooth="ema")


def test_fit_refuses_fewer_points_than_parameters():
    with pytest.raises(bnsl.CurveError, match="parameters"):
        bnsl.fit_bnsl(STEPS[:5], 3.0 * STEPS[:5] ** -0.1, breaks=1)


# ---------------------------------------------------------------- the command line

def run_cli(*args):
    return subprocess.run([sys.executable, BNSL_PY, *map(str, args)],
                          capture_output=True, text=True, timeout=60)


def write_csv(path, steps, losses, header="step,loss"):
    with open(path, "w") as file:
        file.write(header + "\n" + "".join(f"{s},{l}\n" for s, l in zip(steps, losses)))
    return path


@pytest.fixture
def curve_csv(tmp_path):
    steps = np.arange(1, 3001)
    losses = noisy(bnsl_loss(steps, 6.0, 0.12, [(-0.09, 150.0, 0.3)]), 0.02, seed=7)
    return write_csv(tmp_path / "small.csv", steps, losses)


BAD_INPUTS = {
    "missing file": lambda d: [d / "nope.csv"],
    "empty run directory": lambda d: [d],
    "no header": lambda d: [write_csv(d / "h.csv", [20, 30], [1, 2], header="20,3.0")],
    "unreadable row": lambda d: [write_csv(d / "u.csv", ["20", "x"], [3, 2])],
    "too few points": lambda d: [write_csv(d / "f.csv", [20, 30, 40, 50], [4, 3, 2.5, 2.2])],
    "negative loss": lambda d: [write_csv(d / "n.csv", range(20, 40), [1.0] * 19 + [-1.0])],
    "zero loss": lambda d: [write_csv(d / "z.csv", range(20, 40), [1.0] * 19 + [0.0])],
    "nan loss": lambda d: [write_csv(d / "nan.csv", range(20, 40), [1.0] * 19 + ["nan"])],
    "inf loss": lambda d: [write_csv(d / "inf.csv", range(20, 40), ["inf"] + [1.0] * 19)],
    "unsorted steps": lambda d: [write_csv(d / "s.csv", [20, 22, 21] + list(range(23, 40)),
                                           np.linspace(3, 2, 20))],
    "duplicate step": lambda d: [write_csv(d / "d.csv", [20, 21, 21] + list(range(22, 39)),
                                           np.linspace(3, 2, 20))],
    "unknown option": lambda d: ["--smoothing=lma", "x.csv"],
    "bad breaks": lambda d: ["--breaks=3", "x.csv"],
    "bad smooth": lambda d: ["--smooth=ema", "x.csv"],
    "bad transient": lambda d: ["--transient=ten", "x.csv"],
    "negative transient": lambda d: ["--transient=-1", "x.csv"],
    "no input": lambda d: [],
    "no such loss column": lambda d: ["--loss_column=val", write_csv(d / "c.csv", range(20, 40),
                                                                     np.linspace(3, 2, 20))],
    "no such step column": lambda d: ["--step_column=Step", write_csv(d / "c.csv", range(20, 40),
                                                                      np.linspace(3, 2, 20))],
    "negative lr": lambda d: [write_csv(d / "l.csv", range(20, 40), [f"{l},-1" for l in
                                        np.linspace(3, 2, 20)], header="step,loss,lr")],
    "text lr": lambda d: [write_csv(d / "l.csv", range(20, 40), [f"{l},fast" for l in
                                    np.linspace(3, 2, 20)], header="step,loss,lr")],
    "nan lr": lambda d: [write_csv(d / "l.csv", range(20, 40), [f"{l},nan" for l in
                                   np.linspace(3, 2, 20)], header="step,loss,lr")],
    "lr 0 throughout": lambda d: [write_csv(d / "l.csv", range(20, 40), [f"{l},0" for l in
                                            np.linspace(3, 2, 20)], header="step,loss,lr")],
    "two lrs at a step": lambda d: [write_csv(d / "l.csv", [20, 20] + list(range(21, 40)),
                                              ["3,1e-3", "3,2e-3"] + [f"{l},1e-3" for l in
                                                                      np.linspace(3, 2, 19)],
                                              header="step,loss,lr")],
}


@pytest.mark.parametrize("case", BAD_INPUTS)
def test_bad_input_is_one_line_error(case, tmp_path):
    result = run_cli(*BAD_INPUTS[case](tmp_path))
    assert result.returncode == 2, result
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("bnsl.py: error: ")


def test_table_json_and_plot(curve_csv, tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    steps = np.arange(1, 3001)
    with open(run_dir / "log.csv", "w") as file:   # train.py's format, with a repeated last row
        file.write("step,loss,lr,tokens,time_s\n")
        file.writelines(f"{s},{l},0.001,{s * 2048},{s * 0.01}\n" for s, l in
                        zip(steps, bnsl_loss(steps, 5.0, 0.1, [(-0.07, 200.0, 0.2)])))
        file.write(f"3000,{bnsl_loss(np.array([3000.0]), 5.0, 0.1, [(-0.07, 200.0, 0.2)])[0]},"
                   "0.001,6144000,30.0\n")
    table = run_cli(curve_csv, run_dir)
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split()[:4] == ["name", "n", "b", "c0"] and "rsle_pl" in lines[0]
    assert lines[1].startswith("small ") and lines[2].startswith("run ")

    plot_path = tmp_path / "fits.png"
    as_json = run_cli(curve_csv, run_dir, "--json", "--plot", plot_path)
    assert as_json.returncode == 0, as_json.stderr
    results = json.loads(as_json.stdout)
    assert [r["name"] for r in results] == ["small", "run"]
    for r in results:
        assert {"name", "b", "c0", "c1", "f1", "t_d", "L_d", "r_d", "rsle",
                "rsle_power_law", "L_hat_T", "L_T", "supported", "warning"} <= set(r)
    # The log moving average lags: the window [s/1.2, s] is centred near 0.92 s, so the
    # smoothed curve bends at about 200 / 0.92 = 218 instead of 200.
    assert 200.0 < results[1]["t_d"] < 230.0
    # the verdict and the numbers behind it; a CSV without learning rates says it is steps only
    small, run = results
    assert run["verdict"] == "deceleration" and run["tau_fit"]["supported"]
    assert run["tau_d_step"] == pytest.approx(run["t_d"], rel=1e-3)   # a constant LR: tau = t
    assert [cut["cut"] for cut in run["cuts"]] == [0.75, 0.5]
    assert run["t_d_err_total"] > run["t_d_err"] and run["smoothing_shift"]["t_d"] > 0
    assert small["tau_fit"] is None and "no 'lr' column: fitted in steps only" in small["notes"]
    verdict_rows = table.stdout.split("why")[1].splitlines()
    assert verdict_rows[1].split()[:2] == ["small", small["verdict"]] and "steps only" in verdict_rows[1]
    with open(plot_path, "rb") as file:
        assert file.read(8) == b"\x89PNG\r\n\x1a\n"
    assert os.path.getsize(plot_path) > 10000


def test_a_transient_that_drops_every_step_is_a_clear_error():
    with pytest.raises(bnsl.CurveError, match="drops every step"):
        bnsl.prepare_curve(np.arange(1, 21.0), np.linspace(5, 4, 20), transient=5000)


# ---------------------------------------------------------------- logs as trackers write them

def test_thinning_keeps_one_logged_row_per_bin():
    # Logged at steps 105, 115, ..., 395: every row is alone in its bin of 10 steps.
    steps = np.arange(105, 400, 10.0)
    assert bnsl.log_subsample_mask(steps).all()
    # Any log: the first row of each bin (1 step < 100, 10 < 1000, 100 < 10000, 1000 beyond).
    steps = np.unique(np.random.default_rng(8).integers(1, 30000, 3000))
    expected, seen = [], set()
    for s in steps:
        width = 1 if s < 100 else 10 if s < 1000 else 100 if s < 10000 else 1000
        expected.append((s // width) * width not in seen)
        seen.add((s // width) * width)
    expected[-1] = True
    np.testing.assert_array_equal(bnsl.log_subsample_mask(steps), expected)


def test_a_log_at_odd_steps_is_fitted_and_the_preparation_says_what_it_dropped():
    steps = np.arange(105, 400, 10.0)
    losses = bnsl_loss(steps, 6.0, 0.12, [(-0.09, 200.0, 0.3)])
    report = []
    prepared, _ = bnsl.prepare_curve(steps, losses, report=report)
    assert prepared[0] == 135                        # floor(125 / 1.2) = 104: before the first row
    assert report == ["kept 27 of 30 rows: 0 thinned to one per bin (--subsample), 0 at steps "
                      "<= 10 (--transient), 3 without a full smoothing window"]
    assert bnsl.fit_bnsl(*bnsl.prepare_curve(steps, losses))["supported"]
    every_step = np.arange(1, 3001.0)
    report = []
    bnsl.prepare_curve(every_step, 4.0 * every_step ** -0.1, report=report)
    assert report[0].startswith("kept 200 of 3000 rows: 2790 thinned")


def test_evaluation_every_125_steps_from_an_offset_keeps_every_row():
    steps = np.arange(100, 20001, 125.0)             # 100, 225, 350, ...
    losses = bnsl_loss(steps, 6.0, 0.12, [(-0.09, 2000.0, 0.3)])
    kept, _ = bnsl.prepare_curve(steps, losses, smooth="none", transient=0)
    # below 10000 every bin is narrower than 125 steps: every row is kept
    np.testing.assert_array_equal(kept[kept < 10000], steps[steps < 10000])
    assert len(kept[kept >= 10000]) == 11 and kept[-1] == steps[-1]   # one per 1000, + the last
    assert bnsl.fit_bnsl(kept, bnsl_loss(kept, 6.0, 0.12, [(-0.09, 2000.0, 0.3)]))["supported"]


def test_a_long_gap_is_interpolated_with_a_warning():
    steps = np.r_[np.arange(1, 500.0), np.arange(800, 3001.0)]     # steps 500..799 never logged
    report = []
    bnsl.prepare_curve(steps, 4.0 * steps ** -0.1, report=report)
    assert len(report) == 2 and "long gap" in report[1] and "from step 499 to 800" in report[1]
    for regular in (np.arange(1, 3001.0), np.arange(10, 3001.0, 10)):   # no gap: no warning
        report = []
        bnsl.prepare_curve(regular, 4.0 * regular ** -0.1, report=report)
        assert len(report) == 1, report
    report = []                                       # not smoothed: nothing is filled in
    bnsl.prepare_curve(steps, 4.0 * steps ** -0.1, smooth="none", report=report)
    assert len(report) == 1


def tracker_export(path, every=125, offset=100, length=3000):
    """A tracker's CSV: Step, train/loss at every step, val/loss every 125 steps from step 100,
    learning_rate with a warm-up, an extra column, and blank cells where nothing was logged."""
    steps = np.arange(1, length + 1)
    lrs = np.minimum(1.0, 0.1 + 0.9 * (steps - 1) / 100) * 3e-3
    train = bnsl_loss(steps, 6.0, 0.12, [(-0.09, 300.0, 0.3)])
    with open(path, "w") as file:
        file.write("Step,train/loss,val/loss,learning_rate,_runtime\n")
        for s, lr, loss in zip(steps, lrs, train):
            val = f"{1.02 * loss:.6f}" if s >= offset and (s - offset) % every == 0 else ""
            file.write(f"{s},{loss:.6f},{val},{lr:.6g},{s * 0.1:.1f}\n")
    return path


def test_a_trackers_export_is_read_as_it_is(tmp_path):
    path = tracker_export(tmp_path / "export.csv")
    curve = bnsl.read_curve(str(path), "Step", "val/loss", "learning_rate")
    np.testing.assert_array_equal(curve["steps"], np.arange(100, 3001, 125))
    assert curve["notes"] == ["skipped 2976 rows with a blank 'val/loss' cell"]
    assert len(curve["lr"][0]) == 3000                # the learning rate of every step still counts
    result = run_cli(path, "--step_column=Step", "--loss_column=val/loss",
                     "--lr_column=learning_rate", "--smooth=none", "--json")
    assert result.returncode == 0, result.stderr
    [fit] = json.loads(result.stdout)
    assert fit["n_points"] == 24 and "skipped 2976 rows" in fit["notes"][0]
    assert fit["tau_fit"] is not None and fit["verdict"] in ("deceleration", "schedule", "end of run", "none")
    steps_only = run_cli(path, "--step_column=Step", "--loss_column=train/loss", "--lr_column=none")
    assert "no learning rates asked for: fitted in steps only" in steps_only.stdout
    assert "steps only" in steps_only.stdout.split("why")[1]


def test_too_few_points_says_which_stage_dropped_them(tmp_path):
    steps = np.arange(105, 400, 10)
    path = write_csv(tmp_path / "odd.csv", steps, bnsl_loss(steps, 6.0, 0.12, [(-0.09, 200.0, 0.3)]))
    result = run_cli(path, "--transient=350")
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert "points left" in result.stderr and "25 at steps <= 350 (--transient)" in result.stderr


# ---------------------------------------------------------------- the table

def test_a_parameter_at_its_bound_is_flagged_and_unsupported_says_what_it_needed(tmp_path):
    steps = np.arange(1, 3001)
    corner = np.where(steps < 500, 5 * steps ** -0.15, 5 * 500 ** -0.15 * (steps / 500.0) ** -0.05)
    path = write_csv(tmp_path / "corner.csv", steps, corner)
    table = run_cli(path, "--smooth=none")
    assert table.returncode == 0, table.stderr
    assert "(at bound)" in table.stdout.splitlines()[1]
    assert json.loads(run_cli(path, "--smooth=none", "--json").stdout)[0]["at_bound"] == ["f1"]
    fit = bnsl.fit_bnsl(STEPS, noisy(4.0 * STEPS ** -0.1, 0.005, seed=3))
    assert "lower (needs 30%)" in fit["warning"] and "(needs lower)" in fit["warning"]   # both tests failed
    slope_change = np.where(STEPS < 300, 4 * STEPS ** -0.1, 4 * 300 ** -0.1 * (STEPS / 300.0) ** -0.11)
    fit = bnsl.fit_bnsl(STEPS, noisy(slope_change, 0.005, seed=3))   # BIC prefers the break, RSLE not by 30 %
    assert "RSLE 24% lower (needs 30%)" in fit["warning"] and "BIC" not in fit["warning"]


def test_every_file_written_is_named(curve_csv, tmp_path):
    figure = tmp_path / "fits.png"
    table = run_cli(curve_csv, "--plot", figure)
    assert table.returncode == 0 and table.stdout.splitlines()[-1] == f"wrote {figure}"
    as_json = run_cli(curve_csv, "--plot", figure, "--json")
    assert as_json.stderr == f"wrote {figure}\n" and json.loads(as_json.stdout)


def test_the_verdict_uses_one_break_whatever_breaks_the_table_shows(curve_csv, capsys):
    bnsl_cli.main([str(curve_csv), "--json"])
    [one] = json.loads(capsys.readouterr().out)
    bnsl_cli.main([str(curve_csv), "--json", "--breaks=0"])
    [zero] = json.loads(capsys.readouterr().out)
    assert zero["breaks"] == 0 and zero["t_d"] is None
    assert one["verdict"] == zero["verdict"] == "deceleration"
    assert zero["verdict_t_d"] == one["verdict_t_d"] == one["t_d"]
