"""
One run per directory: nothing lost, nothing mixed. The guards train.py puts around its run directory.

    lock_run_dir(out_dir, tool)  one writer at a time: an exclusive flock on out_dir/.lock (POSIX), which
                                 the OS drops when the process ends, even on kill -9; train.py, zsl.py and
                                 error_entropy.py take it while they write into a run directory
    run_files(out_dir)           exactly the files of a run (train.py's, and zsl.py's and error_entropy.py's
                                 results on it), known by their content: a file of the user's that only
                                 carries such a name (a zslide.png, a config.json of an editor) is never one
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
import zipfile

import torch

from support.checks import check_config, check_schedule
from support.cli import UsageError
from support.files import is_our_figure, png_tag, save_npz, write_json

try:
    import fcntl  # the run directory's lock (POSIX); on Windows runs are not locked
except ImportError:
    fcntl = None



LOCK_NAME = ".lock"  # held (flock) by the program writing the run; the OS releases it when the process ends
TRAIN_FILES = ("config.json", "log.csv", "eval.csv", "probe.npz")          # what train.py writes at the top of a run
RESULT_FILES = ("zsl.json", "error_entropy.json")              # what the analyses add beside them
# figures zsl.py and error_entropy.py wrote before figures were tagged (support/files.py): known by name
UNTAGGED_FIGURES = ("zsl_loss.png", "zsl_grad.png", "zsl_hist.png", "zsl_null.png", "zsl_n.png", "error_entropy.png")
STEP_FILES = {"records": r"step_\d+\.npz", "checkpoints": r"step_\d+\.pt"}  # train.py's own folders
TEMPORARY = r"(?P<name>.+?)\.tmp\d+(?P<extension>\.png)?"   # support/files.py's temporaries


def _json_keys(path):
    try:
        with open(path, encoding="utf-8") as f:
            content = json.load(f)
    except (OSError, ValueError):
        return set()
    return set(content) if isinstance(content, dict) else set()


def is_run_file(path):
    """Whether a file at the top of a run directory is one of the run's, by its content: train.py's
    config.json (train and model sections), log.csv (a step,loss header), probe.npz (arrays x and y),
    zsl.py's zsl.json, error_entropy.py's error_entropy.json, a figure tagged with its own name (or one
    of the untagged figures older versions wrote), and the temporaries of their atomic writes."""
    name = os.path.basename(path)
    temporary = re.fullmatch(TEMPORARY, name)
    if temporary:  # half written when a process died: its content says nothing
        base = temporary["name"] + (temporary["extension"] or "")
        return base in TRAIN_FILES + RESULT_FILES or base.endswith(".png")
    try:
        if name == "config.json":
            return {"train", "model"} <= _json_keys(path)
        if name in ("log.csv", "eval.csv"):
            with open(path, encoding="utf-8") as f:
                return f.readline().startswith("step,loss,lr,")
        if name == "probe.npz":
            with zipfile.ZipFile(path) as archive:
                return {"x.npy", "y.npy"} <= set(archive.namelist())
    except (OSError, ValueError, UnicodeDecodeError, zipfile.BadZipFile):
        return False
    if name == "zsl.json":
        return "loss_interference" in _json_keys(path)
    if name == "error_entropy.json":
        return {"eval_set", "checkpoints"} <= _json_keys(path)
    if name.endswith(".png"):
        return is_our_figure(path) or (name in UNTAGGED_FIGURES and png_tag(path) is None and _is_png(path))
    return False


def _is_png(path):
    try:
        with open(path, "rb") as f:
            return f.read(8) == b"\x89PNG\r\n\x1a\n"
    except OSError:
        return False


def run_files(out_dir, ours=True):
    """Paths of the run's files in out_dir, checkpoints first and config.json last (is_run_file). With
    ours=False: the user's files that carry the name of a file train.py writes (it would replace them)."""
    found = []
    for folder, pattern in STEP_FILES.items():
        path = os.path.join(out_dir, folder)
        names = sorted(os.listdir(path)) if os.path.isdir(path) else []
        found += [os.path.join(path, n) for n in names if re.fullmatch(pattern + r"(\.tmp\d*)?", n) and ours]
    names = sorted(n for n in os.listdir(out_dir) if os.path.isfile(os.path.join(out_dir, n))) \
        if os.path.isdir(out_dir) else []
    for name in names:
        path = os.path.join(out_dir, name)
        if ours and is_run_file(path):
            found.append(path)
        elif not ours and name in TRAIN_FILES and not is_run_file(path):
            found.append(path)
    return sorted(found, key=lambda p: p.endswith("config.json"))


