"""Every bad input to bnsl.py, zsl.py and reproduce.py: one line that names the problem and the fix,
a non-zero exit, no traceback, and every file already in the run directory unchanged. Plus the
"never mix or vanish" cases of zsl.py and reproduce.py. One tiny real train.py run serves them all."""
import argparse
import json
import os
import shutil

import numpy as np
import pytest
import torch

import bnsl
from experiments import reproduce
import train
import zsl
from support import bnsl_cli, runfiles, zsl_cli
from guard_checks import assert_refused

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def tiny_run(tool_run):
    """conftest's 32-step run of a 1x16 model (records, 6 checkpoints, a probe of 2 x 16 tokens); the
    tests copy it before they damage it."""
    return tool_run[0]


def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb" if isinstance(data, bytes) else "w") as f:
        f.write(data)


def change_record(path, **arrays):
    record = dict(np.load(path))
    record.update(arrays)
    np.savez(path, **record)


# ---------------------------------------------------------------- bnsl.py

BNSL_CASES = {  # name: (damage(run) -> argv, what the message must name)
    "header only": (lambda r: write(f"{r}/log.csv", "step,loss,lr\n") or [r], "no data rows"),
    "not UTF-8": (lambda r: write(f"{r}/log.csv", b"step,loss\n1,\xff\xfe\n") or [r], "not UTF-8"),
    "NUL byte": (lambda r: write(f"{r}/log.csv", b"step,loss\n1,2\x00\n") or [r], "line 2"),
    "no header": (lambda r: write(f"{r}/log.csv", "1,5.0\n2,4.0\n") or [r], "header"),
    "unreadable row": (lambda r: write(f"{r}/log.csv", "step,loss\n1,5\nx,4\n") or [r], "line 3"),
    "nan loss": (lambda r: write(f"{r}/log.csv", "step,loss\n1,5\n2,nan\n") or [r], "diverged"),
    "unsorted": (lambda r: write(f"{r}/log.csv", "step,loss\n2,5\n1,4\n") or [r], "sort"),
    "log.csv missing": (lambda r: os.remove(f"{r}/log.csv") or [r], "no such file"),
    "log.csv a directory": (lambda r: os.remove(f"{r}/log.csv") or os.mkdir(f"{r}/log.csv") or [r],
                            "not a regular file"),
    "fractional steps": (lambda r: write(f"{r}/log.csv", "step,loss\n" + "".join(
        f"{s + 0.5},{5 - s / 100}\n" for s in range(1, 60))) or [r], "whole numbers"),
    "too few points": (lambda r: [r, "--transient=30"], "points left"),
    "transient drops all": (lambda r: [r, "--transient=500"], "smaller --transient"),
    "plot: unknown extension": (lambda r: [r, f"--plot={r}/fits.xyz"], "known extension"),
    "plot: no extension": (lambda r: [r, f"--plot={r}/fits"], "known extension"),
    "plot: empty": (lambda r: [r, "--plot="], "known extension"),
    "plot: a directory": (lambda r: os.mkdir(f"{r}/figure.png") or [r, f"--plot={r}/figure.png"],
                          "a directory"),
    "plot: no such directory": (lambda r: [r, f"--plot={r}/nope/fits.png"], "no directory"),
    "plot: inside a file": (lambda r: [r, f"--plot={r}/log.csv/fits.png"], "no directory"),
    "plot: the input": (lambda r: write(f"{r}/curve.png", open(f"{r}/log.csv").read()) or
                        [f"{r}/curve.png", f"--plot={r}/curve.png"], "input curve"),
    "negative transient": (lambda r: [r, "--transient=-1"], "--transient"),
    "bad breaks": (lambda r: [r, "--breaks=3"], "--breaks"),
    "unknown flag": (lambda r: [r, "--smoothing=lma"], "--smoothing"),
    "abbreviated flag": (lambda r: [r, "--trans=5"], "--trans"),
}


