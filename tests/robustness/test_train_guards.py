"""train.py on bad input and in bad situations: every bad input is one line naming the problem and
the fix, a non-zero exit, no traceback, and no file of the run or the data touched; runs never mix
(--overwrite, a second writer, changed data, records of an abandoned continuation) or vanish (a
diverging run's log, a damaged newest checkpoint, SIGTERM). Most cases call train.main in-process."""
import csv
import hashlib
import contextlib
import io
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
from support import rundir
from support.files import tag_png

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from data import prepare

TINY = ["--n_layer=1", "--n_head=2", "--n_embd=32", "--block_size=16", "--batch_size=8", "--n_probe=4",
        "--warmup_iters=2", "--progress=false"]
TEXT = "def greet(name):\n    return f'hello, {name}'\n\n" * 300
PNG = (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x00\x00\x00\x00:~\x9bU"
       b"\x00\x00\x00\nIDATx\x9cc`\x00\x00\x00\x02\x00\x01H\xaf\xa4q\x00\x00\x00\x00IEND\xaeB`\x82")  # 1x1 grey


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    folder = str(tmp_path_factory.mktemp("data") / "text")
    path = os.path.join(os.path.dirname(folder), "text.txt")
    with open(path, "w") as f:
        f.write(TEXT)
    prepare.build_from_file(path, folder)
    return folder


def train_main(*argv):
    """train.main in-process; returns its one-line error, the last line on stderr (None when it ended
    normally; warnings may come before the error)."""
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr):
            status = train.main(list(argv))
    except SystemExit as e:  # (argparse-style exits)
        status = e.code
    sys.stderr.write(stderr.getvalue())  # (for the tests that read the warnings with capsys)
    return stderr.getvalue().strip().splitlines()[-1] if status else None


@pytest.fixture(scope="module")
def base_run(dataset, tmp_path_factory):
    """A finished 8-step run (checkpoints 1, 2, 4, 8; records at every step)."""
    out = str(tmp_path_factory.mktemp("base") / "run")
    assert train_main(*TINY, f"--dataset={dataset}", f"--out_dir={out}", "--max_iters=8") is None
    return out


@pytest.fixture
def run(base_run, dataset, tmp_path):
    """A private copy of the base run and of its dataset: (run_dir, data_dir)."""
    data = str(tmp_path / "data")
    shutil.copytree(dataset, data)
    out = str(tmp_path / "run")
    shutil.copytree(base_run, out)
    with open(os.path.join(out, "config.json")) as f:  # point the copied run at the copied data
        info = json.load(f)
    for step in saved_steps(out):
        ckpt = torch.load(train.checkpoint_path(out, step), weights_only=False)
        ckpt["train_config"]["dataset"] = data
        torch.save(ckpt, train.checkpoint_path(out, step))
    info["train"]["dataset"] = data
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(info, f)
    return out, data


def tree_hashes(*folders):
    """{path: sha256} of every file under the folders."""
    hashes = {}
    for folder in folders:
        for root, _, files in os.walk(folder):
            for name in files:
                with open(os.path.join(root, name), "rb") as f:
                    hashes[os.path.join(root, name)] = hashlib.sha256(f.read()).hexdigest()
    return hashes


def saved_steps(run_dir, folder="checkpoints"):
    """The steps of the checkpoints (or records) on disk."""
    return sorted(int(name[5:].split(".")[0]) for name in os.listdir(os.path.join(run_dir, folder)))


def read_log(run_dir):
    with open(os.path.join(run_dir, "log.csv")) as f:
        return list(csv.DictReader(f))


# ----------------------------------------------------------------------------------------------
# Every bad input: one row per case. Each row's setup(run_dir, data_dir, tmp_path) damages what it
# needs and returns the argv; the message must hold every expected piece (the problem and the fix).

def write(path, content):
    with open(path, "wb" if isinstance(content, bytes) else "w") as f:
        f.write(content)
    return path


