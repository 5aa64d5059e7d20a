"""timescale.py: the scalar-beta mechanism, the toy's known answers, the tau power-law fitter, our runs
through the lens, and bad input as one-line errors."""
import csv
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from experiments import timescale
from experiments import timescale_report
import train

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from data import prepare
from support.cli import UsageError


# --- the mechanism: one logit scale beta ------------------------------------------------------------

def random_directions(rows=50, vocab=64, seed=0):
    return torch.from_numpy(np.random.default_rng(seed).normal(size=(rows, vocab)))


def test_loss_is_zero_at_the_teacher_and_positive_elsewhere():
    z = random_directions()
    assert timescale.scalar_beta_loss(7.0, 7.0, z).item() == pytest.approx(0.0, abs=1e-12)
    for beta in (0.0, 3.0, 6.9, 7.1, 20.0):
        assert timescale.scalar_beta_loss(beta, 7.0, z).item() > 1e-6


def test_autograd_gradient_equals_student_minus_teacher_expectation():
    z = random_directions()
    for beta, beta_star in ((0.5, 7.0), (3.0, 7.0), (12.0, 7.0), (40.0, 500.0)):
        beta_tensor = torch.tensor(beta, dtype=torch.float64, requires_grad=True)
        timescale.scalar_beta_loss(beta_tensor, beta_star, z).backward()
        # the formula, by a plain loop over rows and vocabulary entries
        expected = 0.0
        for row in z.numpy():
            p = np.exp(beta * row - np.max(beta * row))
            p_star = np.exp(beta_star * row - np.max(beta_star * row))
            expected += (p @ row) / p.sum() - (p_star @ row) / p_star.sum()
        expected /= len(z)
        assert beta_tensor.grad.item() == pytest.approx(expected, rel=1e-9, abs=1e-12)
        assert timescale.scalar_beta_grad(beta, beta_star, z).item() == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_peaked_teacher_gives_loss_as_one_over_beta_and_gradient_as_one_over_beta_squared():
    """For sqrt(2 ln V) << beta << beta*, averaged over many rows: L ~ 1/beta, |dL/dbeta| ~ 1/beta^2."""
    z = random_directions(rows=4000, vocab=32, seed=1)
    betas = np.array([30.0, 60.0, 120.0])
    loss = [timescale.scalar_beta_loss(b, 1e5, z).item() for b in betas]
    grad = [-timescale.scalar_beta_grad(b, 1e5, z).item() for b in betas]
    loss_slope = np.polyfit(np.log(betas), np.log(loss), 1)[0]
    grad_slope = np.polyfit(np.log(betas), np.log(grad), 1)[0]
    assert loss_slope == pytest.approx(-1.0, abs=0.15)
    assert grad_slope == pytest.approx(-2.0, abs=0.15)


# --- the toy -----------------------------------------------------------------------------------------

def test_zero_initialised_student_loss_is_log_V_minus_teacher_entropy():
    vocab, width, temperature = 16, 8, 0.3
    teacher = torch.rand(vocab, width) * 2 - 1
    x = torch.randn(64, width)
    loss = timescale.toy_loss(torch.zeros(vocab, width), teacher, x, temperature).item()
    entropies = []   # the teacher's entropy per sample, by a plain loop in float64
    for row in x.double().numpy():
        row = row / math.sqrt(np.mean(row ** 2))
        logits = teacher.double().numpy() @ row / temperature
        p = np.exp(logits - logits.max())
        p /= p.sum()
        entropies.append(-sum(q * math.log(q) for q in p if q > 0))
    assert loss == pytest.approx(math.log(vocab) - np.mean(entropies), rel=1e-4)


def test_toy_loss_vanishes_when_the_student_copies_the_teacher():
    teacher = torch.rand(16, 8) * 2 - 1
    x = torch.randn(64, 8)
    assert timescale.toy_loss(teacher / 0.5, teacher, x, 0.5).item() == pytest.approx(0.0, abs=1e-5)


