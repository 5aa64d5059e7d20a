"""
One run per directory: nothing lost, nothing mixed. The guards train.py puts around its run directory.

    lock_run_dir(out_dir)        one writer at a time: an exclusive flock on out_dir/.lock (POSIX), which
                                 the OS drops when the process ends, even on kill -9
    run_files(out_dir)           exactly the files of a run (train.py's, and zsl.py's results on it);
                                 a file of the user's that only carries such a name is never one of them
    check_out_dir, refuse_to_mix a fresh start never lands on an old run (unless --overwrite) nor replaces
                                 a file the user wrote
    clear_old_run(out_dir)       --overwrite: delete the old run's files, and only those
    drop_records_after(out, s)   on resume: the records of the abandoned continuation past checkpoint s go
    check_same_data(...)         on resume: the data and model are the ones the run trained on
    checkpoint_path, checkpoint_steps, latest_checkpoint
                                 where a run's checkpoints are, and which there are
    load_newest_checkpoint(out)  on resume: the newest checkpoint that loads (a damaged one is skipped)
    prepare_run_dir(c, given)    check out_dir against --resume / --overwrite; on resume, the saved flags

Every problem is a UsageError (support/cli.py): the user can fix it, and is told how,
in one line.
"""
import dataclasses
import json
import os
import re
import sys

import torch

from support.checks import check_config
from support.cli import UsageError

try:
    import fcntl  # the run directory's lock (POSIX); on Windows runs are not locked
except ImportError:
    fcntl = None



LOCK_NAME = ".lock"  # held (flock) by the train.py writing the run; the OS releases it when the process ends
# every file of a run that train.py, bnsl.py or zsl.py reads or writes (with atomic_write's temporaries):
# --overwrite deletes exactly these, and any of them means "out_dir holds a run"
RUN_FILES = {".": r"(config\.json|log\.csv|eval\.csv|probe\.npz|\.?zsl[\w.-]*\.(json|png))", "records": r"step_\d+\.npz",
             "checkpoints": r"step_\d+\.pt"}


def written_by_train(path):
    """config.json and log.csv are common names: only train.py's own (by content) belong to a run."""
    try:
        if os.path.basename(path) == "config.json":
            with open(path, encoding="utf-8") as f:
                return {"train", "model"} <= set(json.load(f))
        if os.path.basename(path) in ("log.csv", "eval.csv"):
            with open(path, encoding="utf-8") as f:
                return f.readline().startswith("step,loss,lr,")
    except (OSError, ValueError, TypeError):
        return False
    return True


def run_files(out_dir, ours=True):
    """Paths of the run's files in out_dir, checkpoints first and config.json last; never the user's own
    files (with ours=False: the user's files that carry a run file's name)."""
    found = []
    for folder in ("checkpoints", "records", "."):
        path = os.path.join(out_dir, folder)
        names = sorted(os.listdir(path)) if os.path.isdir(path) else []
        found += [os.path.join(path, n) for n in names if re.fullmatch(RUN_FILES[folder] + r"(\.tmp\d*)?", n)
                  and written_by_train(os.path.join(path, n)) == ours]
    return sorted(found, key=lambda p: p.endswith("config.json"))


def check_out_dir(out_dir):
    """out_dir must be a directory, or creatable as one (nothing is created here)."""
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise UsageError(f"--out_dir {out_dir!r} is a file, not a directory; pick another --out_dir")
    parent = os.path.dirname(os.path.abspath(out_dir))
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent) or not os.access(parent, os.W_OK | os.X_OK):
        raise UsageError(f"cannot create --out_dir {out_dir!r}: {parent!r} is "
                          f"{'a file' if not os.path.isdir(parent) else 'not writable'}; pick another --out_dir")


