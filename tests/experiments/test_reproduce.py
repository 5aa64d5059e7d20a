"""reproduce.py: the findings' rules, and one tiny end-to-end run of the whole pipeline."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from experiments import reproduce
from data import prepare
from support.cli import UsageError

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def size_row(L_d, r_d, ratio=3.0, supported=True, D_before=0.1, D_after=0.9, D_grad_after=0.95):
    return {"L_d": L_d, "r_d": r_d, "rsle": 0.01, "rsle_power_law": 0.01 * ratio, "supported": supported,
            "D_oct_before": D_before, "D_oct_after": D_after, "D_before": 0.9, "D_after": 0.9,
            "D_grad_before": 0.5, "D_grad_after": D_grad_after}


def verdicts(rows):
    return [holds for _, _, holds, _ in reproduce.judge(rows)]


def test_the_paper_pattern_passes_every_rule():
    assert verdicts([size_row(4.0, 0.01), size_row(3.5, 0.02), size_row(3.2, 0.03)]) == [True] * 5


def test_each_rule_can_fail_on_its_own():
    paper = [size_row(4.0, 0.01), size_row(3.5, 0.02), size_row(3.2, 0.03)]
    broken = {
        0: dict(ratio=1.5),            # a break that barely beats the power law
        1: dict(L_d=3.6),              # the largest model decelerates at a higher loss
        2: dict(r_d=0.015),            # the largest model improves more slowly after t_d
        3: dict(D_before=0.7),         # interference (Δt = t) already high before t_d
        4: dict(D_grad_after=0.5),     # little gradient opposition after t_d
    }
    for index, change in broken.items():
        rows = paper[:2] + [size_row(**{"L_d": 3.2, "r_d": 0.03, **change})]
        result = verdicts(rows)
        assert result[index] is False and sum(result) == 4, (index, result)


def test_an_unsupported_break_fails_the_scaling_findings():
    # L_d and r_d of an unsupported fit are numbers of a curve, not of a deceleration
    rows = [size_row(4.0, 0.01), size_row(3.5, 0.02), size_row(3.2, 0.03, supported=False)]
    assert verdicts(rows) == [False, False, False, True, True]


def test_parse_sizes_and_width_scaled_learning_rate():
    assert reproduce.parse_sizes("1x32, 2x64") == [(1, 32), (2, 64)]
    with pytest.raises(reproduce.UsageError):
        reproduce.parse_sizes("1x32,big")

    class Args:
        learning_rate, lr_scaling = 3e-3, "width"
    assert reproduce.learning_rate_for(128, Args) == pytest.approx(1.5e-3)
    Args.lr_scaling = "none"
    assert reproduce.learning_rate_for(128, Args) == 3e-3


def test_tiny_end_to_end_report(tmp_path):
    out = tmp_path / "report"
    args = ["--dataset=stdlib", "--sizes=1x16,1x32", "--max_iters=64", "--warmup_iters=8", "--block_size=16", "--batch_size=8",
            "--probe_tokens=32", "--transient=2", "--ee_tokens=2048", f"--out_dir={out}"]
    result = subprocess.run([sys.executable, os.path.join(ROOT, "experiments", "reproduce.py"), *args],
                            capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    for name in ("report.md", "summary.json", "loss_fits.png", "scaling.png", "zsl_loss.png", "zsl_grad.png",
                 "zsl_null.png", "zsl_n.png"):
        assert (out / name).stat().st_size > 0, name
    summary = json.loads((out / "summary.json").read_text())
    assert [s["name"] for s in summary["sizes"]] == ["1x16", "1x32"]
    assert len(summary["findings"]) == 6 and all(isinstance(f["holds"], bool) for f in summary["findings"])
    assert (out / "runs" / "1x32" / "zsl.json").exists()
    assert [r["name"] for r in summary["timescale"]["runs"]] == ["1x16", "1x32"]     # timescale.py's lens
    assert (out / "timescale_runs.png").stat().st_size > 0 and "one-third" in (out / "report.md").read_text()
    assert [r["name"] for r in summary["error_entropy"]["sizes"]] == ["1x16", "1x32"]   # the error-entropy lens
    assert (out / "error_entropy_sizes.png").stat().st_size > 0 and "error-entropy lens" in (out / "report.md").read_text()
    # a second call reuses the finished runs instead of training again
    again = subprocess.run([sys.executable, os.path.join(ROOT, "experiments", "reproduce.py"), *args],
                           capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert again.returncode == 0 and "complete, reused" in again.stdout


@pytest.mark.parametrize("args, message", [
    (["--sizes=1x32"], "at least two sizes"),
    (["--sizes=1x32,big"], "n_layer x n_embd pairs"),
    (["--max_iters=0"], "--max_iters must be at least 1"),
    (["--probe_tokens=0"], "--probe_tokens must be at least 1"),
    (["--device=cuda"], "CUDA is not available"),
])
def test_bad_arguments_fail_before_any_training(tmp_path, args, message):
    result = subprocess.run([sys.executable, os.path.join(ROOT, "experiments", "reproduce.py"), *args, f"--out_dir={tmp_path}"],
                            capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert result.returncode != 0 and message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "runs").exists()


def test_a_run_with_other_settings_is_not_silently_reused(tmp_path):
    run = tmp_path / "runs" / "1x32"
    run.mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"train": {**vars(reproduce.train.TrainConfig()), "seed": 99}}))
    result = subprocess.run([sys.executable, os.path.join(ROOT, "experiments", "reproduce.py"), "--sizes=1x32,2x64",
                             f"--out_dir={tmp_path}"], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert result.returncode != 0 and "was trained with" in result.stderr, result.stderr


def test_fit_start_rule_against_a_brute_force_smoothing():
    steps = np.arange(1, 301)
    losses = np.where(steps < 60, 7.0, 5.0)  # a plateau above H1 = 6, then below it from step 60
    smoothed = [losses[(steps >= np.floor(s / 1.2)) & (steps <= s)].mean() for s in steps]
    s1 = next(s for s, value in zip(steps, smoothed) if value < 6.0)
    assert s1 > 60  # the smoothing delays the crossing
    assert reproduce.fit_start_rule(steps, losses, 6.0) == 2 * s1 - 1  # the fit keeps the steps >= 2 s1
    with pytest.raises(reproduce.bnsl.CurveError, match="never fell below the unigram entropy"):
        reproduce.fit_start_rule(steps, losses, 4.0)


def test_token_entropies_of_known_distributions(tmp_path):
    rng = np.random.default_rng(0)
    # independent tokens from p = (1/2, 1/4, 1/4): H1 = H2 = 1.5 ln 2; a strict cycle 0 1 2: H1 = ln 3, H2 = 0
    iid = rng.choice(3, size=200_000, p=[0.5, 0.25, 0.25])
    prepare.write_dataset(str(tmp_path / "iid"), iid, iid[:2000], {"vocab_size": 300, "level": "bpe"})
    H1, H2 = reproduce.token_entropies(str(tmp_path / "iid"))
    assert H1 == pytest.approx(1.5 * np.log(2), abs=3e-3) and H2 == pytest.approx(1.5 * np.log(2), abs=3e-3)
    cycle = np.tile([0, 1, 2], 1000)
    prepare.write_dataset(str(tmp_path / "cycle"), cycle, cycle, {"vocab_size": 256, "level": "byte"})
    H1, H2 = reproduce.token_entropies(str(tmp_path / "cycle"))
    assert H1 == pytest.approx(np.log(3), abs=1e-3) and abs(H2) < 1e-9


def test_octave_interference_pairs_each_record_with_the_first_at_or_after_twice_its_step(tmp_path):
    rng = np.random.default_rng(1)
    (tmp_path / "records").mkdir()
    probe = {}
    for step in (1, 2, 3, 5, 6, 8, 13):
        probe[step] = rng.normal(size=(2, 4)).astype(np.float32)
        np.savez(tmp_path / "records" / f"step_{step:06d}.npz", probe_before=probe[step], probe_after=probe[step],
                 train_before=probe[step], train_after=probe[step], step=np.int64(step), lr=np.float64(1e-3))
    rows = reproduce.octave_interference(str(tmp_path))
    assert [(s, s2) for s, s2, _ in rows] == [(1, 2), (2, 5), (3, 6), (5, 13), (6, 13)]
    for s, s2, D in rows:
        delta = (probe[s2] - probe[s]).astype(np.float64)
        assert D == pytest.approx(1 - abs(delta.sum()) / np.abs(delta).sum(), rel=1e-6)
    assert reproduce.around_deceleration_octave(rows, t_d=4) == pytest.approx(
        (np.mean([rows[0][2], rows[1][2]]), np.mean([rows[3][2], rows[4][2]])))


def test_tiny_end_to_end_report_on_a_bpe_dataset(tmp_path):
    """The default kind of data: a BPE dataset (a tiny one, from a standard-library file), fit window by the rule."""
    import json as json_module
    with open(json_module.decoder.__file__, encoding="utf-8") as f:
        text = f.read()
    (tmp_path / "text.txt").write_text(text * 4, encoding="utf-8")
    prepare.build_file_bpe(str(tmp_path / "text.txt"), str(tmp_path / "tiny_bpe300"), 300)
    out = tmp_path / "report"
    args = [f"--dataset={tmp_path / 'tiny_bpe300'}", "--sizes=1x16,1x32", "--max_iters=300", "--warmup_iters=8",
            "--block_size=16", "--batch_size=8", "--n_probe=8", "--probe_tokens=32", "--learning_rate=1e-2", "--ee_tokens=1024",
            f"--out_dir={out}"]
    result = subprocess.run([sys.executable, os.path.join(ROOT, "experiments", "reproduce.py"), *args],
                            capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    H1 = summary["entropies"]["H1"]
    assert 0 < summary["entropies"]["H2"] < H1 < np.log(300)
    report = (out / "report.md").read_text()
    assert "fit-window rule" in report and "tiny_bpe300" in report
    for size in summary["sizes"]:
        assert size["fit_start"] > 1 and size["octaves"]  # the rule picked a start; D with Δt = t was measured