def edit_meta(data, **changes):
    path = os.path.join(data, "meta.json")
    with open(path) as f:
        meta = json.load(f)
    meta.update(changes)
    write(path, json.dumps(meta))


def edit_newest_checkpoint(run_dir, change):
    path = rundir.latest_checkpoint(run_dir)
    ckpt = torch.load(path, weights_only=False)
    change(ckpt)
    torch.save(ckpt, path)


def fresh(data, tmp, *extra):
    """A new run (3 steps, should a row's error ever be missed) in tmp/new, which must never appear."""
    return [*TINY, "--max_iters=3", f"--dataset={data}", f"--out_dir={tmp / 'new'}", *extra]


def only_a_stray_checkpoint(run_dir, data, tmp):
    os.makedirs(tmp / "stray" / "checkpoints")
    write(str(tmp / "stray" / "checkpoints" / "step_best.pt"), "x")
    return [f"--out_dir={tmp / 'stray'}", "--resume"]


def every_checkpoint_empty(run_dir, data, tmp):
    for step in saved_steps(run_dir):
        write(train.checkpoint_path(run_dir, step), b"")
    return [f"--out_dir={run_dir}", "--resume"]


def checkpoint_from_another_version(run_dir, data, tmp):
    edit_newest_checkpoint(run_dir, lambda ckpt: ckpt["train_config"].update(new_flag=1))
    return [f"--out_dir={run_dir}", "--resume"]


def dataset_rebuilt_from_other_text(run_dir, data, tmp):
    prepare.build_from_file(write(str(tmp / "other.txt"), TEXT.upper()), data)
    return [f"--out_dir={run_dir}", "--resume"]


def overwrite_with(damage):
    """Damage the dataset, then ask to start afresh over the run: the old run must survive the error."""
    def setup(run_dir, data, tmp):
        damage(data)
        return [*TINY, "--max_iters=3", f"--dataset={data}", f"--out_dir={run_dir}", "--overwrite"]
    return setup


def fresh_with(damage):
    def setup(run_dir, data, tmp):
        damage(data)
        return fresh(data, tmp)
    return setup


def odd_sized_uint16(data):
    edit_meta(data, dtype="uint16", vocab_size=300)
    with open(os.path.join(data, "train.bin"), "ab") as f:
        f.write(b"\x00")


