"""train.py: a short run learns, writes a readable run directory, resumes exactly, runs under DDP,
stops cleanly on Ctrl-C, and turns bad input into one-line errors."""
import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

import train
from model import GPT, GPTConfig

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from data import prepare

TINY = ["--n_layer=1", "--n_head=2", "--n_embd=32", "--block_size=16", "--batch_size=8", "--n_probe=4",
        "--warmup_iters=5", "--progress=false"]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """A small byte-level dataset of real Python source (no download)."""
    folder = tmp_path_factory.mktemp("data")
    prepare.build_stdlib(str(folder), max_bytes=400_000)
    return str(folder)


def run_train(*args, timeout=300):
    return subprocess.run([sys.executable, os.path.join(ROOT, "train.py"), *args],
                          capture_output=True, text=True, timeout=timeout, cwd=ROOT)


def read_log(run_dir):
    with open(os.path.join(run_dir, "log.csv")) as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def run_dir(dataset, tmp_path_factory):
    """One short run that several tests read."""
    out = str(tmp_path_factory.mktemp("run"))
    result = run_train(*TINY, f"--dataset={dataset}", f"--out_dir={out}", "--overwrite", "--max_iters=80",
                       "--learning_rate=1e-2", "--eval_per_octave=4", "--n_eval=6")
    assert result.returncode == 0, result.stderr
    return out


def test_a_short_run_lowers_the_loss(run_dir):
    losses = [float(row["loss"]) for row in read_log(run_dir)]
    assert len(losses) == 80
    assert losses[0] > 5.0  # about ln(256) = 5.55 at the start
    assert np.mean(losses[-10:]) < losses[0] - 1.5


def test_log_has_one_row_per_step_with_lr_tokens_and_time(run_dir):
    rows = read_log(run_dir)
    assert [int(r["step"]) for r in rows] == list(range(1, 81))
    assert int(rows[-1]["tokens"]) == 80 * 8 * 16
    assert float(rows[0]["lr"]) == pytest.approx(1e-3)   # warm-up starts at 10% of the peak
    assert float(rows[-1]["lr"]) == pytest.approx(1e-2)
    times = [float(r["time_s"]) for r in rows]
    assert times == sorted(times) and times[-1] > 0


def test_records_are_readable_and_consistent(run_dir):
    names = sorted(os.listdir(os.path.join(run_dir, "records")))
    steps = [int(n[5:11]) for n in names]
    assert steps == sorted(train.log_spaced_steps(80, 8))
    assert len([s for s in steps if 32 <= s < 64]) >= 6   # several per octave
    first, second = (np.load(os.path.join(run_dir, "records", n)) for n in names[:2])
    assert first["train_before"].shape == first["train_after"].shape == (8, 16)
    assert first["probe_before"].shape == first["probe_after"].shape == (4, 16)
    assert first["train_x"].shape == (8, 16) and int(first["step"]) == 1
    # steps 1 and 2 are both recorded: the probe after update 1 is the probe before update 2
    np.testing.assert_allclose(first["probe_after"], second["probe_before"], rtol=1e-6)
    # the training forward's losses (before) and the record's "after" differ: the step changed the model
    assert not np.allclose(first["train_before"], first["train_after"])


def test_checkpoints_reproduce_the_recorded_per_token_losses(run_dir):
    ckpts = sorted(os.listdir(os.path.join(run_dir, "checkpoints")))
    assert ckpts == [f"step_{s:06d}.pt" for s in sorted(train.log_spaced_steps(80, 1))]
    ckpt = torch.load(os.path.join(run_dir, "checkpoints", "step_000064.pt"), weights_only=False)
    assert ckpt["step"] == 64 and set(ckpt) >= {"model", "optimizer", "lr", "train_config", "model_config"}
    model = GPT(GPTConfig(**ckpt["model_config"]))
    model.load_state_dict(ckpt["model"])
    model.eval()
    record = np.load(os.path.join(run_dir, "records", "step_000064.npz"))
    _, losses = model(torch.from_numpy(record["train_x"]), torch.from_numpy(record["train_y"]), per_token=True)
    np.testing.assert_allclose(losses.detach().numpy(), record["train_after"], rtol=1e-5, atol=1e-6)
    probe = np.load(os.path.join(run_dir, "probe.npz"))
    _, probe_losses = model(torch.from_numpy(probe["x"]), torch.from_numpy(probe["y"]), per_token=True)
    np.testing.assert_allclose(probe_losses.detach().numpy(), record["probe_after"], rtol=1e-5, atol=1e-6)
    assert probe["update_x"].shape == (8, 16)