def test_hand_gradient_of_the_toy_equals_autograd():
    teacher, student = torch.rand(16, 8) * 2 - 1, torch.randn(16, 8)
    x = torch.randn(64, 8)
    student.requires_grad_(True)
    loss = timescale.toy_loss(student, teacher, x, 0.2)
    loss.backward()
    hand_loss, hand_gradient, _ = timescale.toy_loss_and_gradient(student.detach(), teacher,
                                                                  timescale.rms_normalise(x), 0.2)
    assert hand_loss == pytest.approx(loss.item(), rel=1e-5)
    assert torch.allclose(hand_gradient, student.grad, atol=1e-6)


def test_toy_logs_tau_as_lr_times_updates_and_learns():
    toy = timescale.train_toy(temperature=0.01, lr=0.05, steps=60, vocab=32, width=8, batch=64, seed=3)
    assert np.allclose(toy["tau"], 0.05 * np.arange(60))            # tau = lr t, constant LR
    assert toy["logit_scale"][0] == 0.0                              # a zero-initialised student
    assert toy["loss"][-1] < 0.5 * toy["loss"][0]
    assert toy["logit_scale"][-1] > toy["logit_scale"][10] > 0


def test_sgd_toy_follows_the_same_loss():
    toy = timescale.train_toy(temperature=0.01, lr=0.5, steps=40, vocab=32, width=8, batch=64, optimizer="sgd")
    assert toy["loss"][-1] < toy["loss"][0]
    with pytest.raises(UsageError, match="adam or sgd"):
        timescale.train_toy(steps=5, optimizer="lion")


# --- dynamic time ------------------------------------------------------------------------------------

def test_dynamic_time_is_lr_times_t_under_a_constant_lr_and_a_running_sum_otherwise():
    assert np.allclose(timescale.dynamic_time(np.full(100, 3e-3)), 3e-3 * np.arange(1, 101))
    config = train.TrainConfig(warmup_iters=10, max_iters=50, lr_schedule="cosine")
    lrs = [train.lr_at(step, config) for step in range(1, 51)]
    running, expected = 0.0, []
    for lr in lrs:
        running += lr
        expected.append(running)
    assert np.allclose(timescale.dynamic_time(lrs), expected)


# --- the fitter --------------------------------------------------------------------------------------

def noisy_curve(alpha=1 / 3, c=2.0, L0=1.5, tau=np.geomspace(1, 1000, 80), noise=0.003, seed=0):
    rng = np.random.default_rng(seed)
    return tau, (c * tau ** -alpha + L0) * np.exp(rng.normal(0, noise, len(tau)))


def test_fitter_recovers_one_third_from_a_noisy_curve():
    fit = timescale.fit_time_power_law(*noisy_curve())
    assert fit["alpha"] == pytest.approx(1 / 3, abs=0.03)
    assert fit["c"] == pytest.approx(2.0, rel=0.1)
    assert fit["L0"] == pytest.approx(1.5, abs=0.05)
    assert abs(fit["alpha"] - 1 / 3) < 4 * fit["alpha_err"] + 1e-3   # the error is honest
    assert fit["alpha_err"] < 0.05 and fit["warning"] is None
    assert fit["rsle"] == pytest.approx(0.003, rel=0.3)


def test_fitter_recovers_other_exponents_and_a_zero_floor():
    fit = timescale.fit_time_power_law(*noisy_curve(alpha=0.7, c=5.0, L0=0.0))
    assert fit["alpha"] == pytest.approx(0.7, abs=0.03)
    assert fit["L0"] == pytest.approx(0.0, abs=0.01)