BAD_INPUTS = {
    # optimiser and schedule hyper-parameters
    "beta1 above 1": (lambda r, d, t: fresh(d, t, "--beta1=2"), ["--beta1 must be in [0, 1)", "2.0"]),
    "beta2 equal 1": (lambda r, d, t: fresh(d, t, "--beta2=1"), ["--beta2 must be in [0, 1)"]),
    "adam_eps zero": (lambda r, d, t: fresh(d, t, "--adam_eps=0"), ["--adam_eps must be positive"]),
    "weight_decay negative": (lambda r, d, t: fresh(d, t, "--weight_decay=-0.1"), ["--weight_decay must not be negative"]),
    "grad_clip nan": (lambda r, d, t: fresh(d, t, "--grad_clip=nan"), ["--grad_clip must be a finite number"]),
    "learning_rate inf": (lambda r, d, t: fresh(d, t, "--learning_rate=inf"), ["--learning_rate must be a finite"]),
    "min_lr negative": (lambda r, d, t: fresh(d, t, "--min_lr=-1e-4"), ["--min_lr must be between 0 and --learning_rate"]),
    "min_lr above peak": (lambda r, d, t: fresh(d, t, "--lr_schedule=cosine", "--min_lr=1"), ["--min_lr must be between"]),
    "warmup_start above 1": (lambda r, d, t: fresh(d, t, "--warmup_start=2"), ["--warmup_start", "[0, 1]"]),
    "unknown lr_schedule": (lambda r, d, t: fresh(d, t, "--lr_schedule=step"), ["--lr_schedule must be one of"]),
    # system
    "unknown device": (lambda r, d, t: fresh(d, t, "--device=gpu"), ["--device must be auto, cpu, cuda"]),
    "device without cuda": (lambda r, d, t: fresh(d, t, "--device=cuda:0"), ["CUDA is not available", "--device=cpu"]),
    "seed above 64 bits": (lambda r, d, t: fresh(d, t, f"--seed={2 ** 64}"), ["--seed must be between 0 and 2**63 - 1"]),
    "seed negative": (lambda r, d, t: fresh(d, t, "--seed=-1"), ["--seed must be between"]),
    "unknown flag": (lambda r, d, t: fresh(d, t, "--n_layr=3"), ["unknown flag --n_layr", "--n_layer"]),
    "int flag given a float": (lambda r, d, t: fresh(d, t, "--max_iters=1e3"), ["--max_iters takes an int"]),
    # config files
    "config not UTF-8": (lambda r, d, t: [write(str(t / "p.py"), b"n_layer = 2  # \xff\xfe\n"), *fresh(d, t)],
                         ["not UTF-8", "save it as UTF-8"]),
    "config is a directory": (lambda r, d, t: [str(t), *fresh(d, t)], ["is not a file", ".py or .json"]),
    "config value an expression": (lambda r, d, t: [write(str(t / "p.py"), "n_layer = 2 ** 3\n"), *fresh(d, t)],
                                   ["line 1", "must be a literal"]),
    "config JSON list": (lambda r, d, t: [write(str(t / "p.json"), "[1, 2]"), *fresh(d, t)], ["must hold a JSON object"]),
    # the run directory
    "out_dir empty": (lambda r, d, t: [*TINY, f"--dataset={d}", "--out_dir="], ["--out_dir must not be empty", "--out_dir=out"]),
    "out_dir is a file": (lambda r, d, t: [*TINY, f"--dataset={d}", f"--out_dir={write(str(t / 'f'), 'x')}"],
                          ["is a file", "pick another --out_dir"]),
    "out_dir under a file": (lambda r, d, t: [*TINY, f"--dataset={d}", f"--out_dir={write(str(t / 'f'), 'x')}/run"],
                             ["cannot create --out_dir", "pick another --out_dir"]),
    "existing run, no flag": (lambda r, d, t: [*TINY, f"--dataset={d}", f"--out_dir={r}"],
                              ["already holds a run", "--resume", "--overwrite"]),
    "resume and overwrite": (lambda r, d, t: [f"--out_dir={r}", "--resume", "--overwrite"], ["give only one"]),
    "resume, nothing there": (lambda r, d, t: [f"--out_dir={t / 'nothing'}", "--resume"], ["nothing to resume", "drop --resume"]),
    "resume, only a stray file": (only_a_stray_checkpoint, ["nothing to resume"]),
    "resume, changed model flag": (lambda r, d, t: [f"--out_dir={r}", "--resume", "--n_layer=3"], ["cannot change --n_layer"]),
    "resume below the checkpoint": (lambda r, d, t: [f"--out_dir={r}", "--resume", "--max_iters=4"],
                                    ["--max_iters=4 is below the checkpoint's step 8"]),
    "resume, every checkpoint damaged": (every_checkpoint_empty, ["no readable checkpoint", "--overwrite"]),
    "resume, checkpoint from another version": (checkpoint_from_another_version,
                                                ["another version of train.py", "--overwrite"]),
    "resume, dataset rebuilt with other text": (dataset_rebuilt_from_other_text,
                                                ["changed since this run trained on it", "restore that data"]),
    # the dataset directory (overwrite: a bad dataset must fail before the old run is deleted)
    "dataset missing": (lambda r, d, t: fresh(str(t / "no_such_data"), t), ["no dataset in", "data/prepare.py"]),
    "meta.json not JSON": (overwrite_with(lambda d: write(os.path.join(d, "meta.json"), "{oops")),
                           ["not readable JSON", "rebuild it with data/prepare.py"]),
    "meta.json vocab_size a string": (fresh_with(lambda d: edit_meta(d, vocab_size="256")),
                                      ["vocab_size must be a positive integer", "rebuild it"]),
    "meta.json unknown dtype": (fresh_with(lambda d: edit_meta(d, dtype="float64")), ["dtype 'float64'", "rebuild it"]),
    "train.bin missing": (overwrite_with(lambda d: os.remove(os.path.join(d, "train.bin"))),
                          ["train.bin is missing", "rebuild it"]),
    "val.bin empty": (fresh_with(lambda d: write(os.path.join(d, "val.bin"), b"")), ["val.bin is empty", "rebuild it"]),
    "token id above the vocabulary": (overwrite_with(lambda d: edit_meta(d, vocab_size=50)),
                                      ["token id", "not below vocab_size 50", "rebuild it"]),
    "uint16 file of odd size": (fresh_with(odd_sized_uint16), ["train.bin is truncated", "rebuild it"]),
    "token count differs from meta.json": (fresh_with(lambda d: edit_meta(d, val_tokens=5)),
                                           ["val.bin holds", "meta.json says 5", "rebuild it"]),
    "sequence longer than the data": (lambda r, d, t: fresh(d, t, "--block_size=100000"),
                                      ["too few for one sequence", "smaller --block_size"]),
    "more held-out windows than the data has": (lambda r, d, t: fresh(d, t, "--block_size=1320", "--n_probe=64"),
                                                 ["too few for --n_probe + --batch_size = 72 distinct", "smaller"]),
}