def test_eval_curve_is_the_held_out_loss_of_each_checkpoint(run_dir, dataset):
    """eval.csv at log-spaced steps; at a checkpoint's step its loss is, token by token, -log softmax of
    the target over n_eval evenly spaced validation windows (a plain loop as the reference)."""
    with open(os.path.join(run_dir, "eval.csv")) as f:
        rows = list(csv.DictReader(f))
    assert [int(r["step"]) for r in rows] == sorted(train.log_spaced_steps(80, 4))
    assert all(float(a["eval_s"]) <= float(b["eval_s"]) for a, b in zip(rows, rows[1:]))  # cumulative cost
    _, val, _ = prepare.load_dataset(dataset)
    starts = np.linspace(0, len(val) - 16 - 1, 6 + 2)[1:-1].astype(np.int64)  # n_eval windows, between the ends
    for step in (16, 64, 80):
        ckpt = torch.load(os.path.join(run_dir, "checkpoints", f"step_{step:06d}.pt"), weights_only=False)
        model = GPT(GPTConfig(**ckpt["model_config"]))
        model.load_state_dict(ckpt["model"])
        model.eval()
        nll = []
        for start in starts:
            window = torch.from_numpy(val[start:start + 17].astype(np.int64))
            logits, _ = model(window[None, :-1], window[None, 1:])
            log_probs = torch.log_softmax(logits[0].double(), dim=-1)
            nll += [-log_probs[t, window[t + 1]].item() for t in range(16)]
        (row,) = [r for r in rows if int(r["step"]) == step]
        assert float(row["loss"]) == pytest.approx(np.mean(nll), abs=2e-6)
        assert float(row["lr"]) == pytest.approx(train.lr_at(step, train.TrainConfig(**ckpt["train_config"])))


def test_config_json_describes_the_run(run_dir):
    with open(os.path.join(run_dir, "config.json")) as f:
        info = json.load(f)
    assert info["train"]["max_iters"] == 80 and info["model"]["n_embd"] == 32
    assert info["data"]["vocab_size"] == 256


def test_resume_gives_the_same_losses_as_an_uninterrupted_run(run_dir, tmp_path):
    resumed = str(tmp_path / "resumed")
    shutil.copytree(run_dir, resumed)
    for name in os.listdir(os.path.join(resumed, "checkpoints")):
        if int(name[5:11]) > 32:
            os.remove(os.path.join(resumed, "checkpoints", name))
    result = run_train(f"--out_dir={resumed}", "--resume")
    assert result.returncode == 0, result.stderr
    assert [r["loss"] for r in read_log(resumed)] == [r["loss"] for r in read_log(run_dir)]
    with open(os.path.join(resumed, "eval.csv")) as f, open(os.path.join(run_dir, "eval.csv")) as g:
        assert [r["loss"] for r in csv.DictReader(f)] == [r["loss"] for r in csv.DictReader(g)]