def test_no_grid_point_beats_the_fit():
    """A brute-force reference: RSS on a 3-D grid of (alpha, c, L0) around the truth."""
    tau, loss = noisy_curve(tau=np.geomspace(1, 300, 30), noise=0.01, seed=4)
    fit = timescale.fit_time_power_law(tau, loss)
    rss_fit = np.sum((np.log(timescale.time_power_law_curve(fit, tau)) - np.log(loss)) ** 2)
    alpha, c, L0 = np.meshgrid(np.linspace(0.05, 1.0, 60), np.linspace(0.5, 4.0, 60),
                               np.linspace(0.0, loss[-1], 60), indexing="ij")
    model = c[..., None] * tau ** -alpha[..., None] + L0[..., None]
    rss_grid = np.sum((np.log(model) - np.log(loss)) ** 2, axis=-1)
    assert rss_fit <= rss_grid.min() * (1 + 1e-9)
    assert 0 <= fit["L0"] <= loss[-1] and fit["alpha"] >= 0


def test_fitter_reports_a_large_error_when_the_data_cannot_pin_alpha():
    fit = timescale.fit_time_power_law(*noisy_curve(tau=np.linspace(10, 12, 20), noise=0.003))
    assert not fit["alpha_err"] < 0.5 * fit["alpha"]
    assert "not pinned" in fit["warning"]


def test_a_rising_curve_is_flagged_as_no_decay():
    tau = np.geomspace(1, 100, 30)
    fit = timescale.fit_time_power_law(tau, 0.01 * tau ** 0.5)
    assert fit["alpha"] == 0 or fit["c"] == 0
    assert "no power-law decay" in fit["warning"]


@pytest.mark.parametrize("tau, loss, message", [
    ([1, 2, 3], [3, 2, 1], "4 points"),
    ([1, 2, 3, 4], [3, 2, 0, 1], "positive"),
    ([1, 2, 3, 4], [3, 2, -1, 1], "positive"),
    ([0, 2, 3, 4], [3, 2, 1.5, 1], "dynamic time must be positive"),
    ([1, 2, 3, 4], [3, 2, np.nan, 1], "finite"),
])
def test_fitter_refuses_bad_curves(tau, loss, message):
    with pytest.raises(UsageError, match=message):
        timescale.fit_time_power_law(tau, loss)


def test_log_log_slope_of_an_exact_power_law():
    tau = np.geomspace(0.1, 100, 9)
    slope, error = timescale.log_log_slope(tau, 3 * tau ** 0.25)
    assert slope == pytest.approx(0.25) and error == pytest.approx(0.0, abs=1e-9)


# --- our runs through the lens -----------------------------------------------------------------------

@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A short real train.py run: 1 layer, 16 wide, 160 steps on a small byte dataset."""
    data = str(tmp_path_factory.mktemp("data"))
    prepare.build_stdlib(data, max_bytes=200_000)
    out = str(tmp_path_factory.mktemp("run") / "tiny")
    config = train.TrainConfig(out_dir=out, dataset=data, n_layer=1, n_head=1, n_embd=16, block_size=16,
                               batch_size=8, max_iters=160, warmup_iters=5, learning_rate=1e-2, n_probe=4,
                               record_per_octave=0, progress=False)
    assert not train.train(config)
    return out


def test_run_tau_and_logit_scales(run_dir):
    result = timescale.analyse_run(run_dir, t_d=20)
    steps, _, lrs = timescale.load_log(run_dir)
    config = train.TrainConfig(warmup_iters=5, learning_rate=1e-2)
    tau = np.cumsum([train.lr_at(s, config) for s in steps])
    assert np.allclose(tau[5:] - tau[4], 1e-2 * np.arange(1, len(steps) - 4), rtol=1e-5)  # constant after warm-up
    # the loss at step s is measured before update s: its tau is the sum of the earlier lrs
    assert np.allclose(result["tau"], tau[result["steps"].astype(int) - 2], rtol=1e-5)
    assert list(result["scale_steps"]) == [1, 2, 4, 8, 16, 32, 64, 128, 160]
    # the logit scale at step 64 by a plain loop over the probe's tokens
    from support import runfiles
    model, _ = runfiles.load_checkpoint(os.path.join(run_dir, "checkpoints", "step_000064.pt"))
    logits, _ = model(runfiles.load_probe(run_dir)["x"])
    stds = [np.std(token_logits) for token_logits in logits.detach().double().numpy().reshape(-1, logits.shape[-1])]
    assert result["logit_scale"][6] == pytest.approx(np.mean(stds), rel=1e-5)
    assert result["fit"]["tau_first"] >= result["tau"][-1] / 10          # the last decade of tau
    assert result["fit_after_t_d"]["first_step"] >= 20


def cli(*args):
    """The command line in a subprocess: exit status and output exactly as a user sees them."""
    return subprocess.run([sys.executable, os.path.join(ROOT, "experiments", "timescale.py"), *map(str, args)],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)


def main_in_process(capsys, *args):
    """timescale.py's main in this process (no second torch import): (exit status, stdout, stderr)."""
    try:
        status = timescale_report.main([str(arg) for arg in args])
    except SystemExit as stop:
        status = stop.code
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_cli_json_and_plot_and_report_section(run_dir, tmp_path, capsys):
    status, out, err = main_in_process(capsys, run_dir, "--json", "--plot", tmp_path / "fig.png")
    assert status == 0, err
    (row,) = json.loads(out)
    assert {"alpha", "alpha_err", "logit_scale_slope", "alpha_after_t_d", "logit_scale"} <= set(row)
    assert os.path.getsize(tmp_path / "fig.png") > 1000
    text, summary = timescale_report.report_section([run_dir], [{"name": "tiny", "t_d": 20.0, "supported": True}],
                                                   str(tmp_path), progress=False)
    assert "| tiny | 20 |" in text and summary["runs"][0]["t_d"] == 20.0
    assert os.path.isfile(tmp_path / "timescale_runs.png")