@pytest.mark.parametrize("case", BAD_INPUTS)
def test_bad_input_is_one_line_and_changes_nothing(case, run, tmp_path, capsys):
    run_dir, data_dir = run
    setup, expected = BAD_INPUTS[case]
    argv = [str(a) for a in setup(run_dir, data_dir, tmp_path)]
    before = tree_hashes(run_dir, data_dir)
    message = train_main(*argv)
    err = capsys.readouterr().err
    assert isinstance(message, str), f"{case}: expected an error, got exit code {message!r}"
    assert message.startswith("train.py: error: ") and "\n" not in message, message
    for piece in expected:
        assert piece in message, f"{case}: {piece!r} not in {message!r}"
    assert "Traceback" not in err
    assert tree_hashes(run_dir, data_dir) == before, f"{case}: a file of the run or the data changed"
    assert not os.path.exists(tmp_path / "new"), f"{case}: created the run directory"


def overcommit_mode():
    try:
        with open("/proc/sys/vm/overcommit_memory") as f:
            return f.read().strip()
    except OSError:
        return None


@pytest.mark.skipif(overcommit_mode() not in ("0", "2"),
                    reason="needs Linux's heuristic or strict overcommit, where an impossible allocation fails at once")
def test_a_model_too_large_for_memory_is_one_line(dataset, tmp_path, capsys):
    """A real failed allocation: 3 x 262144^2 float32 weights of one attention layer are 824 GB."""
    message = train_main(*fresh(dataset, tmp_path, "--n_embd=262144"))
    err = capsys.readouterr().err
    assert isinstance(message, str) and message.startswith("train.py: error: out of memory (") and "\n" not in message, message
    assert "smaller --batch_size, --n_embd or --n_layer" in message
    assert "824633720832" in message  # the size torch tried to allocate, not cut short
    assert "Traceback" not in err


def test_a_second_writer_is_refused_while_the_first_holds_the_lock(run, capsys):
    run_dir, _ = run
    lock = train.lock_run_dir(run_dir)  # another writer: flock conflicts across open files, even in one process
    try:
        before = tree_hashes(run_dir)
        message = train_main(f"--out_dir={run_dir}", "--resume")
        assert "is in use by another train.py" in message and "\n" not in message
        assert tree_hashes(run_dir) == before
    finally:
        lock.close()
    assert train_main(f"--out_dir={run_dir}", "--resume") is None  # released: the run resumes (already complete)


# ----------------------------------------------------------------------------------------------
# Runs never mix