def check_out_dir(out_dir, flag="--out_dir"):
    """out_dir must be a directory, or creatable as one (nothing is created here); flag: its name."""
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise UsageError(f"{flag} {out_dir!r} is a file, not a directory; pick another {flag}")
    parent = os.path.dirname(os.path.abspath(out_dir))
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent) or not os.access(parent, os.W_OK | os.X_OK):
        raise UsageError(f"cannot create {flag} {out_dir!r}: {parent!r} is "
                          f"{'a file' if not os.path.isdir(parent) else 'not writable'}; pick another {flag}")


def lock_run_dir(out_dir, tool="train.py", create=True, fix="pick another --out_dir"):
    """Hold an exclusive lock on out_dir/.lock (creating out_dir first if `create`); returns the open lock
    file (closing it releases the lock). The OS drops a flock when its process ends, even on kill -9, so a
    crash never leaves the directory locked. Held by another program: a UsageError naming it, and `fix`."""
    try:
        if create:
            os.makedirs(out_dir, exist_ok=True)
        lock = open(os.path.join(out_dir, LOCK_NAME), "a")
    except OSError as e:
        raise UsageError(f"cannot create --out_dir {out_dir!r} ({e.strerror}); pick another --out_dir" if create else
                         f"cannot lock {out_dir!r} to write into it ({e.strerror}); copy the run to a directory "
                         f"you can write to")
    if fcntl is not None:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = lock_holder(lock, tool)
            lock.close()
            raise UsageError(f"{out_dir!r} is in use by another {holder}; wait for it to finish, or {fix}")
    return lock


TOOLS = ("train.py", "zsl.py", "error_entropy.py", "reproduce.py")


def lock_holder(lock, tool):
    """Which program holds the flock on the open file `lock`, as "zsl.py (pid 123)", from /proc/locks
    (Linux); the same process: `tool` (another of its run directories' writers); unknown: a list."""
    unknown = "program (" + ", ".join(TOOLS[:-1]) + " or " + TOOLS[-1] + ")"
    try:
        inode = os.fstat(lock.fileno()).st_ino
        with open("/proc/locks") as f:
            pids = [int(fields[4]) for fields in map(str.split, f) if len(fields) > 5 and fields[1] == "FLOCK"
                    and fields[5].rsplit(":", 1)[-1] == str(inode)]
        if not pids:
            return unknown
        if pids[0] == os.getpid():
            return tool
        with open(f"/proc/{pids[0]}/cmdline", "rb") as f:
            words = [os.path.basename(w) for w in f.read().decode(errors="replace").split("\0")]
    except (OSError, ValueError, IndexError):
        return unknown
    modules = {f"experiments.{name[:-3]}": name for name in TOOLS}   # python -m experiments.zsl ...
    names = [modules.get(w, w) for w in words if w in TOOLS or w in modules]
    return f"{names[0]} (pid {pids[0]})" if names else f"program (pid {pids[0]})"


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
              + (f"; kept {', '.join(kept[:5])}{' ...' if len(kept) > 5 else ''} (not written by train.py, zsl.py "
                 f"or error_entropy.py)"
                 if kept else ""))


