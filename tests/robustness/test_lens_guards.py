"""Every bad input to the lenses (error_entropy.py, timescale.py), bench.py, and the flags zsl.py, train.py
and reproduce.py gained: one row per case, each a single line that names the problem and the fix, a
non-zero exit, no traceback, and every file of the run and of its dataset unchanged (sha256 before and
after). main() is called in-process; one tiny real run serves every row (conftest.py)."""
import argparse
import json
import os
import shutil

import numpy as np
import pytest
import torch

from experiments import bench, error_entropy, reproduce, timescale_report
import train
from support import zsl_cli
from data import prepare
from guard_checks import assert_one_line_error, assert_refused, hashes, point_at, private_copy, run_main

EE = ["--tokens=64", "--context=16", "--no_progress", "--threads=1"]   # every error_entropy.py row's flags


@pytest.fixture(scope="module")
def analysed_run(tool_run, tmp_path_factory):
    """The tool run with an earlier error_entropy.py analysis of all its checkpoints (EE's flags)."""
    run_dir = str(tmp_path_factory.mktemp("analysed") / "run")
    shutil.copytree(tool_run[0], run_dir)
    assert error_entropy.main([run_dir, *EE]) == 0
    return run_dir


def write(path, content):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb" if isinstance(content, bytes) else "w") as f:
        f.write(content)
    return path


def rebuild_from_other_text(data, tmp):
    """The dataset rebuilt in place from other text (the same size: only the tokens differ)."""
    train_tokens, val_tokens, meta = prepare.load_dataset(data)
    for name, tokens in (("train.bin", train_tokens), ("val.bin", val_tokens)):
        changed = np.array(tokens)[::-1].copy()
        write(os.path.join(data, name), changed.tobytes())


def nan_weights_everywhere(run):
    for name in os.listdir(f"{run}/checkpoints"):
        ckpt = torch.load(f"{run}/checkpoints/{name}", weights_only=False)
        ckpt["model"]["wte.weight"][0, 0] = float("nan")
        torch.save(ckpt, f"{run}/checkpoints/{name}")


def second_run_on_other_data(run, data, tmp):
    """A copy of the run whose dataset is another one (a char-level dataset of other text)."""
    other_run, other_data = str(tmp / "other_run"), str(tmp / "other_data")
    shutil.copytree(run, other_run)
    shutil.copytree(data, other_data)
    rebuild_from_other_text(other_data, tmp)
    config = json.load(open(f"{other_run}/config.json"))
    config["train"]["dataset"], config["data_fingerprint"] = other_data, prepare.fingerprint(other_data)
    write(f"{other_run}/config.json", json.dumps(config))
    return [run, other_run]


# ---------------------------------------------------------------- error_entropy.py