@pytest.mark.parametrize("case", BNSL_CASES)
def test_bnsl_bad_input(case, tiny_run, tmp_path, capsys):
    run = str(shutil.copytree(tiny_run, tmp_path / "run"))
    damage, expected = BNSL_CASES[case]
    argv = damage(run)
    assert_refused(capsys, bnsl_cli.main, argv, "bnsl.py", [expected], (run,))


# ---------------------------------------------------------------- zsl.py

def nan_checkpoint(run):
    path = f"{run}/checkpoints/step_000032.pt"
    checkpoint = torch.load(path, weights_only=False)
    checkpoint["model"]["wte.weight"][0, 0] = float("nan")
    torch.save(checkpoint, path)
    return [run]


def earlier_analysis(run, probe_tokens):
    assert zsl_cli.main([run, "--no_progress", "--threads=1", "--max_checkpoints=1",
                     f"--probe_tokens={probe_tokens}"]) == 0
    return [run, "--steps=8", "--probe_tokens=32"]


ZSL_CASES = {
    "missing": (lambda r: [r + "_nope"], "no such directory"),
    "no config": (lambda r: os.remove(f"{r}/config.json") or [r], "no config.json"),
    "config not JSON": (lambda r: write(f"{r}/config.json", "{not json") or [r], "unreadable"),
    "config not UTF-8": (lambda r: write(f"{r}/config.json", b"\xff\xfe{") or [r], "unreadable"),
    "config a list": (lambda r: write(f"{r}/config.json", "[1, 2]") or [r], "'train' and 'model'"),
    "nothing yet": (lambda r: shutil.rmtree(f"{r}/records") or shutil.rmtree(f"{r}/checkpoints") or [r],
                    "let train.py run longer"),
    "corrupt record": (lambda r: write(f"{r}/records/step_000003.npz", b"\0" * 10) or [r, "--no_grad"],
                       "step_000003.npz: unreadable"),
    "record: wrong shape": (lambda r: change_record(f"{r}/records/step_000004.npz",
                                                    train_after=np.zeros(16, np.float32)) or [r, "--no_grad"],
                            "train_after"),
    "record: wrong step": (lambda r: change_record(f"{r}/records/step_000004.npz", step=np.array(5)) or
                           [r, "--no_grad"], "not the single step of its name"),
    "records of two runs": (lambda r: change_record(f"{r}/records/step_000004.npz",
                                                    probe_before=np.zeros((3, 16), np.float32),
                                                    probe_after=np.zeros((3, 16), np.float32)) or
                            [r, "--no_grad"], "two runs"),
    "no probe": (lambda r: os.remove(f"{r}/probe.npz") or [r], "--no_grad"),
    "bad checkpoint": (lambda r: write(f"{r}/checkpoints/step_000002.pt", b"junk") or [r, "--steps=2"],
                       "unusable checkpoint"),
    "diverged checkpoint": (nan_checkpoint, "--steps=1,2,4,8,16"),
    "no such step": (lambda r: [r, "--steps=5"], "available: 1, 2, 4, 8, 16, 32"),
    "steps: not numbers": (lambda r: [r, "--steps=a,b"], "comma-separated"),
    "steps: empty": (lambda r: [r, "--steps="], "comma-separated"),
    "steps: zero": (lambda r: [r, "--steps=0"], "comma-separated"),
    "probe_tokens: not whole sequences": (lambda r: [r, "--probe_tokens=20"], "multiple of 16"),
    "probe_tokens: more than the val split": (lambda r: [r, "--probe_tokens=160000000"], "lower --probe_tokens"),
    "probe_tokens: zero": (lambda r: [r, "--probe_tokens=0"], "--probe_tokens must be >= 1"),
    "max_checkpoints: zero": (lambda r: [r, "--max_checkpoints=0"], "--max_checkpoints"),
    "fig_dir with one run": (lambda r: [r, f"--fig_dir={r}/figs"], "several runs"),
    "fig_dir a file": (lambda r: [r, r, f"--fig_dir={r}/log.csv"], "is a file"),
    "unknown flag": (lambda r: [r, "--no-grad"], "--no-grad"),
    "earlier zsl.json with other probe tokens": (lambda r: earlier_analysis(r, 16), "16 probe tokens"),
    "earlier zsl.json unreadable": (lambda r: write(f"{r}/zsl.json", "{trunc") or [r], "move it away"),
}