def write_log(path, rows):
    with open(path, "w", newline="") as file:
        csv.writer(file).writerows([("step", "loss", "lr", "tokens", "time_s")] + rows)


def test_a_missing_run_is_a_one_line_error_without_traceback(tmp_path):
    result = cli(tmp_path / "nothing")
    assert result.returncode == 2
    assert result.stderr.strip() == (f"timescale.py: error: {tmp_path / 'nothing'}: no such directory; "
                                     "pass the --out_dir of a train.py run")


@pytest.mark.parametrize("case, message", [
    ("no_log", "no log.csv"),
    ("too_few", "points in the fit window"),
    ("zero_loss", "losses must be positive"),
    ("gap", "none missing"),
])
def test_bad_input_is_a_one_line_error(case, message, tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    if case == "too_few":
        write_log(run / "log.csv", [(s, 4.0 / s, 1e-3, 0, 0) for s in (1, 2, 3)])
    if case == "zero_loss":
        write_log(run / "log.csv", [(s, 0.0 if s == 5 else 4.0 / s, 1e-3, 0, 0) for s in range(1, 50)])
    if case == "gap":
        write_log(run / "log.csv", [(s, 4.0 / s, 1e-3, 0, 0) for s in (1, 2, 4, 5, 6)])
    status, _, err = main_in_process(capsys, run)
    assert status == 2
    assert message in err and len(err.strip().splitlines()) == 1, err


@pytest.mark.parametrize("flag", ["--lr=-1", "--steps=1", "--optimizer=lion", "--width=x", "--temperature=0"])
def test_bad_toy_flags_are_one_line_errors(flag, capsys):
    status, _, err = main_in_process(capsys, "toy", flag, "--plot=none")
    assert status == 2 and err.startswith("timescale.py") and len(err.strip().splitlines()) == 1, err


def test_a_misspelt_toy_is_pointed_at_the_toy_and_help_names_it(capsys, tmp_path):
    status, _, err = main_in_process(capsys, "tyo")
    assert status == 2 and "did you mean the toy: python experiments/timescale.py toy" in err
    status, _, err = main_in_process(capsys, tmp_path / "no_run")   # not like "toy": the plain error
    assert status == 2 and "did you mean" not in err and "no such directory" in err
    status, _, err = main_in_process(capsys, "toy", "--steps=x")
    assert status == 2 and err.rstrip().endswith("(see python experiments/timescale.py toy --help)")
    status, out, _ = main_in_process(capsys, "--help")
    assert status == 0 and "timescale.py toy" in out
