"""The tools as trustworthy as train.py, one test (or a few) per kind of failure:

  nothing mixed, nothing lost   a run's data checked by fingerprint wherever it is read; a relative
                                --dataset found from anywhere; a narrower rerun never destroys a wider
                                analysis; a run's files known by content; the analyses hold the run's
                                lock; results written whole, together
  never silently wrong          a curve that is no power law is said to be one; the command line wins
                                over a preset; a warm-up that leaves no run; diverged checkpoints
  one line, before any work     a full disk during a checkpoint; a closed pipe; Ctrl-C while loading;
                                the caller's own flag named; --threads everywhere

Most call main() in-process on one tiny run (conftest.py); what only a real process shows (a write the
kernel refuses, a closed pipe, Ctrl-C, a second process holding the lock) runs one."""
import errno
import json
import os
import resource
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from experiments import error_entropy, timescale_report
import train
from support import zsl_cli
from data import prepare
from guard_checks import hashes, private_copy, run_main
from support import files, rundir

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EE = ["--tokens=64", "--context=16", "--no_progress", "--threads=1"]
TINY = ["--n_layer=1", "--n_head=2", "--n_embd=32", "--block_size=16", "--batch_size=8", "--n_probe=4",
        "--warmup_iters=2", "--progress=false"]


def read_json(path):
    with open(path) as f:
        return json.load(f)