def test_ctrl_c_saves_a_checkpoint_and_exits_cleanly(dataset, tmp_path):
    out = str(tmp_path / "interrupted")
    process = subprocess.Popen([sys.executable, os.path.join(ROOT, "train.py"), *TINY, f"--dataset={dataset}",
                                f"--out_dir={out}", "--max_iters=100000", "--ckpt_per_octave=0"],
                               cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not os.path.exists(os.path.join(out, "log.csv")) and time.time() < deadline:
        time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130
    assert "Traceback" not in stderr and "--resume" in stderr
    saved = os.listdir(os.path.join(out, "checkpoints"))
    assert len(saved) == 1
    assert int(saved[0][5:11]) == len(read_log(out))


def test_lr_schedule_and_log_spaced_steps():
    c = train.TrainConfig(learning_rate=1.0, warmup_iters=10, warmup_start=0.1, max_iters=100)
    assert train.lr_at(1, c) == pytest.approx(0.1)
    assert train.lr_at(11, c) == pytest.approx(1.0) and train.lr_at(100, c) == 1.0
    c.lr_schedule, c.min_lr = "cosine", 0.01
    assert train.lr_at(11, c) == pytest.approx(1.0) and train.lr_at(100, c) == pytest.approx(0.01)
    c.lr_schedule = "linear"
    assert train.lr_at(100, c) == pytest.approx(0.01)
    assert train.log_spaced_steps(100, 1) == {1, 2, 4, 8, 16, 32, 64, 100}
    assert train.log_spaced_steps(100, 0) == {100}


def test_config_files_py_and_json(tmp_path):
    py = tmp_path / "preset.py"
    py.write_text('"""a preset"""\nn_layer = 3\nlearning_rate = 1e-3\nlr_schedule = "cosine"\n')
    config, given = train.parse_args([str(py), "--n_layer=4"])
    assert (config.n_layer, config.learning_rate, config.lr_schedule) == (4, 1e-3, "cosine")
    js = tmp_path / "preset.json"
    js.write_text('{"n_embd": 96, "compile": false}')
    config, _ = train.parse_args([str(js)])
    assert config.n_embd == 96 and "n_embd" in train.parse_args([str(js)])[1]


def test_help_lists_every_flag_with_its_default():
    result = run_train("--help")
    assert result.returncode == 0
    assert "--learning_rate=0.003" in result.stdout and "--warmup_iters=100" in result.stdout


@pytest.mark.parametrize("args, message", [
    (["--n_layr=3"], "unknown flag --n_layr (did you mean --n_layer?)"),
    (["--n_layer=two"], "--n_layer takes an int"),
    (["--compile=maybe"], "--compile takes true or false"),
    (["--lr_schedule=step"], "--lr_schedule must be one of"),
    (["--n_embd=30", "--n_head=4"], "must be divisible"),
    (["--max_iters=0"], "--max_iters must be at least 1"),
    (["--learning_rate"], "--learning_rate needs a value"),
    (["no_such_preset.py"], "does not exist"),
    (["--dataset=/no/such/dataset"], "no dataset in"),
    (["--device=cuda"], "CUDA is not available"),
])
def test_bad_flags_are_one_line_errors(args, message, tmp_path):
    result = run_train(*args, f"--out_dir={tmp_path / 'out'}")
    assert result.returncode != 0
    assert message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_bad_config_file_is_a_one_line_error(tmp_path):
    preset = tmp_path / "preset.py"
    preset.write_text("import os\n")
    result = run_train(str(preset))
    assert result.returncode != 0 and "only `key = value` lines" in result.stderr
    assert "Traceback" not in result.stderr


def test_run_directory_guards(run_dir, dataset, tmp_path):
    result = run_train(*TINY, f"--dataset={dataset}", f"--out_dir={run_dir}")
    assert result.returncode != 0 and "already holds a run" in result.stderr
    result = run_train(f"--out_dir={tmp_path / 'empty'}", "--resume")
    assert result.returncode != 0 and "nothing to resume" in result.stderr
    result = run_train(f"--out_dir={run_dir}", "--resume", "--n_layer=5")
    assert result.returncode != 0 and "cannot change --n_layer" in result.stderr
    result = run_train(*TINY, f"--dataset={dataset}", f"--out_dir={tmp_path / 'x'}", "--block_size=100000")
    assert result.returncode != 0 and "too few for one sequence" in result.stderr
    for r in (result,):
        assert "Traceback" not in r.stderr


def test_two_process_ddp_on_cpu(dataset, tmp_path):
    out = str(tmp_path / "ddp")
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
               os.path.join(ROOT, "train.py"), *TINY, f"--dataset={dataset}", f"--out_dir={out}", "--max_iters=12",
               "--device=cpu"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=ROOT,
                            env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert result.returncode == 0, result.stderr[:3000] + "\n...\n" + result.stderr[-1000:]  # (a process's own error first)
    rows = read_log(out)
    assert len(rows) == 12 and int(rows[-1]["tokens"]) == 12 * 2 * 8 * 16  # two processes' batches per step
    with open(os.path.join(out, "config.json")) as f:
        assert json.load(f)["world_size"] == 2
    assert os.path.exists(os.path.join(out, "checkpoints", "step_000012.pt"))
    # resumed from step 8, each process continues its own stream of batches (not process 0's): same losses
    os.remove(os.path.join(out, "checkpoints", "step_000012.pt"))
    resumed = subprocess.run(command[:6] + [f"--out_dir={out}", "--resume"], capture_output=True, text=True,
                             timeout=300, cwd=ROOT, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert [r["loss"] for r in read_log(out)] == [r["loss"] for r in rows]


def test_shipped_presets_parse_and_tiny_is_the_default():
    presets = sorted(os.listdir(os.path.join(ROOT, "config")))
    assert "tiny.py" in presets
    for name in presets:  # train.py's presets (.py, .json); reproduce_gpu.txt is reproduce.py's (test_reproduce.py)
        if name.endswith((".py", ".json")):
            train.parse_args([os.path.join(ROOT, "config", name)])
    assert train.parse_args([os.path.join(ROOT, "config", "tiny.py")])[0] == train.TrainConfig()