def test_overwrite_leaves_nothing_of_the_old_run(run, capsys):
    run_dir, data_dir = run
    # what zsl.py wrote (known by content: zsl.json's keys, the figure's tag), and files of the user's
    write(os.path.join(run_dir, "zsl.json"), json.dumps({"loss_interference": [], "gradient_interference": []}))
    write(os.path.join(run_dir, "zsl_loss.png"), tag_png(PNG, "zsl_loss.png"))
    write(os.path.join(run_dir, "notes.txt"), "old")
    assert train_main(*TINY, f"--dataset={data_dir}", f"--out_dir={run_dir}", "--max_iters=3", "--overwrite") is None
    assert "kept notes.txt" in capsys.readouterr().out
    assert saved_steps(run_dir) == [1, 2, 3]
    assert sorted(os.listdir(os.path.join(run_dir, "records"))) == [f"step_00000{s}.npz" for s in (1, 2, 3)]
    assert not os.path.exists(os.path.join(run_dir, "zsl.json")) and not os.path.exists(os.path.join(run_dir, "zsl_loss.png"))
    assert open(os.path.join(run_dir, "notes.txt")).read() == "old"
    assert [int(r["step"]) for r in read_log(run_dir)] == [1, 2, 3]
    # and --resume continues the new run, not the old one
    assert train_main(f"--out_dir={run_dir}", "--resume", "--max_iters=4") is None
    assert [int(r["step"]) for r in read_log(run_dir)] == [1, 2, 3, 4] and saved_steps(run_dir) == [1, 2, 3, 4]


def test_resume_refuses_changed_data_and_accepts_the_same_data_rebuilt(run, tmp_path):
    run_dir, data_dir = run
    source = write(str(tmp_path / "text.txt"), TEXT)
    prepare.build_from_file(source, data_dir)  # rebuilt from the same text: the same tokens
    assert train_main(f"--out_dir={run_dir}", "--resume", "--max_iters=9") is None
    with open(os.path.join(run_dir, "config.json")) as f:
        assert json.load(f)["data_fingerprint"] == prepare.fingerprint(data_dir)
    write(source, TEXT.replace("greet", "greer"))  # same length, other tokens
    prepare.build_from_file(source, data_dir)
    assert "changed since this run trained on it" in train_main(f"--out_dir={run_dir}", "--resume", "--max_iters=10")


def test_checkpoints_are_ordered_by_step_and_stray_files_ignored(tmp_path):
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    for name in ("step_999999.pt", "step_1000000.pt", "step_best.pt", "step_64.pt", "step_000064 copy.pt",
                 "step_000032.pt.tmp123", "notes.txt"):
        write(str(folder / name), "x")
    assert rundir.checkpoint_steps(str(tmp_path)) == [999999, 1000000]
    assert rundir.latest_checkpoint(str(tmp_path)) == str(folder / "step_1000000.pt")


# ----------------------------------------------------------------------------------------------
# Runs never vanish

def test_a_diverging_run_writes_its_log_up_to_the_failing_step(dataset, tmp_path):
    out = str(tmp_path / "div")
    message = train_main(*TINY, f"--dataset={dataset}", f"--out_dir={out}", "--max_iters=30", "--warmup_iters=0",
                         "--learning_rate=1e8", "--grad_clip=0")
    assert "the loss became nan" in message and "log.csv holds every step up to it" in message
    rows = read_log(out)
    failing = int(message.split("at step ")[1].split()[0])
    assert [int(r["step"]) for r in rows] == list(range(1, failing + 1)) and rows[-1]["loss"] == "nan"
    assert np.isfinite(float(rows[0]["loss"]))


def test_resume_falls_back_past_a_damaged_newest_checkpoint(run, base_run, capsys):
    run_dir, _ = run
    write(train.checkpoint_path(run_dir, 8), b"")  # empty
    with open(train.checkpoint_path(run_dir, 4), "r+b") as f:  # truncated
        f.truncate(1000)
    assert train_main(f"--out_dir={run_dir}", "--resume", "--max_iters=3") is None
    err = capsys.readouterr().err
    assert "step_000008.pt is damaged" in err and "step_000004.pt is damaged" in err and "left in place" in err
    assert os.path.getsize(train.checkpoint_path(run_dir, 8)) == 0  # left for the user to inspect
    # resumed from step 2: the same losses as the uninterrupted run
    assert [r["loss"] for r in read_log(run_dir)] == [r["loss"] for r in read_log(base_run)][:3]


