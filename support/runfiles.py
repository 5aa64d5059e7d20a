"""
A train.py run directory, as zsl.py reads it and keeps its results: the files, what of them to
analyse, and zsl.json from one analysis to the next. Nothing here measures interference; the
formulas and the analysis over a run's checkpoints are in zsl.py, which imports this file
(timescale.py, error_entropy.py and reproduce.py read runs through it too).

Read top to bottom (the layout of a run directory: README, train.py):

  1. reading the files: config.json, records/step_*.npz, probe.npz, checkpoints/step_*.pt
  2. what to analyse: which checkpoints, which probe tokens (a part of the recorded probe, or
     more held-out sequences from the run's validation split)
  3. the deceleration step t_d, from bnsl.py's fit of the loss curve
  4. zsl.json: the per-step table; on a rerun, the earlier gradient rows kept while their
     checkpoint is unchanged; written atomically
  5. the checks before a long analysis (every error a one-line UsageError that says the fix)
"""
import hashlib
import json
import os
import re
import sys

import numpy as np
import torch

from data import prepare
from support.cli import UsageError
from model import GPT, GPTConfig
from token_grads import default_subset_sizes, nested_subsets



# ---------------------------------------------------------------------------------------------
# 1. Reading the files (layout: see README / train.py)
# ---------------------------------------------------------------------------------------------

def step_of(path):
    """records/step_000123.npz -> 123"""
    return int(re.fullmatch(r"step_(\d+)\.\w+", os.path.basename(path)).group(1))


def _step_files(folder, extension):
    """folder/step_<digits>.<extension>, by step; any other name (a stray copy) is not a step file."""
    names = os.listdir(folder) if os.path.isdir(folder) else []
    paths = [os.path.join(folder, n) for n in names if re.fullmatch(rf"step_\d+\.{extension}", n)]
    return sorted(paths, key=step_of)


def load_config(run_dir):
    if not os.path.isdir(run_dir):
        raise UsageError(f"{run_dir}: {'a file, not a run directory' if os.path.exists(run_dir) else 'no such directory'}"
                         f"; pass the --out_dir of a train.py run")
    path = os.path.join(run_dir, "config.json")
    if not os.path.isfile(path):
        raise UsageError(f"{run_dir}: not a train.py run directory (no config.json); "
                       "pass the --out_dir of a train.py run")
    try:
        with open(path) as f:
            config = json.load(f)
    except (OSError, ValueError) as e:
        raise UsageError(f"{path}: unreadable ({e}); re-run train.py into a fresh --out_dir") from None
    if not isinstance(config, dict) or not {"train", "model"} <= set(config):
        raise UsageError(f"{path}: needs 'train' and 'model' sections; was it written by train.py?")
    return config


def record_paths(run_dir):
    return _step_files(os.path.join(run_dir, "records"), "npz")


def checkpoint_paths(run_dir):
    return _step_files(os.path.join(run_dir, "checkpoints"), "pt")


def _load_npz(path, keys):
    try:
        with np.load(path) as data:
            arrays = {k: data[k] for k in data.files}
    except Exception as e:  # truncated, not a zip, ...
        raise UsageError(f"{path}: unreadable ({type(e).__name__}); delete it or re-run train.py") from None
    missing = [k for k in keys if k not in arrays]
    if missing:
        raise UsageError(f"{path}: missing {', '.join(missing)}; was it written by this train.py?")
    return arrays


RECORD_KEYS = ("train_before", "train_after", "probe_before", "probe_after", "step", "lr")


def load_record(path):
    """A record's arrays, checked: a wrong shape would broadcast into a silently wrong Δℓ."""
    record = _load_npz(path, RECORD_KEYS)
    for kind in ("train", "probe"):
        before, after = record[f"{kind}_before"], record[f"{kind}_after"]
        if before.ndim != 2 or before.shape != after.shape:
            raise UsageError(f"{path}: {kind}_before {before.shape} and {kind}_after {after.shape} must "
                           "have one [sequences, positions] shape; delete the record or re-run train.py")
    if record["step"].size != 1 or record["lr"].size != 1 or int(record["step"]) != step_of(path):
        raise UsageError(f"{path}: holds step {record['step'].ravel()[:3].tolist()} and lr "
                       f"{record['lr'].ravel()[:3].tolist()}, not the single step of its name; "
                       "delete the record or re-run train.py")
    return record