EE_CASES = {  # name: (setup(run, data, tmp) -> argv, the pieces of the one line)
    "no arguments": (lambda r, d, t: [], ["required: RUN_DIR", "--help"]),
    "no such run": (lambda r, d, t: [r + "_nope"], ["no such directory", "--out_dir of a train.py run"]),
    "no config.json": (lambda r, d, t: os.remove(f"{r}/config.json") or [r], ["no config.json"]),
    "a file for the run": (lambda r, d, t: [f"{r}/log.csv"], ["a file, not a run directory", "--out_dir"]),
    "config.json not JSON": (lambda r, d, t: write(f"{r}/config.json", "{trunc") and [r], ["unreadable", "re-run"]),
    "no checkpoints": (lambda r, d, t: shutil.rmtree(f"{r}/checkpoints") or [r], ["no checkpoints", "run longer"]),
    "damaged checkpoint": (lambda r, d, t: write(f"{r}/checkpoints/step_000004.pt", b"junk") and [r],
                           ["step_000004.pt: unusable checkpoint", "delete it"]),
    "dataset rebuilt from other text": (lambda r, d, t: rebuild_from_other_text(d, t) or [r],
                                        ["changed since the run trained on it", "restore that data"]),
    "dataset gone": (lambda r, d, t: shutil.rmtree(d) or [r], ["no dataset in", "data/prepare.py"]),
    "dataset a relative path from elsewhere": (lambda r, d, t: point_at(r, "./nowhere/data") or [r],
                                               ["relative path './nowhere/data'", "where train.py ran"]),
    "dataset damaged": (lambda r, d, t: write(f"{d}/meta.json", "{") and [r], ["not readable JSON", "rebuild it"]),
    "tokens beyond the val split": (lambda r, d, t: [r, "--tokens=10000000"], ["too few", "use --tokens="]),
    "context beyond block_size": (lambda r, d, t: [r, "--context=64", "--tokens=640"],
                                  ["block_size is 16", "--context=16"]),
    "tokens below one window": (lambda r, d, t: [r, "--tokens=8"], ["less than one window", "--context=16"]),
    "tokens zero": (lambda r, d, t: [r, "--tokens=0"], ["--tokens must be >= 1"]),
    "tokens not a number": (lambda r, d, t: [r, "--tokens=many"], ["--tokens", "invalid int"]),
    "threads zero": (lambda r, d, t: [r, "--threads=0"], ["--threads must be between 1 and"]),
    "threads 100000": (lambda r, d, t: [r, "--threads=100000"], ["--threads must be between 1 and"]),
    "max_checkpoints zero": (lambda r, d, t: [r, "--max_checkpoints=0"], ["--max_checkpoints must be >= 1"]),
    "transient negative": (lambda r, d, t: [r, "--transient=-1"], ["--transient must be >= 0"]),
    "fig_dir with one run": (lambda r, d, t: [r, f"--fig_dir={t}"], ["--fig_dir", "several runs"]),
    "fig_dir a file": (lambda r, d, t: [r, r, f"--fig_dir={r}/log.csv"], ["is a file", "give a directory"]),
    "fig_dir under a file": (lambda r, d, t: [r, r, f"--fig_dir={r}/log.csv/figures"],
                             ["cannot create --fig_dir", "is a file", "pick another --fig_dir"]),
    "two runs on different data": (second_run_on_other_data, ["different datasets", "one at a time"]),
    "unknown flag": (lambda r, d, t: [r, "--tokenz=64"], ["unrecognized arguments: --tokenz=64"]),
    "abbreviated flag": (lambda r, d, t: [r, "--tok=64"], ["unrecognized arguments: --tok=64"]),
    "a narrower rerun": (lambda r, d, t: [r, "--max_checkpoints=2"],
                         ["holds an analysis of 6 checkpoints", "would drop checkpoint(s) 2, 4, 8, 16", "--overwrite"]),
    "a rerun on other tokens": (lambda r, d, t: [r, "--tokens=128"],
                                ["would evaluate other tokens", "--tokens=64 --context=16", "--overwrite"]),
    "a rerun with another transient": (lambda r, d, t: [r, "--transient=3"],
                                       ["--transient=3, not 10", "--overwrite"]),
    "error_entropy.json of the user's": (lambda r, d, t: write(f"{r}/error_entropy.json", '{"mine": 1}') and [r],
                                         ["not an analysis error_entropy.py wrote", "--overwrite"]),
    "error_entropy.png a directory": (lambda r, d, t: os.remove(f"{r}/error_entropy.png") or
                                      os.mkdir(f"{r}/error_entropy.png") or [r], ["is in the way", "move it away"]),
    "every checkpoint diverged": (lambda r, d, t: nan_weights_everywhere(r) or [r, "--overwrite"],
                                  ["every checkpoint has nan or inf weights", "smaller --learning_rate"]),
    "run in use by a writer": (lambda r, d, t: [r], ["is in use by another", "wait for it to finish"]),
}


@pytest.mark.parametrize("case", EE_CASES)
def test_error_entropy_bad_input(case, tool_run, analysed_run, tmp_path, capsys):
    run_dir, data_dir = private_copy(tool_run, tmp_path, run_from=analysed_run)
    setup, pieces = EE_CASES[case]
    argv = setup(run_dir, data_dir, tmp_path)
    argv = EE + argv if argv else argv  # (the case's own flags come last: they win)
    assert_refused(capsys, error_entropy.main, argv, "error_entropy.py", pieces, (run_dir, data_dir),
                   locked=run_dir if case == "run in use by a writer" else None)


# ---------------------------------------------------------------- timescale.py

def log_rows(run, rows, header="step,loss,lr,tokens,time_s"):
    write(f"{run}/log.csv", header + "\n" + "".join(",".join(map(str, row)) + "\n" for row in rows))


def fifo(path):
    os.mkfifo(path)
    return path