def drop_records_after(out_dir, step):
    """On resume: records past the checkpoint's step come from the abandoned continuation (a crash or
    kill -9 after the checkpoint); the resumed run writes its own. Half-written temporaries go too."""
    for path in run_files(out_dir):
        name = os.path.basename(path)
        if re.search(r"\.tmp\d+$", name) or (re.fullmatch(r"step_\d+\.npz", name) and int(name[5:-4]) > step):
            os.remove(path)


def start_run_dir(out_dir, ckpt, info, heldout):
    """The run directory at train.py's start: the old run's files gone (a new run, which --overwrite or
    refuse_to_mix let through) or the abandoned records past the checkpoint (a resumed run, ckpt), then
    config.json (info) and probe.npz (heldout = probe_x, probe_y, update_x, update_y: kept on a resume,
    since the same data gives the same probe). Only process 0 calls this."""
    if ckpt is None:
        clear_old_run(out_dir)
    else:
        drop_records_after(out_dir, ckpt["step"])
    os.makedirs(os.path.join(out_dir, "records"), exist_ok=True)
    os.makedirs(os.path.join(out_dir, "checkpoints"), exist_ok=True)
    write_json(os.path.join(out_dir, "config.json"), info, indent=2)
    if ckpt is None or not os.path.isfile(os.path.join(out_dir, "probe.npz")):
        probe_x, probe_y, update_x, update_y = heldout
        save_npz(os.path.join(out_dir, "probe.npz"), x=probe_x.numpy(), y=probe_y.numpy(),
                 update_x=update_x.numpy(), update_y=update_y.numpy())


def disk_full_hint(out_dir):
    """What to do after a full disk or a bad path (OSError) stopped train.py, by what out_dir holds now."""
    if out_dir and latest_checkpoint(out_dir):
        return "free space or fix the path, then continue the run with --resume"
    if out_dir and os.path.isdir(out_dir) and run_files(out_dir):
        return "free space or fix the path, then start afresh with --overwrite (no checkpoint was saved yet)"
    return "free space or fix the path, then run the same command again"


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
        fix = ("start afresh with --overwrite (it deletes the run's files there)" if run_files(out_dir)
               else "drop --resume to start a new run there")
        raise UsageError(f"nothing to resume: no checkpoint in {os.path.join(out_dir, 'checkpoints')!r}; {fix}")
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
RESUMABLE_OVERRIDES = {"max_iters", "device", "compile", "progress", "resume", "out_dir", "overwrite", "threads"}


def _same_setting(key, value, saved):
    """A dataset path is the same whether written relative (as older runs stored it) or absolute."""
    if key == "dataset" and (os.sep in value or os.sep in saved):
        return os.path.abspath(value) == os.path.abspath(saved)
    return value == saved


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
        if not _same_setting(key, getattr(c, key), getattr(saved, key)):
            raise UsageError(f"cannot change --{key} when resuming (the run used {getattr(saved, key)!r})")
    for key in given & RESUMABLE_OVERRIDES:
        setattr(saved, key, getattr(c, key))
    saved.out_dir = c.out_dir  # the directory the checkpoint came from, even if the run was moved
    saved.resume, saved.overwrite = True, False  # (the run may have been started with --overwrite)
    if saved.max_iters < ckpt["step"]:
        raise UsageError(f"--max_iters={saved.max_iters} is below the checkpoint's step {ckpt['step']}")
    check_schedule(saved)
    planned = ckpt["train_config"]["max_iters"]
    if saved.max_iters != planned and saved.lr_schedule != "constant":
        # a decay is laid out over max_iters: another max_iters would change the LR of every remaining step
        # (raising it would restart a finished decay from high up), so a decayed run cannot be extended
        raise UsageError(f"cannot change --max_iters when resuming a --lr_schedule={saved.lr_schedule} run: its "
                         f"decay is laid out over max_iters={planned}; train a new run with the new --max_iters")
    check_config(saved)
    return saved, ckpt
