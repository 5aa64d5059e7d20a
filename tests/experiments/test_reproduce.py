"""reproduce.py: the findings' rules, and one tiny end-to-end run of the whole pipeline."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from experiments import reproduce
from experiments import seeds as seeds_view
from data import prepare
from support.cli import UsageError

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def size_row(L_d, r_d, ratio=3.0, supported=True, D_before=0.1, D_after=0.9, D_grad_after=0.95, name="s",
             excess_before=0.02, excess_after=0.005, t_d=600.0):
    return {"name": name, "L_d": L_d, "r_d": r_d, "rsle": 0.01, "rsle_power_law": 0.01 * ratio, "supported": supported,
            "warning": None if supported else "break 1 at step 57 lies outside the fitted steps 130..2048",
            "t_d": t_d if supported else None, "D_oct_before": D_before, "D_oct_after": D_after, "D_before": 0.9,
            "D_after": 0.9, "D_grad_before": 0.5, "D_grad_after": D_grad_after, "excess_before": excess_before,
            "excess_after": excess_after, "t_d_err": 20.0, "L_d_err": 0.01, "r_d_err": 0.001, "params": 12_000,
            "fit_start": 130, "L_T": L_d - 0.1}


def paper_rows(**last):
    """Three sizes in the paper's pattern; keyword arguments change the largest."""
    return [size_row(4.0, 0.01, name="1x32"), size_row(3.5, 0.02, name="2x64"),
            size_row(**{"L_d": 3.2, "r_d": 0.03, "name": "3x96", **last})]


def states(rows):
    return [v["state"] for v in reproduce.judge(rows)]


HOLDS, FAILS, NOT_JUDGED = reproduce.HOLDS, reproduce.FAILS, reproduce.NOT_JUDGED


def test_the_paper_pattern_holds_on_every_rule():
    verdicts = reproduce.judge(paper_rows())
    assert [v["state"] for v in verdicts] == [HOLDS] * 6
    assert all(v["holds"] is True and v["why"] is None for v in verdicts)
    assert "Reproduced (6 of 6)" in reproduce.plain(reproduce.conclusion(verdicts, paper_rows()))


def test_each_rule_can_fail_on_its_own():
    broken = {
        0: dict(ratio=1.5),            # a break that barely beats the power law
        1: dict(L_d=3.6),              # the largest model decelerates at a higher loss
        2: dict(r_d=0.015),            # the largest model improves more slowly after t_d
        3: dict(D_before=0.7),         # interference (Δt = t) already high before t_d
        4: dict(D_grad_after=0.5),     # little gradient opposition after t_d
        5: dict(excess_after=0.015),   # the excess alignment does not fall by half
    }
    for index, change in broken.items():
        verdicts = reproduce.judge(paper_rows(**change))
        assert [v["state"] for v in verdicts] == [FAILS if k == index else HOLDS for k in range(6)], (index, verdicts)
        assert verdicts[index]["holds"] is False and "3x96" in verdicts[index]["why"]
        text = reproduce.plain(reproduce.conclusion(verdicts, paper_rows(**change)))
        assert f"Not reproduced: {verdicts[index]['finding']} — {verdicts[index]['why']}." in text
        assert "Reproduced (5 of 6)" in text
        if index > 0:   # every break is supported: the deceleration reproduced, what happens at it did not
            assert f"Although every size decelerates, finding {index + 1} does not hold" in text


def test_without_a_supported_break_the_findings_at_t_d_are_not_judged_and_say_why():
    rows = paper_rows(supported=False)
    verdicts = reproduce.judge(rows)
    # finding 1 is judged (the break is part of it); 2-6 need L_d, r_d, t_d of a deceleration
    assert [v["state"] for v in verdicts] == [FAILS] + [NOT_JUDGED] * 5
    assert [v["holds"] for v in verdicts] == [False] + [None] * 5
    for v in verdicts[1:]:
        assert v["why"] == "3x96: no supported break (break 1 at step 57 lies outside the fitted steps 130..2048)"
    text = reproduce.plain(reproduce.conclusion(verdicts, rows))
    assert "Not judged: findings 2, 3, 4, 5 and 6, because 3x96: no supported break (break 1 at step 57" in text
    assert "the loss curve of 3x96 shows no deceleration" in text.lower()
    assert "evidence neither for nor against" in text
    report = "\n".join(reproduce.size_lines(rows, 3.0))
    assert "**break rejected**: break 1 at step 57 lies outside the fitted steps 130..2048" in report