def lock_run_dir(out_dir):
    """Create out_dir if needed and hold an exclusive lock on out_dir/.lock; returns the open lock file
    (closing it releases the lock). The OS drops a flock when its process ends, even on kill -9, so a
    crash never leaves the directory locked."""
    try:
        os.makedirs(out_dir, exist_ok=True)
        lock = open(os.path.join(out_dir, LOCK_NAME), "a")
    except OSError as e:
        raise UsageError(f"cannot create --out_dir {out_dir!r} ({e.strerror}); pick another --out_dir")
    if fcntl is not None:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            raise UsageError(f"{out_dir!r} is in use by another train.py; wait for it to finish, "
                              f"or pick another --out_dir")
    return lock


def refuse_to_mix(c):
    """A fresh start must not land on top of an old run unless --overwrite says to delete it, nor ever
    replace a file of the user's that happens to be called config.json or log.csv."""
    if not os.path.isdir(c.out_dir):
        return
    foreign = run_files(c.out_dir, ours=False)
    if foreign:
        raise UsageError(f"{c.out_dir!r} holds {os.path.basename(foreign[0])}, which train.py did not write and "
                          f"would replace; pick another --out_dir")
    if run_files(c.out_dir) and not c.overwrite:
        raise UsageError(f"{c.out_dir!r} already holds a run; continue it with --resume, "
                          f"start afresh with --overwrite (deletes it), or pick another --out_dir")


def clear_old_run(out_dir):
    """--overwrite: delete the old run's files (run_files: checkpoints first, config.json last, so a crash
    halfway still leaves a run that a plain rerun refuses). The user's own files stay."""
    old = run_files(out_dir)
    for path in old:
        os.remove(path)
    kept = sorted(set(os.listdir(out_dir)) - {"records", "checkpoints", LOCK_NAME})
    if old:
        print(f"--overwrite: deleted the old run in {out_dir} ({len(old)} files)"
              + (f"; kept {', '.join(kept[:5])}{' ...' if len(kept) > 5 else ''} (not written by train.py or zsl.py)"
                 if kept else ""))


def drop_records_after(out_dir, step):
    """On resume: records past the checkpoint's step come from the abandoned continuation (a crash or
    kill -9 after the checkpoint); the resumed run writes its own. Half-written temporaries go too."""
    for path in run_files(out_dir):
        name = os.path.basename(path)
        if re.search(r"\.tmp\d+$", name) or (re.fullmatch(r"step_\d+\.npz", name) and int(name[5:-4]) > step):
            os.remove(path)


def check_same_data(ckpt, data_meta, model_config, c):
    """A resumed run must continue on the data it trained on (a rebuilt dataset has another fingerprint)."""
    then, now = ckpt.get("data_fingerprint"), data_meta["fingerprint"]
    if then is None:
        print(f"warning: this run predates dataset fingerprints; cannot check that {c.dataset!r} is unchanged",
              file=sys.stderr)
    elif then != now:
        raise UsageError(f"the dataset {c.dataset!r} changed since this run trained on it (fingerprint {then}, "
                          f"now {now}); restore that data, or start afresh with --overwrite")
    if ckpt["model_config"] != dataclasses.asdict(model_config):
        raise UsageError(f"the checkpoint's model {ckpt['model_config']} does not match this data and flags "
                          f"({dataclasses.asdict(model_config)}); start afresh with --overwrite")


# ----------------------------------------------------------------------------------------------
# Checkpoints: where they are, and the newest one that loads

def checkpoint_path(out_dir, step):
    return os.path.join(out_dir, "checkpoints", f"step_{step:06d}.pt")


def checkpoint_steps(out_dir):
    """Steps of out_dir's checkpoints, ascending by number (not by name: step_1000000 sorts after
    step_999999). Only names checkpoint_path writes count; a stray step_best.pt or a copy is ignored."""
    folder = os.path.join(out_dir, "checkpoints")
    names = os.listdir(folder) if os.path.isdir(folder) else []
    steps = [int(name[5:-3]) for name in names if re.fullmatch(r"step_\d+\.pt", name)]
    return sorted(s for s in set(steps) if os.path.isfile(checkpoint_path(out_dir, s)))  # step_64.pt: not ours