def finite_record(record):
    """No nan or inf among a record's losses (a run that diverged has them)."""
    return all(np.all(np.isfinite(record[key])) for key in RECORD_KEYS)


def load_probe(run_dir, fix="or pass --no_grad to analyse the records only"):
    """The run's probe.npz as long tensors; `fix`: what the calling tool can do without it."""
    path = os.path.join(run_dir, "probe.npz")
    if not os.path.isfile(path):
        raise UsageError(f"{run_dir}: no probe.npz; it is written by train.py at the start of a run "
                       f"({fix})")
    probe = _load_npz(path, ("x", "y", "update_x", "update_y"))
    return {k: torch.from_numpy(v).long() for k, v in probe.items()}


def load_checkpoint(path):
    """Returns (model in eval mode, checkpoint dict). The weights are those after update ckpt['step']."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
        missing = [k for k in ("model", "optimizer", "step", "lr", "train_config", "model_config")
                   if k not in ckpt]
        if missing:
            raise KeyError(", ".join(missing))
        model = GPT(GPTConfig(**ckpt["model_config"]))
        model.load_state_dict(ckpt["model"])
    except Exception as e:  # not a torch file, missing keys, wrong shapes, ...
        raise UsageError(f"{path}: unusable checkpoint ({type(e).__name__}: {e}); "
                       "delete it or re-run train.py") from None
    return model.eval(), ckpt


_WARNED = set()


def run_dataset(run_dir, need="its dataset"):
    """(data_dir, train tokens, val tokens, meta) of the dataset the run trained on, checked to be the
    same tokens: its fingerprint (prepare.fingerprint) must be the one train.py stored in config.json, so a
    dataset rebuilt from other text since is refused, not silently analysed. A relative dataset path is
    taken from the current directory (train.py stores it absolute; older runs may not). `need` says
    what the dataset is needed for, in the messages. Raises UsageError."""
    config = load_config(run_dir)
    dataset = config["train"].get("dataset")
    if not dataset:
        raise UsageError(f"{run_dir}: config.json names no dataset, which {need} needs; re-run train.py")
    data_dir = prepare.dataset_dir(dataset)
    where = (f" (config.json gives the relative path {dataset!r}, taken from the current directory: run this "
             f"where train.py ran)" if os.sep in dataset and not os.path.isabs(dataset) else "")
    try:
        train, val, meta = prepare.load_dataset(data_dir)
        now = prepare.fingerprint(data_dir)
    except prepare.DataError as e:
        raise UsageError(f"{run_dir}: {need} is needed: {e}{where}") from None
    then = config.get("data_fingerprint")
    if then is None:  # a run from before fingerprints: warned about once per run, however often it is read
        if os.path.abspath(run_dir) not in _WARNED:
            _WARNED.add(os.path.abspath(run_dir))
            print(f"warning: {run_dir} predates dataset fingerprints; cannot check that {data_dir} holds the "
                  f"tokens it trained on", file=sys.stderr)
    elif then != now:
        raise UsageError(f"{run_dir}: the dataset {data_dir} changed since the run trained on it (fingerprint "
                         f"{then}, now {now}){where}; restore that data, or retrain the run on the new data")
    return data_dir, train, val, meta


def nonfinite_record_steps(run_dir):
    """Steps whose record holds nan or inf per-token losses (zsl.loss_interference leaves them out)."""
    return [step_of(p) for p in record_paths(run_dir) if not finite_record(load_record(p))]


# ---------------------------------------------------------------------------------------------
# 2. What to analyse: which checkpoints, which probe tokens
# ---------------------------------------------------------------------------------------------

def pick_checkpoints(paths, steps=None, max_checkpoints=None):
    """[(step, path)] to analyse: those of the given steps (default: all), at most max_checkpoints."""
    by_step = {step_of(p): p for p in paths}
    if steps:
        missing = [s for s in steps if s not in by_step]
        if missing:
            raise UsageError(f"no checkpoint at step {missing[0]}; available: "
                           f"{', '.join(map(str, sorted(by_step))) or 'none'}")
        chosen = sorted(set(steps))
    else:
        chosen = sorted(by_step)
    if max_checkpoints and len(chosen) > max_checkpoints:  # spread evenly, always keep the last
        idx = np.unique(np.round(np.linspace(0, len(chosen) - 1, max_checkpoints)).astype(int))
        chosen = [chosen[i] for i in idx]
    return [(s, by_step[s]) for s in chosen]


def probe_subset(probe, probe_tokens=None):
    """(x, y, n_positions): whole probe sequences, or a prefix of one if fewer tokens are asked for."""
    x, y = probe["x"], probe["y"]
    T = x.shape[1]
    if probe_tokens and (probe_tokens > x.numel() or (probe_tokens > T and probe_tokens % T)):
        raise UsageError(f"--probe_tokens={probe_tokens}: the probe holds {x.shape[0]} sequences of {T} "
                       f"tokens; use at most {T} (a prefix of one sequence) or a multiple of {T} up "
                       f"to {x.numel()}")
    if not probe_tokens or probe_tokens == x.numel():
        return x, y, T
    if probe_tokens >= T:
        n_seq = probe_tokens // T
        return x[:n_seq], y[:n_seq], T
    return x[:1], y[:1], probe_tokens


EXTRA_PROBE_SEED = 2


def extended_probe(run_dir, probe, n_sequences):
    """
    The recorded probe (probe.npz) plus more held-out sequences from the run's validation split, for
    a probe larger than train.py recorded (--probe_tokens beyond n_probe × block_size). The extra
    sequences: the validation split cut into consecutive, non-overlapping windows of block_size + 1
    tokens; those overlapping the recorded probe or the update batch dropped; the rest in one fixed
    random order (seed EXTRA_PROBE_SEED), first come first taken. So a larger probe always extends a
    smaller one, and the recorded probe is always its first n_probe sequences.
    """
    config = load_config(run_dir)
    T, n_probe = probe["x"].shape[1], probe["x"].shape[0]
    data_dir, _, val, _ = run_dataset(run_dir, need=f"its dataset (for a probe beyond the recorded {n_probe * T} "
                                                    f"tokens; or lower --probe_tokens)")
    # where train.fixed_heldout_sets took the probe and the update batch from
    used = np.linspace(0, len(val) - T - 1, n_probe + config["train"]["batch_size"]).astype(np.int64)
    recorded_x, _ = prepare.windows(val, used[:n_probe], T)
    if len(val) < T + 2 or not torch.equal(recorded_x, probe["x"]):
        raise UsageError(f"{data_dir}: its validation split is not the one {run_dir} was trained with "
                       f"(the recorded probe differs); rebuild that dataset or lower --probe_tokens")
    grid = np.arange(0, len(val) - T, T + 1)                              # non-overlapping windows
    nearest = np.abs(grid[:, None] - used[None, :]).min(axis=1)           # fine: used has n_probe + batch
    free = grid[nearest > T]                                              # no shared token with any used window
    free = free[np.random.default_rng(EXTRA_PROBE_SEED).permutation(len(free))]
    need = n_sequences - n_probe
    if need > len(free):
        raise UsageError(f"{run_dir}: the validation split holds at most {(n_probe + len(free)) * T} probe "
                       f"tokens of {T}-token sequences; lower --probe_tokens")
    extra_x, extra_y = prepare.windows(val, free[:need], T)
    return {**probe, "x": torch.cat([probe["x"], extra_x]), "y": torch.cat([probe["y"], extra_y])}


def probe_tokens_for(run_dir, probe, probe_tokens=None):
    """(x, y, n_positions) of the probe_tokens to analyse: the recorded probe, a part of it, or more."""
    if probe_tokens and probe_tokens > probe["x"].numel():
        probe = extended_probe(run_dir, probe, probe_tokens // probe["x"].shape[1])
    return probe_subset(probe, probe_tokens)


# ---------------------------------------------------------------------------------------------
# 3. The deceleration step t_d (bnsl.py's fit of log.csv)
# ---------------------------------------------------------------------------------------------

def deceleration(run_dir):
    """(t_d, None) when deceleration.py judges the run's training-loss curve a deceleration -- a supported
    break that is neither the learning-rate schedule nor the run's end (docs/science.md §9) -- else
    (None, why not). No other break is ever used as t_d."""
    import curves
    import deceleration as bend
    try:
        curve = curves.read_curve(run_dir)
        judged = bend.deceleration_verdict(curve["steps"], curve["losses"], curve["lr"])
    except UsageError as e:  # too short, diverged, ...: no fit, no marker
        return None, f"bnsl.py could not fit the loss curve ({e})"
    if judged["verdict"] == "none":
        return None, f"bnsl.py found no supported deceleration ({judged['reason']})"
    if judged["t_d"] is None:  # a supported break, but the schedule's or the run's end: no deceleration
        return None, f"bnsl.py's break is judged '{judged['verdict']}', not a deceleration ({judged['reason']})"
    return float(judged["t_d"]), None


def deceleration_step(run_dir):
    """t_d from bnsl.py's 1-break fit, or None if there is no supported deceleration."""
    return deceleration(run_dir)[0]