TS_CASES = {  # name: (setup(run, tmp) -> argv, pieces)
    "no such run": (lambda r, t: [r + "_nope"], ["no such directory", "--out_dir of a train.py run"]),
    "no log.csv": (lambda r, t: os.remove(f"{r}/log.csv") or [r], ["no log.csv"]),
    "a file for the run": (lambda r, t: [f"{r}/config.json"], ["a file, not a run directory", "--out_dir"]),
    "log.csv not UTF-8": (lambda r, t: write(f"{r}/log.csv", b"step,loss,lr\n1,\xff,1\n") and [r],
                          ["not UTF-8", "save it as a UTF-8"]),
    "log.csv with a NUL byte": (lambda r, t: write(f"{r}/log.csv", b"step,loss,lr\n1,2\x00,1\n") and [r],
                                ["line 2", "fix or delete that line"]),
    "log.csv without lr": (lambda r, t: log_rows(r, [(s, 4 / s) for s in range(1, 40)], "step,loss") or [r],
                           ["'step', 'loss' and 'lr'"]),
    "unreadable row": (lambda r, t: log_rows(r, [(1, 4, 1e-3), ("x", 3, 1e-3)], "step,loss,lr") or [r],
                       ["line 3", "fix or delete that line"]),
    "nan loss": (lambda r, t: log_rows(r, [(s, "nan" if s == 5 else 4 / s, 1e-3) for s in range(1, 40)],
                                       "step,loss,lr") or [r], ["diverged"]),
    "zero loss": (lambda r, t: log_rows(r, [(s, 0 if s == 5 else 4 / s, 1e-3) for s in range(1, 40)],
                                        "step,loss,lr") or [r], ["losses must be positive"]),
    "negative lr": (lambda r, t: log_rows(r, [(s, 4 / s, -1e-3) for s in range(1, 40)], "step,loss,lr") or [r],
                    ["learning rates must be finite and >= 0"]),
    "a step missing": (lambda r, t: log_rows(r, [(s, 4 / s, 1e-3) for s in range(1, 40) if s != 7],
                                             "step,loss,lr") or [r], ["none missing"]),
    "no probe.npz": (lambda r, t: os.remove(f"{r}/probe.npz") or [r], ["no probe.npz", "logit scale"]),
    "plot without extension": (lambda r, t: [r, f"--plot={t}/fig"], ["known extension"]),
    "plot /dev/null": (lambda r, t: [r, "--plot=/dev/null"], ["known extension"]),
    "plot a pipe": (lambda r, t: [r, f"--plot={fifo(str(t / 'pipe.png'))}"], ["not a regular file"]),
    "plot a directory": (lambda r, t: os.mkdir(t / "fig.png") or [r, f"--plot={t / 'fig.png'}"], ["a directory"]),
    "plot in no directory": (lambda r, t: [r, f"--plot={t}/nowhere/fig.png"], ["no directory", "existing directory"]),
    "unknown flag": (lambda r, t: [r, "--jsn"], ["unrecognized arguments: --jsn"]),
    "toy: control temperature negative": (lambda r, t: ["toy", "--control_temperature=-1"],
                                          ["--control_temperature must be a positive number, or 0"]),
    "toy: too few steps": (lambda r, t: ["toy", "--steps=5"], ["--steps=5", "at least 20"]),
    "toy: negative seed": (lambda r, t: ["toy", "--seed=-1"], ["--seed must be between 0"]),
    "toy: lr nan": (lambda r, t: ["toy", "--lr=nan"], ["--lr must be a positive number"]),
    "toy: temperature zero": (lambda r, t: ["toy", "--temperature=0"], ["--temperature must be a positive"]),
    "toy: vocab one": (lambda r, t: ["toy", "--vocab=1"], ["--vocab must be at least 2"]),
    "toy: unknown optimizer": (lambda r, t: ["toy", "--optimizer=lion"], ["--optimizer", "invalid choice"]),
    "toy: plot in no directory": (lambda r, t: ["toy", f"--plot={t}/nowhere/toy.png"], ["no directory"]),
    "toy: plot without extension": (lambda r, t: ["toy", f"--plot={t}/toy"], ["known extension"]),
}


@pytest.mark.parametrize("case", TS_CASES)
def test_timescale_bad_input(case, tool_run, tmp_path, capsys):
    run_dir, data_dir = private_copy(tool_run, tmp_path)
    setup, pieces = TS_CASES[case]
    argv = setup(run_dir, tmp_path) + ["--no_progress"]
    before = hashes(run_dir, data_dir, str(tmp_path))
    status, err, _ = run_main(timescale_report.main, argv, capsys)
    assert_one_line_error(status, err, "timescale.py toy" if argv[0] == "toy" and "invalid" in err else "timescale.py",
                          pieces)   # (argparse's errors of the toy name its sub-command)
    assert hashes(run_dir, data_dir, str(tmp_path)) == before, f"{case}: a file changed"


# ---------------------------------------------------------------- bench.py