def latest_checkpoint(out_dir):
    """Path of the checkpoint with the highest step, or None."""
    steps = checkpoint_steps(out_dir)
    return checkpoint_path(out_dir, steps[-1]) if steps else None


CHECKPOINT_KEYS = ("model", "optimizer", "step", "lr", "train_config", "model_config", "torch_rng", "data_rng",
                   "log_rows", "elapsed")


def load_newest_checkpoint(out_dir):
    """The newest checkpoint that loads. A damaged one (truncated, empty, from elsewhere) is reported and
    left in place for the user to inspect, and the one before it is used."""
    steps = checkpoint_steps(out_dir)
    if not steps:
        raise UsageError(f"nothing to resume: no checkpoint in {os.path.join(out_dir, 'checkpoints')!r}; "
                         f"start afresh with --overwrite")
    for step in reversed(steps):
        path = checkpoint_path(out_dir, step)
        try:
            ckpt = torch.load(path, map_location="cpu", weights_only=False)
            whole = isinstance(ckpt, dict) and all(k in ckpt for k in CHECKPOINT_KEYS) and ckpt["step"] == step
            problem = None if whole else "not a train.py checkpoint of that step"
        except Exception as e:  # truncated, empty, not a torch file, ...
            problem = f"{type(e).__name__}: {str(e)[:60] or 'unreadable'}"  # e.g. a truncated zip archive
        if problem is None:
            return ckpt
        print(f"warning: {path} is damaged ({problem}); left in place, trying the checkpoint before it",
              file=sys.stderr)
    raise UsageError(f"no readable checkpoint in {os.path.join(out_dir, 'checkpoints')!r} (all {len(steps)} are "
                     f"damaged); start afresh with --overwrite")


# ----------------------------------------------------------------------------------------------
# --resume: the saved flags come back

# keys that may differ from the saved run when resuming (everything else must match)
RESUMABLE_OVERRIDES = {"max_iters", "device", "compile", "progress", "resume", "out_dir", "overwrite"}


def prepare_run_dir(c, given):
    """Check out_dir against --resume / --overwrite (writing nothing). Returns (config, checkpoint): c and
    None for a fresh start; on resume, the run's saved config (with the flags the user may change) and
    its newest readable checkpoint. c is a train.TrainConfig; given, the keys set on the command line."""
    check_out_dir(c.out_dir)
    if not c.resume:
        refuse_to_mix(c)
        return c, None
    ckpt = load_newest_checkpoint(c.out_dir)
    try:
        saved = type(c)(**ckpt["train_config"])
    except TypeError as e:
        raise UsageError(f"the checkpoint of step {ckpt['step']} was written by another version of train.py "
                         f"({e}); resume it with that version or start afresh with --overwrite")
    for key in given - RESUMABLE_OVERRIDES:
        if getattr(c, key) != getattr(saved, key):
            raise UsageError(f"cannot change --{key} when resuming (the run used {getattr(saved, key)!r})")
    for key in given & RESUMABLE_OVERRIDES:
        setattr(saved, key, getattr(c, key))
    saved.out_dir = c.out_dir  # the directory the checkpoint came from, even if the run was moved
    saved.resume, saved.overwrite = True, False  # (the run may have been started with --overwrite)
    if saved.max_iters < ckpt["step"]:
        raise UsageError(f"--max_iters={saved.max_iters} is below the checkpoint's step {ckpt['step']}")
    planned = ckpt["train_config"]["max_iters"]
    if saved.max_iters != planned and saved.lr_schedule != "constant":
        # a decay is laid out over max_iters: another max_iters would change the LR of every remaining step
        # (raising it would restart a finished decay from high up), so a decayed run cannot be extended
        raise UsageError(f"cannot change --max_iters when resuming a --lr_schedule={saved.lr_schedule} run: its "
                         f"decay is laid out over max_iters={planned}; train a new run with the new --max_iters")
    check_config(saved)
    return saved, ckpt