@pytest.mark.parametrize("case", ZSL_CASES)
def test_zsl_bad_input(case, tiny_run, tmp_path, capsys):
    run = str(shutil.copytree(tiny_run, tmp_path / "run"))
    damage, expected = ZSL_CASES[case]
    argv = damage(run) + ["--no_progress", "--threads=1"]
    capsys.readouterr()
    assert_refused(capsys, zsl_cli.main, argv, "zsl.py", [expected], (run,))


def test_zsl_rerun_never_destroys_a_wider_analysis(tiny_run, tmp_path, capsys):
    run = str(shutil.copytree(tiny_run, tmp_path / "run"))
    assert zsl_cli.main([run, "--no_progress", "--threads=1", "--steps=4,32"]) == 0
    wide = json.load(open(f"{run}/zsl.json"))["gradient_interference"]
    # records only: the gradient rows and their figures stay
    assert zsl_cli.main([run, "--no_progress", "--no_grad"]) == 0
    summary = json.load(open(f"{run}/zsl.json"))
    assert summary["gradient_interference"] == wide and summary["kept_rows"] == [4, 32]
    assert os.path.isfile(f"{run}/zsl_grad.png") and os.path.isfile(f"{run}/zsl_hist.png")
    # one more checkpoint: added to the two, not replacing them
    assert zsl_cli.main([run, "--no_progress", "--threads=1", "--steps=8"]) == 0
    rows = json.load(open(f"{run}/zsl.json"))["gradient_interference"]
    assert [r["step"] for r in rows] == [4, 8, 32] and rows[0] == wide[0] and rows[2] == wide[1]
    # a checkpoint rewritten since (say the run was started afresh): its row is dropped, not mixed
    shutil.copy(f"{run}/checkpoints/step_000001.pt", f"{run}/checkpoints/step_000032.pt")
    assert zsl_cli.main([run, "--no_progress", "--no_grad"]) == 0
    summary = json.load(open(f"{run}/zsl.json"))
    assert [r["step"] for r in summary["gradient_interference"]] == [4, 8]
    assert summary["stale_rows"] == [32] and "changed or gone" in capsys.readouterr().out
    # no gradient rows left at all: the old gradient figures go too
    for name in os.listdir(f"{run}/checkpoints"):
        os.remove(f"{run}/checkpoints/{name}")
    assert zsl_cli.main([run, "--no_progress", "--no_grad"]) == 0
    assert json.load(open(f"{run}/zsl.json"))["gradient_interference"] == []
    assert not os.path.exists(f"{run}/zsl_grad.png") and not os.path.exists(f"{run}/zsl_hist.png")


def test_zsl_uses_no_t_d_from_an_unsupported_fit(tiny_run, tmp_path, capsys):
    run = str(shutil.copytree(tiny_run, tmp_path / "run"))
    steps = np.arange(1, 33)
    write(f"{run}/log.csv", "step,loss\n" + "".join(f"{s},{5.5 * s ** -0.1}\n" for s in steps))
    fit = bnsl.fit_bnsl(*bnsl.prepare_curve(*bnsl.load_curve(run)))
    assert not fit["supported"] and fit["t_d"] is not None     # the fit has a d1, but no deceleration
    assert runfiles.deceleration_step(run) is None
    assert zsl_cli.main([run, "--no_progress", "--no_grad"]) == 0
    assert json.load(open(f"{run}/zsl.json"))["t_d"] is None
    assert "no supported deceleration" in capsys.readouterr().out