def test_a_judged_size_that_breaks_a_rule_decides_it_even_if_another_size_is_not_judged():
    rows = [size_row(4.0, 0.01, name="1x32", D_before=0.7), size_row(3.5, 0.02, name="2x64"),
            size_row(3.2, 0.03, name="3x96", supported=False)]
    assert states(rows)[3] == FAILS                                   # 1x32 breaks finding 4
    rows[0]["L_d"] = 3.0                                              # L_d rises from 1x32 to 2x64: finding 2
    assert states(rows)[1:3] == [FAILS, NOT_JUDGED]                   # r_d still rises over the supported ones


def test_a_missing_measurement_around_t_d_is_not_judged():
    verdicts = reproduce.judge(paper_rows(D_before=None))            # no record octave ends by t_d/2
    assert verdicts[3]["state"] == NOT_JUDGED and "3x96: no measurement in an octave ending by t_d/2" in verdicts[3]["why"]
    assert [v["state"] for v in verdicts[4:]] == [HOLDS, HOLDS]


def test_parse_sizes_and_width_scaled_learning_rate():
    assert reproduce.parse_sizes("1x32, 2x64") == [(1, 32), (2, 64)]
    with pytest.raises(UsageError):
        reproduce.parse_sizes("1x32,big")

    class Args:
        learning_rate, lr_scaling = 3e-3, "width"
    assert reproduce.learning_rate_for(128, Args) == pytest.approx(1.5e-3)
    Args.lr_scaling = "none"
    assert reproduce.learning_rate_for(128, Args) == 3e-3


TINY = ["--dataset=stdlib", "--sizes=1x16,1x32", "--max_iters=64", "--warmup_iters=8", "--block_size=16",
        "--batch_size=8", "--probe_tokens=32", "--transient=2", "--ee_tokens=2048"]


def run_reproduce(*args):
    return subprocess.run([sys.executable, os.path.join(ROOT, "experiments", "reproduce.py"), *args],
                          capture_output=True, text=True, timeout=600, cwd=ROOT)


@pytest.fixture(scope="module")
def two_seeds(tmp_path_factory):
    """The whole pipeline on two tiny sizes and two seeds (its output is not a terminal)."""
    out = tmp_path_factory.mktemp("tiny") / "report"
    result = run_reproduce(*TINY, "--seeds=1337,2", f"--out_dir={out}")
    assert result.returncode == 0, result.stderr[-3000:]
    return out, result


def test_tiny_end_to_end_report(two_seeds):
    out, result = two_seeds
    for seed in ("1337", "2"):
        seed_out = out / f"seed_{seed}"
        for name in ("report.md", "summary.json", "loss_fits.png", "scaling.png", "zsl_loss.png", "zsl_grad.png",
                     "zsl_null.png", "zsl_n.png", "timescale_runs.png", "error_entropy_sizes.png"):
            assert (seed_out / name).stat().st_size > 0, name
            assert f"wrote {seed_out / name}\n" in result.stdout            # every file it writes, said
        summary = json.loads((seed_out / "summary.json").read_text())
        assert [s["name"] for s in summary["sizes"]] == ["1x16", "1x32"] and summary["args"]["seed"] == int(seed)
        assert len(summary["findings"]) == 6
        for finding in summary["findings"]:
            assert finding["state"] in (reproduce.HOLDS, reproduce.FAILS, reproduce.NOT_JUDGED)
            assert finding["holds"] == reproduce.HOLDS_AS_BOOL[finding["state"]]
            assert (finding["why"] is None) == (finding["state"] == reproduce.HOLDS)
        assert (seed_out / "runs" / "1x32" / "zsl.json").exists()
        assert [r["name"] for r in summary["timescale"]["runs"]] == ["1x16", "1x32"]     # timescale.py's lens
        assert [r["name"] for r in summary["error_entropy"]["sizes"]] == ["1x16", "1x32"]   # the error-entropy lens
        report = (seed_out / "report.md").read_text()
        assert report.index("## Conclusion") < report.index("## Findings") and "one-third" in report
        assert "error-entropy lens" in report
        for row in summary["sizes"]:   # each size's fit verdict, with the reason of a rejected one
            assert (f"- {row['name']}: break supported" in report if row["supported"]
                    else f"- {row['name']}: **break rejected**: {row['warning']}" in report)
    # the terminal run says what it chose, shows one line per phase (not a flood of bars in a file),
    # and ends with the conclusion, not the Markdown
    assert "4 jobs on 2 worker processes" in result.stdout or "4 jobs on 1 worker process" in result.stdout
    assert "\r" not in result.stderr and "1x32 seed 2: training done" in result.stderr
    assert result.stdout.rstrip().splitlines()[-1].startswith("What this means:")
    assert "**" not in result.stdout.split("wrote")[-1] and "| finding |" not in result.stdout