BENCH_CASES = {
    "unknown section": (["trian"], ["unknown section 'trian'", "choose from train, record"]),
    "threads zero": (["--threads=0", "bnsl"], ["--threads must be between 1 and"]),
    "threads 100000": (["--threads=100000", "bnsl"], ["--threads must be between 1 and"]),
    "threads not a number": (["--threads=all"], ["--threads", "invalid int"]),
    "unknown flag": (["--fast"], ["unrecognized arguments: --fast"]),
}


@pytest.mark.parametrize("case", BENCH_CASES)
def test_bench_bad_input(case, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    argv, pieces = BENCH_CASES[case]
    status, err, out = run_main(bench.main, argv, capsys)
    assert_one_line_error(status, err, "bench.py", pieces)
    assert out == "" and os.listdir(tmp_path) == [], "ran a section despite the bad input"


def test_bench_help_prints_help(capsys):
    status, err, out = run_main(bench.main, ["--help"], capsys)
    assert status == 0 and err == "" and out.startswith("usage: bench.py") and "zsl_processes" in out


# ---------------------------------------------------------------- zsl.py: the flags and guards it gained

ZSL_CASES = {
    "threads zero": (lambda r: [r, "--threads=0"], ["--threads must be between 1 and"]),
    "threads 100000": (lambda r: [r, "--threads=100000"], ["--threads must be between 1 and"]),
    "hist_step zero": (lambda r: [r, "--hist_step=0"], ["--hist_step must be a checkpoint step >= 1"]),
    "steps with no_grad": (lambda r: [r, "--no_grad", "--steps=4"], ["--steps is for the gradient analysis",
                                                                     "--no_grad"]),
    "rows of another n_signs": (lambda r: earlier_zsl(r, "--n_signs=2") + ["--n_signs=0"],
                                ["2 sign patterns", "this analysis would use", "--overwrite"]),
    "rows of other subsets": (lambda r: earlier_zsl(r, "--subsets=none") + ["--subsets=8"],
                              ["D against N at N = 32", "--subsets", "--overwrite"]),
    "dataset rebuilt, a larger probe": (lambda r: rebuild_from_other_text(dataset_of(r), None) or
                                        [r, "--steps=2", "--probe_tokens=64"],
                                        ["changed since the run trained on it", "restore that data"]),
    "run in use by a writer": (lambda r: [r, "--no_grad"], ["is in use by another", "wait for it to finish"]),
    "a file for the run": (lambda r: [f"{r}/probe.npz", "--no_grad"], ["a file, not a run directory"]),
    "zsl.json a directory": (lambda r: os.mkdir(f"{r}/zsl.json") or [r, "--no_grad"], ["is in the way", "move it away"]),
    "fig_dir under a file": (lambda r: [r, r, "--no_grad", f"--fig_dir={r}/log.csv/figures"],
                             ["cannot create --fig_dir", "pick another --fig_dir"]),
}


def dataset_of(run):
    return json.load(open(f"{run}/config.json"))["train"]["dataset"]


def earlier_zsl(run, *flags):
    assert zsl_cli.main([run, "--no_progress", "--threads=1", "--steps=2", "--no_update", *flags]) == 0
    return [run, "--steps=4", "--no_update"]


@pytest.mark.parametrize("case", ZSL_CASES)
def test_zsl_bad_input(case, tool_run, tmp_path, capsys):
    run_dir, data_dir = private_copy(tool_run, tmp_path)
    setup, pieces = ZSL_CASES[case]
    argv = ["--no_progress", "--threads=1"] + setup(run_dir)   # (the case's own flags come last: they win)
    assert_refused(capsys, zsl_cli.main, argv, "zsl.py", pieces, (run_dir, data_dir),
                   locked=run_dir if case == "run in use by a writer" else None)


# ---------------------------------------------------------------- train.py and its flags (configurator.py)

def preset(tmp, text, name="preset.py"):
    return write(str(tmp / name), text)


TRAIN_CASES = {  # setup(run, data, tmp) -> argv; a fresh run would go to tmp/new, which must never appear
    "threads 100000": (lambda r, d, t: ["--threads=100000"], ["--threads must be between 0 and", "0 lets torch"]),
    "threads negative": (lambda r, d, t: ["--threads=-1"], ["--threads must be between 0 and"]),
    "warm-up as long as the run": (lambda r, d, t: ["--warmup_iters=40", "--max_iters=40"],
                                   ["--warmup_iters=40 is not below --max_iters=40", "shorter --warmup_iters"]),
    "warm-up longer than the run": (lambda r, d, t: ["--max_iters=50"], ["--warmup_iters=100 is not below"]),
    "warm-up longer, from a preset": (lambda r, d, t: [preset(t, "max_iters = 10\n"), "--warmup_iters=20"],
                                      ["--warmup_iters=20 is not below --max_iters=10"]),
    "a single dash": (lambda r, d, t: ["-n_layer=3"], ["neither a flag nor a config file", "--n_layer=3"]),
    "a flag and its value apart": (lambda r, d, t: ["--n_layer", "3"], ["--n_layer needs a value", "--n_layer=VALUE"]),
    "a preset without its extension": (lambda r, d, t: [str(t / "preset")] if preset(t, "n_layer = 1\n") else [],
                                       ["does not exist", "did you mean", "preset.py"]),
    "a preset with an unknown key": (lambda r, d, t: [preset(t, "n_layr = 1\n")],
                                     ["preset.py': unknown flag --n_layr", "--n_layer"]),
    "a preset with a wrong type": (lambda r, d, t: [preset(t, "n_layer = 'two'\n")],
                                   ["preset.py': --n_layer takes an int"]),
}


@pytest.mark.parametrize("case", TRAIN_CASES)
def test_train_bad_flags(case, tool_run, tmp_path, capsys):
    run_dir, data_dir = private_copy(tool_run, tmp_path)
    setup, pieces = TRAIN_CASES[case]
    argv = setup(run_dir, data_dir, tmp_path) + [f"--dataset={data_dir}", f"--out_dir={tmp_path / 'new'}",
                                                 "--progress=false"]
    assert_refused(capsys, train.main, argv, "train.py", pieces, (run_dir, data_dir))
    assert not os.path.exists(tmp_path / "new")


def test_help_wins_wherever_it_stands(capsys):
    status, err, out = run_main(train.main, ["--n_layr=3", "--help"], capsys)
    assert status == 0 and "--threads=0" in out and err == ""


# ---------------------------------------------------------------- reproduce.py: the data it reuses and needs

SMALL = ["--sizes=1x16,1x32", "--max_iters=64", "--warmup_iters=8", "--block_size=16", "--batch_size=4",
         "--n_probe=2", "--probe_tokens=32", "--ee_tokens=64", "--transient=2", "--seed=1337", "--jobs=1"]


def reproduce_dir(tool_run, tmp):
    """A report directory whose 1x16 run is the tool run, made the same experiment as SMALL asks for."""
    out, data = str(tmp / "report"), str(tmp / "data")
    shutil.copytree(tool_run[1], data)
    run = os.path.join(out, "runs", "1x16")
    shutil.copytree(tool_run[0], run)
    small = argparse.Namespace(**{**reproduce.DEFAULTS, "lr_scaling": "width", "device": "auto", "max_iters": 64,
                                  "warmup_iters": 8, "block_size": 16, "batch_size": 4, "n_probe": 2,
                                  "probe_tokens": 32, "dataset": data})
    config = reproduce.size_config(run + "_fresh", 1, 16, small)   # what SMALL asks of the 1x16 size
    saved = json.load(open(f"{run}/config.json"))
    saved["train"] = {**vars(config), "out_dir": run}
    write(f"{run}/config.json", json.dumps(saved))
    return out, data


REPRODUCE_CASES = {
    "dataset rebuilt since a run": (lambda o, d, t: rebuild_from_other_text(d, t) or [],
                                    ["trained on other tokens", "restore it, or use another --out_dir"]),
    "ee_tokens beyond the val split": (lambda o, d, t: ["--ee_tokens=100000000"],
                                       ["too few for --ee_tokens=100000000", "use --ee_tokens="]),
    "held-out windows beyond the val split": (lambda o, d, t: shutil.rmtree(f"{o}/runs") or ["--n_probe=100000"],
                                              ["too few for --n_probe + --batch_size"]),
    "warm-up longer than the run": (lambda o, d, t: ["--warmup_iters=64"], ["--warmup_iters=64 is not below"]),
}


@pytest.mark.parametrize("case", REPRODUCE_CASES)
def test_reproduce_checks_the_data_before_training(case, tool_run, tmp_path, capsys, monkeypatch):
    out, data = reproduce_dir(tool_run, tmp_path)
    setup, pieces = REPRODUCE_CASES[case]
    argv = SMALL + [f"--dataset={data}", f"--out_dir={out}"] + setup(out, data, tmp_path)
    monkeypatch.setattr(train, "train", lambda *a, **k: pytest.fail("trained despite a bad input"))
    assert_refused(capsys, reproduce.main, argv, "reproduce.py", pieces, (out, data))