def test_zsl_plots_a_run_without_records_or_with_a_diverged_one(tiny_run, tmp_path, capsys):
    empty = str(shutil.copytree(tiny_run, tmp_path / "empty"))
    shutil.rmtree(f"{empty}/records")
    assert zsl_cli.main([empty, "--no_progress", "--threads=1", "--steps=2"]) == 0
    assert not os.path.exists(f"{empty}/zsl_loss.png") and os.path.isfile(f"{empty}/zsl_grad.png")
    diverged = str(shutil.copytree(tiny_run, tmp_path / "diverged"))
    for step in (13, 15):
        path = f"{diverged}/records/step_{step:06d}.npz"
        change_record(path, probe_after=np.load(path)["probe_after"] * np.inf)
    assert zsl_cli.main([diverged, "--no_progress", "--no_grad"]) == 0
    assert "left out record(s) 13, 15" in capsys.readouterr().out
    summary = json.load(open(f"{diverged}/zsl.json"))
    assert 13 not in [r["step"] for r in summary["loss_interference"]]
    assert os.path.getsize(f"{diverged}/zsl_loss.png") > 1000


def test_zsl_ignores_a_stray_step_file(tiny_run, tmp_path):
    run = str(shutil.copytree(tiny_run, tmp_path / "run"))
    write(f"{run}/records/step_000004 (copy).npz", b"")
    write(f"{run}/records/step_x.npz", b"")
    assert len(zsl.loss_interference(run)) == len(zsl.loss_interference(tiny_run))


# ---------------------------------------------------------------- reproduce.py

SMALL = ["--sizes=1x16,1x32", "--max_iters=64", "--warmup_iters=8", "--block_size=16", "--batch_size=4", "--transient=2",
         "--probe_tokens=32"]


def size_dir(out, name="1x16"):
    return os.path.join(out, "runs", name)


REPRODUCE_CASES = {  # damage(out, tiny_run) -> argv
    "one size": (lambda o, r: ["--sizes=1x32"], "at least two sizes"),
    "size not NxM": (lambda o, r: ["--sizes=1x32,big"], "n_layer x n_embd"),
    "a size twice": (lambda o, r: ["--sizes=1x32,1x32"], "twice"),
    "sizes out of order": (lambda o, r: ["--sizes=2x64,1x32"], "smallest"),
    "max_iters zero": (lambda o, r: ["--max_iters=0"], "--max_iters must be at least 1"),
    "learning rate negative": (lambda o, r: ["--learning_rate=-1"], "--learning_rate"),
    "batch_size zero": (lambda o, r: ["--batch_size=0"], "--batch_size"),
    "probe_tokens zero": (lambda o, r: ["--probe_tokens=0"], "--probe_tokens must be at least 1"),
    "ee_tokens below one sequence": (lambda o, r: ["--ee_tokens=10"], "--ee_tokens must be at least one sequence"),
    "probe_tokens not whole sequences": (lambda o, r: ["--probe_tokens=100"], "multiple of 64"),
    "probe_tokens more than the probe": (lambda o, r: ["--probe_tokens=4096"], "up to 2048"),
    "transient negative": (lambda o, r: ["--transient=-2"], "--transient"),
    "transient too large": (lambda o, r: ["--transient=6100"], "lower --transient"),
    "device unknown": (lambda o, r: ["--device=tpu"], "--device"),
    "device cuda missing": (lambda o, r: ["--device=cuda"], "CUDA is not available"),
    "lr_scaling unknown": (lambda o, r: ["--lr_scaling=depth"], "--lr_scaling"),
    "seed not a number": (lambda o, r: ["--seed=abc"], "--seed"),
    "unknown flag": (lambda o, r: ["--iters=5"], "--iters"),
    "out_dir empty": (lambda o, r: ["--out_dir="], "--out_dir is empty"),
    "out_dir a file": (lambda o, r: [f"--out_dir={o}/report.md"], "is a file"),
    "runs a file": (lambda o, r: shutil.rmtree(f"{o}/runs") or write(f"{o}/runs", "x") or [], "is a file"),
    "size dir a file": (lambda o, r: shutil.rmtree(size_dir(o)) or write(size_dir(o), "x") or SMALL,
                        "not a run directory"),
    "size config not JSON": (lambda o, r: write(f"{size_dir(o)}/config.json", "{trunc") or SMALL,
                             "delete"),
    "size config not UTF-8": (lambda o, r: write(f"{size_dir(o)}/config.json", b"\xff{") or SMALL,
                              "delete"),
    "size config a list": (lambda o, r: write(f"{size_dir(o)}/config.json", "[]") or SMALL, "delete"),
    "size config without train": (lambda o, r: write(f"{size_dir(o)}/config.json", "{}") or SMALL,
                                  "delete"),
    "size without config": (lambda o, r: os.remove(f"{size_dir(o)}/config.json") or SMALL,
                            "no config.json"),
    "size with other settings": (lambda o, r: SMALL + ["--seed=2"], "was trained with seed"),
}