def spawn_long_run(dataset, out):
    process = subprocess.Popen([sys.executable, os.path.join(ROOT, "train.py"), *TINY, f"--dataset={dataset}",
                                f"--out_dir={out}", "--max_iters=100000"], cwd=ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env=dict(os.environ, OMP_NUM_THREADS="1"))
    deadline = time.time() + 120
    while not (os.path.exists(os.path.join(out, "log.csv")) and len(read_log(out)) >= 2) and time.time() < deadline:
        time.sleep(0.2)
    return process


def test_sigterm_saves_and_stops_like_ctrl_c(dataset, tmp_path):
    out = str(tmp_path / "term")
    process = spawn_long_run(dataset, out)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 128 + signal.SIGTERM, stderr
    assert "SIGTERM" in stderr and "--resume" in stderr and "Traceback" not in stderr
    assert saved_steps(out)[-1] == len(read_log(out))


def test_kill_9_leaves_no_stuck_lock_and_a_resumable_run(dataset, tmp_path, capsys):
    out = str(tmp_path / "killed")
    process = spawn_long_run(dataset, out)
    try:  # while it runs, a second writer is refused, even one asking to --overwrite
        message = train_main(*TINY, f"--dataset={dataset}", f"--out_dir={out}", "--overwrite", "--max_iters=3")
        assert "is in use by another train.py" in message
    finally:
        process.kill()
        process.communicate(timeout=60)
    # records past the newest checkpoint belong to the abandoned continuation: the resumed run rewrites them
    newest = saved_steps(out)[-1]
    write(os.path.join(out, "records", "step_000999.npz.tmp1"), "half written when the process died")
    assert train_main(f"--out_dir={out}", "--resume", f"--max_iters={newest + 1}") is None
    assert saved_steps(out, "records")[-1] <= newest + 1 and len(read_log(out)) == newest + 1


# ----------------------------------------------------------------------------------------------
# Results are not silently wrong

def test_a_decayed_run_cannot_be_extended_and_its_last_lr_is_min_lr(dataset, tmp_path):
    out = str(tmp_path / "cosine")
    assert train_main(*TINY, f"--dataset={dataset}", f"--out_dir={out}", "--max_iters=6", "--lr_schedule=linear") is None
    assert torch.load(train.checkpoint_path(out, 6), weights_only=False)["lr"] == 0.0  # not negative
    message = train_main(f"--out_dir={out}", "--resume", "--max_iters=12")
    assert "cannot change --max_iters when resuming a --lr_schedule=linear run" in message
    for schedule in ("linear", "cosine"):
        c = train.TrainConfig(learning_rate=1.0, min_lr=0.1, warmup_iters=10, max_iters=100, lr_schedule=schedule)
        assert [train.lr_at(s, c) for s in (100, 101, 200)] == pytest.approx([0.1, 0.1, 0.1])


def test_home_is_expanded_in_paths(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    config, _ = train.parse_args(["--out_dir=~/runs/a", "--dataset=~/data/x"])
    assert config.out_dir == str(tmp_path / "runs" / "a") and config.dataset == str(tmp_path / "data" / "x")



def test_a_users_own_config_json_is_never_replaced(dataset, tmp_path):
    project = tmp_path / "project"  # say, --out_dir=. in a project folder
    project.mkdir()
    write(str(project / "config.json"), '{"editor": "vim"}')
    write(str(project / "log.csv"), "date,entry\n")
    for extra in ([], ["--overwrite"]):
        message = train_main(*TINY, f"--dataset={dataset}", f"--out_dir={project}", "--max_iters=3", *extra)
        assert "which train.py did not write" in message and "pick another --out_dir" in message
    assert open(project / "config.json").read() == '{"editor": "vim"}'