def a_png(path, tagged=False):
    """A real PNG drawn by matplotlib (by save_figure, tagged with its name, if tagged)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    figure, ax = plt.subplots(figsize=(1, 1))
    ax.plot([0, 1])
    if tagged:
        files.save_figure(figure, path)
    else:
        figure.savefig(path)
        plt.close(figure)
    return path


# ---------------------------------------------------------------- nothing mixed, nothing lost

def test_a_rebuilt_dataset_is_refused_by_every_tool_that_reads_the_runs_data(tool_run, tmp_path, capsys):
    run_dir, data_dir = private_copy(tool_run, tmp_path)
    tokens = np.array(prepare.load_dataset(data_dir)[1])
    with open(os.path.join(data_dir, "val.bin"), "wb") as f:  # other tokens, the same length
        f.write(tokens[::-1].copy().tobytes())
    before = hashes(run_dir, data_dir)
    for main, argv in ((error_entropy.main, [run_dir, *EE, "--overwrite"]),
                       (zsl_cli.main, [run_dir, "--steps=2", "--probe_tokens=64", "--no_progress", "--threads=1"])):
        status, err, _ = run_main(main, argv, capsys)
        assert status == 2 and "changed since the run trained on it" in err and "Traceback" not in err, err
    assert hashes(run_dir, data_dir) == before


def test_a_relative_dataset_is_found_from_any_directory(tool_run, tmp_path, capsys, monkeypatch):
    project = tmp_path / "project"
    project.mkdir()
    private_copy(tool_run, project)
    monkeypatch.chdir(project)
    assert run_main(train.main, [*TINY, "--dataset=./data", "--out_dir=new", "--max_iters=4"], capsys)[0] == 0
    stored = read_json(project / "new" / "config.json")["train"]["dataset"]
    assert stored == str(project / "data")           # absolute: the same data wherever a tool starts
    monkeypatch.chdir(tmp_path)
    status, err, _ = run_main(error_entropy.main, [str(project / "new"), *EE], capsys)
    assert status == 0, err


def test_a_run_that_stored_a_relative_dataset_still_resumes_with_it(tool_run, tmp_path, capsys, monkeypatch):
    project = tmp_path / "project"
    project.mkdir()
    private_copy(tool_run, project)
    monkeypatch.chdir(project)
    assert run_main(train.main, [*TINY, "--dataset=./data", "--out_dir=old", "--max_iters=4"], capsys)[0] == 0
    path = rundir.checkpoint_path("old", 4)   # as an older train.py stored it: the path as given
    ckpt = torch.load(path, weights_only=False)
    ckpt["train_config"]["dataset"] = "./data"
    torch.save(ckpt, path)
    status, err, _ = run_main(train.main, ["--out_dir=old", "--resume", "--dataset=./data", "--max_iters=5"], capsys)
    assert status == 0, err


def test_a_narrower_rerun_keeps_the_wider_analysis_and_overwrite_replaces_it(tool_run, tmp_path, capsys):
    run_dir, _ = private_copy(tool_run, tmp_path)
    assert run_main(error_entropy.main, [run_dir, *EE], capsys)[0] == 0
    wide = read_json(f"{run_dir}/error_entropy.json")
    assert [c["step"] for c in wide["checkpoints"]] == [1, 2, 4, 8, 16, 32]
    for narrower in (["--max_checkpoints=2"], ["--tokens=128"], ["--transient=3"]):
        status, err, _ = run_main(error_entropy.main, [run_dir, *EE, *narrower], capsys)
        assert status == 2 and "--overwrite" in err, (narrower, err)
        assert read_json(f"{run_dir}/error_entropy.json") == wide
    status, _, out = run_main(error_entropy.main, [run_dir, *EE], capsys)   # the same again: allowed
    assert status == 0
    status, _, _ = run_main(error_entropy.main, [run_dir, *EE, "--max_checkpoints=2", "--overwrite"], capsys)
    assert status == 0 and [c["step"] for c in read_json(f"{run_dir}/error_entropy.json")["checkpoints"]] == [1, 32]


def test_zsl_never_mixes_rows_of_other_settings(tool_run, tmp_path, capsys):
    run_dir, _ = private_copy(tool_run, tmp_path)
    flags = ["--no_progress", "--threads=1", "--no_update"]
    assert run_main(zsl_cli.main, [run_dir, *flags, "--steps=2"], capsys)[0] == 0
    status, err, _ = run_main(zsl_cli.main, [run_dir, *flags, "--steps=4", "--n_signs=0"], capsys)
    assert status == 2 and "8 sign patterns" in err and "--overwrite" in err, err
    assert run_main(zsl_cli.main, [run_dir, *flags, "--steps=4", "--n_signs=0", "--overwrite"], capsys)[0] == 0
    rows = read_json(f"{run_dir}/zsl.json")["gradient_interference"]
    assert [(r["step"], r["n_signs"]) for r in rows] == [(4, 0)]


def test_a_runs_files_are_known_by_their_content(tool_run, tmp_path, capsys):
    _, data_dir = private_copy(tool_run, tmp_path)
    folder = tmp_path / "slides"
    folder.mkdir()
    a_png(str(folder / "zslide.png"))                   # a user's figure, whose name looks like zsl.py's
    # not a run: a fresh run starts there without --overwrite, and keeps the figure
    argv = [*TINY, f"--dataset={data_dir}", f"--out_dir={folder}", "--max_iters=4"]
    assert run_main(train.main, argv, capsys)[0] == 0
    assert os.path.isfile(folder / "zslide.png")
    # the run's own results: what --overwrite deletes, by content (error_entropy.json and its figure too)
    assert run_main(error_entropy.main, [str(folder), *EE], capsys)[0] == 0
    assert rundir.is_run_file(str(folder / "error_entropy.png")) and not rundir.is_run_file(str(folder / "zslide.png"))
    status, _, out = run_main(train.main, argv + ["--overwrite"], capsys)
    assert status == 0 and "kept zslide.png" in out
    assert sorted(os.listdir(folder)) == [".lock", "checkpoints", "config.json", "log.csv", "probe.npz", "records",
                                          "zslide.png"]


def test_the_analyses_hold_the_lock_of_the_run_they_write(tool_run, tmp_path, capsys):
    """A real train.py writing the run: zsl.py and error_entropy.py are refused, naming it."""
    _, data_dir = private_copy(tool_run, tmp_path)
    run_dir = str(tmp_path / "live")
    process = subprocess.Popen([sys.executable, os.path.join(ROOT, "train.py"), *TINY, f"--dataset={data_dir}",
                                f"--out_dir={run_dir}", "--max_iters=1000000"], cwd=ROOT,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=dict(os.environ, OMP_NUM_THREADS="1"))
    try:
        deadline = time.time() + 120
        while not os.path.isfile(rundir.checkpoint_path(run_dir, 2)) and time.time() < deadline:
            time.sleep(0.1)
        for main, argv in ((zsl_cli.main, [run_dir, "--no_grad", "--no_progress"]), (error_entropy.main, [run_dir, *EE])):
            status, err, _ = run_main(main, argv, capsys)
            assert status == 2 and f"is in use by another train.py (pid {process.pid})" in err, err
    finally:
        process.kill()
        process.communicate(timeout=60)
    assert not os.path.exists(f"{run_dir}/zsl.json") and not os.path.exists(f"{run_dir}/error_entropy.json")


def broken_savefig(self, fname, *args, **kwargs):
    """A disk that fills while a figure is written: some bytes, then ENOSPC."""
    with open(fname, "wb") if isinstance(fname, str) else open(os.devnull, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n half a figure")
    raise OSError(errno.ENOSPC, "No space left on device")


def test_a_full_disk_while_drawing_leaves_the_results_as_they_were(tool_run, tmp_path, capsys, monkeypatch):
    run_dir, data_dir = private_copy(tool_run, tmp_path)
    assert run_main(error_entropy.main, [run_dir, *EE], capsys)[0] == 0
    before = hashes(run_dir, data_dir)
    import matplotlib.figure
    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", broken_savefig)
    status, err, _ = run_main(error_entropy.main, [run_dir, *EE], capsys)
    assert status == 2 and "No space left on device" in err and "error_entropy.png" in err and "Traceback" not in err
    assert hashes(run_dir, data_dir) == before      # the figure and the JSON as they were, no temporary left


def test_a_write_names_its_file_and_never_replaces_what_is_not_a_file(tmp_path):
    target = str(tmp_path / "results.json")
    files.write_json(target, {"a": 1})

    def fails(f):
        f.write(b"{")
        raise OSError(errno.ENOSPC, "No space left on device")
    with pytest.raises(OSError) as caught:
        files.atomic_write(target, fails)
    assert caught.value.filename == target and read_json(target) == {"a": 1} and os.listdir(tmp_path) == ["results.json"]
    pipe = str(tmp_path / "pipe.png")
    os.mkfifo(pipe)
    with pytest.raises(OSError) as caught:
        files.write_json(pipe, {})
    assert "not a regular file" in str(caught.value) and os.path.exists(pipe) and not os.path.isfile(pipe)


# ---------------------------------------------------------------- never silently wrong

def timescale_row(run_dir, losses, capsys):
    with open(f"{run_dir}/log.csv", "w") as f:
        f.write("step,loss,lr\n" + "".join(f"{s},{loss},0.001\n" for s, loss in enumerate(losses, start=1)))
    status, err, out = run_main(timescale_report.main, [run_dir, "--json", "--no_progress"], capsys)
    assert status == 0, err
    return json.loads(out)[0]


def test_timescale_says_when_the_curve_is_no_power_law(tool_run, tmp_path, capsys):
    run_dir, _ = private_copy(tool_run, tmp_path)
    steps = np.arange(1, 3001)
    noise = np.exp(0.01 * np.random.default_rng(0).standard_normal(len(steps)))
    power_law = timescale_row(run_dir, (2.0 * (1e-3 * steps) ** (-1 / 3) + 1.0) * noise, capsys)
    assert power_law["warning"] is None and abs(power_law["alpha"] - 1 / 3) < 0.03
    exponential = timescale_row(run_dir, (3.0 * np.exp(-steps / 300) + 1.0) * noise, capsys)
    assert "exponential decay in tau fits better" in exponential["warning"]
    rising = timescale_row(run_dir, np.where(steps < 2000, 3 * (1e-3 * steps) ** -0.3,
                                             3 * 2.0 ** -0.3 + (steps - 2000) / 1000), capsys)
    assert "the loss rises" in rising["warning"]
    two_laws = timescale_row(run_dir, np.where(steps < 1000, 3 * (1e-3 * steps) ** -0.1,
                                               3 * (steps / 1000) ** -0.8), capsys)
    assert "no power law" in two_laws["warning"] or "not a power law" in two_laws["warning"]


def test_the_command_line_wins_over_a_preset_wherever_it_stands():
    preset = os.path.join(ROOT, "config", "tiny.py")
    for argv in (["--n_layer=3", preset], [preset, "--n_layer=3"]):
        config, given = train.parse_args(argv)
        assert config.n_layer == 3 and config.n_embd == 64 and "n_layer" in given


def test_a_warm_up_over_half_the_run_is_said(tool_run, tmp_path, capsys):
    _, data_dir = private_copy(tool_run, tmp_path)
    status, err, _ = run_main(train.main, [*TINY, f"--dataset={data_dir}", f"--out_dir={tmp_path / 'new'}",
                                           "--max_iters=3"], capsys)
    assert status == 0 and "warning: the warm-up takes 2 of the 3 steps" in err
    status, err, _ = run_main(train.main, [*TINY, f"--dataset={data_dir}", f"--out_dir={tmp_path / 'new2'}",
                                           "--max_iters=2"], capsys)
    assert status == 2 and "--warmup_iters=2 is not below --max_iters=2" in err
    # a config made in Python (as bench.py makes its short runs) may end inside the warm-up
    from support.checks import schedule_warning
    warning = schedule_warning(train.TrainConfig(warmup_iters=100, max_iters=41))
    assert "never reaches --learning_rate" in warning and "last -" not in warning  # (it said "the last -59")


def test_error_entropy_leaves_out_diverged_checkpoints_and_says_so(tool_run, tmp_path, capsys):
    run_dir, _ = private_copy(tool_run, tmp_path)
    path = rundir.checkpoint_path(run_dir, 32)
    ckpt = torch.load(path, weights_only=False)
    ckpt["model"]["wte.weight"][0, 0] = float("inf")
    torch.save(ckpt, path)
    status, err, out = run_main(error_entropy.main, [run_dir, *EE], capsys)
    assert status == 0, err
    assert "left out checkpoint(s) 32: nan or inf weights" in out
    assert [c["step"] for c in read_json(f"{run_dir}/error_entropy.json")["checkpoints"]] == [1, 2, 4, 8, 16]


# ---------------------------------------------------------------- one line, before any work

def test_a_full_disk_during_a_checkpoint_is_one_line_with_the_right_advice(tool_run, tmp_path):
    """A real failed write (a 50 kB file size limit): the checkpoint of step 1 does not fit."""
    def limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the write fails with EFBIG instead of killing
        resource.setrlimit(resource.RLIMIT_FSIZE, (50_000, 50_000))
    _, data_dir = private_copy(tool_run, tmp_path)
    out = str(tmp_path / "new")
    result = subprocess.run([sys.executable, os.path.join(ROOT, "train.py"), *TINY, f"--dataset={data_dir}",
                             f"--out_dir={out}", "--max_iters=4"], cwd=ROOT, capture_output=True, text=True,
                            preexec_fn=limit, env=dict(os.environ, OMP_NUM_THREADS="1"), timeout=300)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("train.py: error: File too large (") and "checkpoints/step_000001.pt)" in last, last
    assert "--overwrite" in last and "--resume" not in last   # there is nothing to resume
    assert not [n for n in os.listdir(os.path.join(out, "checkpoints")) if ".tmp" in n]


def spawn(tool, *argv, **kwargs):
    return subprocess.Popen([sys.executable, os.path.join(ROOT, tool), *map(str, argv)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=dict(os.environ, OMP_NUM_THREADS="1"),
                            **kwargs)


@pytest.mark.parametrize("tool, argv", [("train.py", ["--help"]), ("experiments/bench.py", ["--help"]),
                                        ("experiments/timescale.py", ["RUN", "--no_progress"]),
                                        ("experiments/error_entropy.py", ["RUN", *EE, "--json"])])
def test_a_closed_pipe_ends_quietly(tool, argv, tool_run, tmp_path):
    """`tool | head -0`: the reader is gone before the tool writes; no traceback, no "Exception ignored"."""
    run_dir, _ = private_copy(tool_run, tmp_path)
    process = spawn(tool, *[run_dir if a == "RUN" else a for a in argv])
    process.stdout.close()
    err = process.stderr.read().decode()
    assert process.wait(timeout=300) in (0, 1) and err == "", err   # (argparse's help ignores the pipe: 0)


@pytest.mark.parametrize("tool", ["train.py", "zsl.py", "experiments/error_entropy.py", "experiments/timescale.py"])
def test_ctrl_c_while_loading_is_one_line(tool, tool_run, tmp_path):
    run_dir, _ = private_copy(tool_run, tmp_path)
    process = spawn(tool, *(["--help"] if tool == "train.py" else [run_dir]))
    deadline = time.time() + 60
    while time.time() < deadline:  # torch's library is mapped: its Python modules are still loading
        with open(f"/proc/{process.pid}/maps") as f:
            if "libtorch" in f.read():
                break
        time.sleep(0.005)
    process.send_signal(signal.SIGINT)
    out, err = (stream.decode() for stream in process.communicate(timeout=120))
    name = os.path.basename(tool)
    assert process.returncode == 130 and err == f"{name}: interrupted\n", err


def test_messages_name_the_callers_own_flags(tool_run, tmp_path, capsys):
    run_dir, _ = private_copy(tool_run, tmp_path)
    with pytest.raises(error_entropy.UsageError, match="use --ee_tokens="):   # reproduce.py's name for it
        error_entropy.report_section([run_dir], [{}], str(tmp_path), n_tokens=10 ** 8, context=16, progress=False)
    os.remove(f"{run_dir}/probe.npz")
    status, err, _ = run_main(timescale_report.main, [run_dir, "--no_progress"], capsys)
    assert status == 2 and "--no_grad" not in err and "logit scale" in err   # zsl.py's flag, not timescale.py's


def test_threads_is_a_flag_of_train_and_checked_everywhere(tool_run, tmp_path, capsys):
    _, data_dir = private_copy(tool_run, tmp_path)
    threads = torch.get_num_threads()
    try:
        status, err, _ = run_main(train.main, [*TINY, f"--dataset={data_dir}", f"--out_dir={tmp_path / 'new'}",
                                               "--max_iters=3", "--threads=1"], capsys)
        assert status == 0 and torch.get_num_threads() == 1, err
    finally:
        torch.set_num_threads(threads)
    for main, argv in ((train.main, []), (zsl_cli.main, [str(tmp_path / "new")]),
                       (error_entropy.main, [str(tmp_path / "new")])):
        status, err, _ = run_main(main, [*argv, "--threads=100000"], capsys)
        assert status == 2 and "--threads must be between" in err and "Traceback" not in err, err