def test_two_seeds_are_seen_together(two_seeds, tmp_path):
    out, result = two_seeds
    together = json.loads((out / "summary.json").read_text())
    assert together["seeds"] == [1337, 2] and (out / "seeds.png").stat().st_size > 0
    per_seed = [json.loads((out / f"seed_{s}" / "summary.json").read_text()) for s in (1337, 2)]
    for index, finding in enumerate(together["findings"]):
        seed_states = [s["findings"][index]["state"] for s in per_seed]
        assert finding["k"] == seed_states.count("holds") and finding["n"] == 2
        assert finding["state"] == seeds_view.majority(seed_states)[0]
    size = together["sizes"][0]           # t_d, L_d, r_d: mean ± sd over the seeds whose break is supported
    supported = [s["sizes"][0] for s in per_seed if s["sizes"][0]["supported"]]
    assert size["supported"] == len(supported) and size["L_d"]["count"] == len(supported)
    if len(supported) == 2:
        assert size["L_d"]["mean"] == pytest.approx(np.mean([r["L_d"] for r in supported]))
        assert size["L_d"]["sd"] == pytest.approx(np.std([r["L_d"] for r in supported], ddof=1))
    report = (out / "report.md").read_text()
    assert "holds on" in report and "of 2 seeds" in report and "seed_1337" in report
    # the same view from the command line, on the two seeds' outputs
    view = subprocess.run([sys.executable, os.path.join(ROOT, "experiments", "seeds.py"), str(out / "seed_1337"), str(out / "seed_2"),
                           f"--out_dir={tmp_path / 'seeds'}"], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert view.returncode == 0, view.stderr
    assert f"wrote {tmp_path / 'seeds' / 'seeds.png'}" in view.stdout
    assert json.loads((tmp_path / "seeds" / "summary.json").read_text())["findings"] == together["findings"]
    bad = subprocess.run([sys.executable, os.path.join(ROOT, "experiments", "seeds.py"), str(out / "seed_1337"), str(out / "seed_1337"),
                          f"--out_dir={tmp_path / 'again'}"], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert bad.returncode != 0 and "given twice" in bad.stderr and "Traceback" not in bad.stderr


def test_a_finished_experiment_is_reused(two_seeds):
    out, _ = two_seeds
    again = run_reproduce(*TINY, "--seeds=1337,2", f"--out_dir={out}")
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stderr.count("complete, reused") == 4
    assert again.stderr.count("every checkpoint analysed before, reused") == 4


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
    result = subprocess.run([sys.executable, os.path.join(ROOT, "experiments", "reproduce.py"), "--sizes=1x32,2x64", "--seed=1337",
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
            "--seed=1337", "--transient=-1", f"--out_dir={out}"]
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


def test_the_gpu_preset_runs_at_tiny_size_on_the_cpu(tmp_path):
    """config/reproduce_gpu.txt (argparse's @file: one flag per line) with its sizes, steps and device
    overridden by later flags, so that every flag it sets is still accepted (it cannot rot)."""
    preset = os.path.join(ROOT, "config", "reproduce_gpu.txt")
    with open(preset) as f:
        flags = [line.strip() for line in f if line.strip()]
    assert {"--device=cuda", "--dataset=stdlib_bpe2048"} <= set(flags)
    args = reproduce.parse_args([f"@{preset}"])
    assert (args.sizes, args.max_iters, args.warmup_iters, args.device) == ("2x128,4x256,6x384", 8192, 500, "cuda")
    assert args.transient is None  # --transient=-1: the fit-window rule
    result = run_reproduce(f"@{preset}", *TINY, "--n_probe=8", "--device=cpu", "--seed=1337",
                           f"--out_dir={tmp_path}")
    assert result.returncode == 0, result.stderr[-3000:]
    with open(os.path.join(tmp_path, "summary.json")) as f:
        args = json.load(f)["args"]
    assert args["dataset"] == "stdlib" and args["max_iters"] == 64 and args["device"] == "cpu"  # overridden