# ---------------------------------------------------------------------------------------------
# 4. zsl.json: the per-step table; on a rerun, the earlier rows still valid; written atomically
# ---------------------------------------------------------------------------------------------

def step_rows(summary):
    """The per-step table: D and M of each Δℓ variant, and D(∇θℓ) where a checkpoint was analysed."""
    rows = {}
    for r in summary["loss_interference"]:
        rows[r["step"]] = {
            "step": r["step"],
            "D_train": r["train"]["D"], "M_train": r["train"]["M"],
            "D_probe": r["probe"]["D"], "M_probe": r["probe"]["M"],
            "D_interval": r["interval"]["D"] if r["interval"] else None,
            "M_interval": r["interval"]["M"] if r["interval"] else None,
        }
    for g in summary["gradient_interference"]:
        row = rows.setdefault(g["step"], {"step": g["step"]})
        row["D_grad"] = g["D_grad"]
        row["D_grad_global"] = g["D_grad_global"]
        for key in ("D_null_sign", "D_null_mc", "excess_sign", "excess_mc"):
            row[key] = g.get(key)
        if "update" in g:
            row["D_update_measured"] = g["update"]["D_measured"]
            row["D_update_predicted"] = g["update"]["D_predicted"]
            row["C_g"] = g["update"]["C_g"]
    return [rows[s] for s in sorted(rows)]