@pytest.mark.parametrize("case", REPRODUCE_CASES)
def test_reproduce_bad_input(case, tiny_run, tmp_path, capsys, monkeypatch):
    # A report directory whose 1x16 run is our tiny run (trained with other settings).
    out = str(tmp_path / "report")
    shutil.copytree(tiny_run, size_dir(out))
    write(f"{out}/report.md", "# an earlier report\n")
    damage, expected = REPRODUCE_CASES[case]
    argv = damage(out, tiny_run)
    argv = argv + ([f"--out_dir={out}"] if not any(a.startswith("--out_dir") for a in argv) else [])
    # one seed (the tiny run's layout, out/runs/<size>), in this process (where train is replaced)
    argv += ([] if any(a.startswith("--seed") for a in argv) else ["--seed=1337"]) + ["--jobs=1"]
    if case == "size with other settings":   # make the tiny run the same experiment but for the seed
        size = reproduce.size_config(size_dir(out) + "_fresh", 1, 16, reproduce_args())
        saved = json.load(open(f"{size_dir(out)}/config.json"))
        saved["train"] = {**vars(size), "out_dir": size_dir(out)}
        write(f"{size_dir(out)}/config.json", json.dumps(saved))
    monkeypatch.setattr(train, "train", lambda *a, **k: pytest.fail("trained despite a bad input"))
    assert_refused(capsys, reproduce.main, argv, "reproduce.py", [expected], (out,))


def reproduce_args(**changes):
    """What reproduce.main's parser gives size_config for SMALL (and changes)."""
    return argparse.Namespace(**{**reproduce.DEFAULTS, "lr_scaling": "width", "device": "auto",
                                 "max_iters": 64, "warmup_iters": 8, "block_size": 16, "batch_size": 4,
                                 "probe_tokens": 32,
                                 **changes})


def test_reproduce_ctrl_c_exits_130_and_leaves_a_directory_a_rerun_accepts(tmp_path, capsys, monkeypatch):
    out = str(tmp_path / "report")
    interrupted = []

    def interrupted_train(config, given=frozenset()):   # as train.py does on Ctrl-C: a partial run
        os.makedirs(os.path.join(config.out_dir, "checkpoints"))
        write(os.path.join(config.out_dir, "config.json"),
              json.dumps({"train": vars(config), "model": {}, "non_embedding_params": 1}))
        interrupted.append(config.out_dir)
        return True
    monkeypatch.setattr(train, "train", interrupted_train)
    status = reproduce.main(SMALL + ["--seed=1337", "--jobs=1", f"--out_dir={out}"])  # here, where train is replaced
    assert status == 130 and "interrupted" in capsys.readouterr().err
    # the rerun accepts what was left: the size that died before its first checkpoint starts afresh
    n_layer, n_embd = map(int, os.path.basename(interrupted[0]).split("x"))
    config = reproduce.size_config(interrupted[0], n_layer, n_embd, reproduce_args())
    assert config.overwrite and not config.resume
