"""reproduce.py: the findings' rules, and one tiny end-to-end run of the whole pipeline."""
import json
import os
import subprocess
import sys

import pytest

import reproduce

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def size_row(L_d, r_d, ratio=3.0, supported=True, D_before=0.1, D_after=0.9, D_grad_after=0.95):
    return {"L_d": L_d, "r_d": r_d, "rsle": 0.01, "rsle_power_law": 0.01 * ratio, "supported": supported,
            "D_before": D_before, "D_after": D_after, "D_grad_before": 0.5, "D_grad_after": D_grad_after}


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
        3: dict(D_before=0.7),         # interference already high before t_d
        4: dict(D_grad_after=0.5),     # little gradient opposition after t_d
    }
    for index, change in broken.items():
        rows = paper[:2] + [size_row(**{"L_d": 3.2, "r_d": 0.03, **change})]
        result = verdicts(rows)
        assert result[index] is False and sum(result) == 4, (index, result)


def test_parse_sizes_and_width_scaled_learning_rate():
    assert reproduce.parse_sizes("1x32, 2x64") == [(1, 32), (2, 64)]
    with pytest.raises(reproduce.train.ConfigError):
        reproduce.parse_sizes("1x32,big")

    class Args:
        learning_rate, lr_scaling = 3e-3, "width"
    assert reproduce.learning_rate_for(128, Args) == pytest.approx(1.5e-3)
    Args.lr_scaling = "none"
    assert reproduce.learning_rate_for(128, Args) == 3e-3


def test_tiny_end_to_end_report(tmp_path):
    out = tmp_path / "report"
    args = ["--sizes=1x16,1x32", "--max_iters=64", "--warmup_iters=8", "--block_size=16", "--batch_size=8",
            "--probe_tokens=32", "--transient=2", f"--out_dir={out}"]
    result = subprocess.run([sys.executable, os.path.join(ROOT, "reproduce.py"), *args],
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
    again = subprocess.run([sys.executable, os.path.join(ROOT, "reproduce.py"), *args],
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
    result = subprocess.run([sys.executable, os.path.join(ROOT, "reproduce.py"), *args, f"--out_dir={tmp_path}"],
                            capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert result.returncode != 0 and message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "runs").exists()


def test_a_run_with_other_settings_is_not_silently_reused(tmp_path):
    run = tmp_path / "runs" / "1x32"
    run.mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"train": {**vars(reproduce.train.TrainConfig()), "seed": 99}}))
    result = subprocess.run([sys.executable, os.path.join(ROOT, "reproduce.py"), "--sizes=1x32,2x64",
                             f"--out_dir={tmp_path}"], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert result.returncode != 0 and "was trained with" in result.stderr, result.stderr