# Rerunning on a run that already has a zsl.json: a narrower analysis never destroys a wider one.
# The gradient rows (the expensive part) of the old zsl.json are kept for every checkpoint this
# run does not analyse again, as long as that checkpoint file is unchanged (its sha256 is stored
# with the row) and the rows were made with the same probe tokens and update link (rows made
# otherwise cannot be shown as one series: that is refused, not mixed). Records are always read
# afresh. A row whose checkpoint is gone or rewritten (e.g. train.py --overwrite) is dropped.

def checkpoint_fingerprint(path):
    """sha256 of a checkpoint file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


SETTING_FLAGS = ("--probe_tokens", "--no_update", "--n_signs", "--subsets")


def _row_settings(row):
    """(probe tokens, update link, sign patterns K, the N of D against N) a gradient row was made with;
    None where a row of an older zsl.py does not say."""
    by_n = row.get("by_n")
    return (row.get("n_tokens"), "update" in row, row.get("n_signs"),
            tuple(r["n_tokens"] for r in by_n) if by_n else None)


def _same_settings(old, new):
    return all(a is None or b is None or a == b for a, b in zip(old, new))


def _describe(settings):
    n_tokens, update, n_signs, sizes = settings
    return (f"{n_tokens} probe tokens, {'with' if update else 'without (--no_update)'} the update link"
            + (f", {n_signs} sign patterns" if n_signs is not None else "")
            + (f", D against N at N = {', '.join(map(str, sizes))}" if sizes else ""))


def earlier_gradient_rows(run_dir):
    """The gradient rows of an earlier zsl.json, read as they are ([] if there is none or it is unreadable)."""
    try:
        with open(os.path.join(run_dir, "zsl.json")) as f:
            rows = json.load(f)["gradient_interference"]
        return [row for row in rows if isinstance(row, dict) and "step" in row]
    except (OSError, ValueError, KeyError, TypeError):
        return []


def previous_gradient_rows(run_dir, settings=None):
    """(rows of the old zsl.json still valid, steps of rows dropped as stale). With settings =
    (n_tokens, update) of a new gradient analysis, raise UsageError if valid rows differ from it."""
    path = os.path.join(run_dir, "zsl.json")
    if not os.path.exists(path):
        return [], []
    try:
        with open(path) as f:
            rows = json.load(f)["gradient_interference"]
        steps = [int(row["step"]) for row in rows]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise UsageError(f"{path}: unreadable ({type(e).__name__}); it may hold results of an earlier "
                       "analysis: move it away, then rerun") from None
    by_step = {step_of(p): p for p in checkpoint_paths(run_dir)}
    kept, stale = [], []
    for step, row in zip(steps, rows):
        checkpoint = by_step.get(step)
        if checkpoint is None:
            unchanged = False
        elif "checkpoint_sha256" in row:
            unchanged = row["checkpoint_sha256"] == checkpoint_fingerprint(checkpoint)
        else:  # a row written before fingerprints: valid if the checkpoint is older than zsl.json
            unchanged = os.path.getmtime(checkpoint) <= os.path.getmtime(path)
        if unchanged:
            kept.append(row)
        else:
            stale.append(step)
    if settings is not None:
        other = [_row_settings(row) for row in kept if not _same_settings(_row_settings(row), settings)]
        if other:
            raise UsageError(f"{path} holds gradient results over {_describe(other[0])}; this analysis "
                           f"would use {_describe(settings)} and cannot be mixed with them: rerun with "
                           f"the same {' / '.join(SETTING_FLAGS)} to add to them, or pass --overwrite to "
                           "replace them")
    return kept, stale


def merge_gradient_rows(new_rows, kept_rows):
    """The new rows, plus the kept old rows of every step the new analysis did not redo."""
    redone = {row["step"] for row in new_rows}
    return sorted(new_rows + [row for row in kept_rows if row["step"] not in redone],
                  key=lambda row: row["step"])


# ---------------------------------------------------------------------------------------------
# 5. The checks before a long analysis
# ---------------------------------------------------------------------------------------------

def check_run_dir(run_dir, need_probe, probe_tokens=None, update=True, steps=None,
                  max_checkpoints=None, n_signs=None, subset_sizes=None, overwrite=False):
    """Fail early, with a fix, on anything that would stop the analysis half-way, or mix its gradient rows
    with those of an earlier zsl.json made otherwise (unless overwrite: they are replaced)."""
    load_config(run_dir)
    if not record_paths(run_dir) and not checkpoint_paths(run_dir):
        raise UsageError(f"{run_dir}: no records/step_*.npz and no checkpoints/step_*.pt yet; "
                       "let train.py run longer")
    if need_probe and checkpoint_paths(run_dir):
        x, _, n_positions = probe_tokens_for(run_dir, load_probe(run_dir), probe_tokens)
        chosen = pick_checkpoints(checkpoint_paths(run_dir), steps, max_checkpoints)
        for step, path in chosen:
            model, _ = load_checkpoint(path)
            if not all(bool(torch.isfinite(p).all()) for p in model.parameters()):
                finite = [s for s, _ in chosen if s < step]
                raise UsageError(f"{path}: nan or inf weights (the run diverged); analyse the "
                               f"checkpoints before it with --steps={','.join(map(str, finite)) or 'N'}"
                               " or the records only with --no_grad")
        n_tokens = x.shape[0] * n_positions
        sizes = nested_subsets(x.shape[0], n_positions, default_subset_sizes(n_tokens) if subset_sizes is None
                               else subset_sizes)[1]   # the N of D against N, as gradient_interference makes them
        if not overwrite:
            previous_gradient_rows(run_dir, settings=(n_tokens, update, n_signs, tuple(sizes)))
