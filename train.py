"""
Train a small GPT and record everything needed to study its loss curve.

    python train.py                                  # tiny model on the default data, a few minutes on CPU
    python train.py --n_layer=4 --n_embd=256 --max_iters=5000
    python train.py config/tiny.py --seed=2           # a preset file, then overrides
    python train.py --out_dir=out --resume           # continue an interrupted run
    torchrun --standalone --nproc_per_node=2 train.py # several processes (DDP; gloo on CPU, nccl on GPU)
    python train.py --help                           # every flag with its default

What lands in --out_dir (the run directory; bnsl.py and zsl.py read it):

    config.json            every flag, the model config and the dataset's metadata
    log.csv                step,loss,lr,tokens,time_s -- one row per optimizer step
    probe.npz              x, y: the fixed held-out probe sequences [n_probe, block_size];
                           update_x, update_y: a held-out batch no step trains on (for zsl.py)
    records/step_NNNNNN.npz  per-token losses at log-spaced steps s (float32):
                           train_x, train_y       the batch update s trained on
                           train_before/_after    its per-token losses just before/after update s
                           probe_before/_after    the probe's per-token losses just before/after update s
    checkpoints/step_NNNNNN.pt  model + optimizer + RNG + data position + config after update s,
                           at log-spaced steps and at the end (and on Ctrl-C)

Steps count optimizer updates from 1. Every file is written atomically (to a temporary
name, then renamed), so a crash or Ctrl-C never leaves a half-written file behind. One run per
directory: a second train.py on it is refused (out_dir/.lock), --overwrite deletes the old run's
files first, and --resume refuses data whose fingerprint differs from the run's (rundir.py).
"""
import csv
import dataclasses
import io
import json
import math
import os
import re
import signal
import sys
import time
from contextlib import nullcontext
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel as DDP
from tqdm import tqdm

import configurator
from data import prepare
from data.prepare import windows
from model import GPT, GPTConfig
from support.rundir import (ConfigError, check_out_dir, check_same_data, clear_old_run, drop_records_after,
                    lock_run_dir, refuse_to_mix)



# ----------------------------------------------------------------------------------------------
# Flags: every key has a default and a type; `--key=value` overrides it.
# Defaults: a tiny model whose loss curve bends (decelerates) near the end of warm-up, ~step 100,
# with about a decade of logged steps on each side of the bend, in a few minutes on 2 CPU cores.

@dataclass
class TrainConfig:
    # run directory and data
    out_dir: str = "out"              # where the run directory goes
    dataset: str = "stdlib"           # a directory under data/ (or a path); stdlib, stdlib_bpeN built on first use
    resume: bool = False              # continue from the newest checkpoint in out_dir
    overwrite: bool = False           # allow starting afresh in an out_dir that already holds a run
    # model (see model.GPTConfig)
    n_layer: int = 2
    n_head: int = 4
    n_embd: int = 64
    block_size: int = 64
    dropout: float = 0.0
    bias: bool = True
    # optimisation: AdamW with the reference paper's settings (design.md section 4)
    batch_size: int = 32              # sequences per step per process (times grad_accum)
    grad_accum: int = 1               # micro-batches per optimizer step
    max_iters: int = 3000             # optimizer steps
    learning_rate: float = 3e-3       # peak learning rate
    weight_decay: float = 0.1         # not applied to embeddings, biases, LayerNorm gains
    beta1: float = 0.9
    beta2: float = 0.95
    adam_eps: float = 1e-5
    grad_clip: float = 1.0            # clip the global gradient norm to this; 0 disables
    warmup_iters: int = 100           # linear warm-up steps
    warmup_start: float = 0.1         # warm-up starts at this fraction of the peak LR (OLMo: 0.1)
    lr_schedule: str = "constant"     # after warm-up: constant (the paper's), cosine or linear decay
    min_lr: float = 0.0               # where cosine / linear decay ends
    # recording
    record_per_octave: int = 8        # per-token loss records per doubling of the step (0: none)
    n_probe: int = 16                 # held-out probe sequences recorded at each record step
    ckpt_per_octave: int = 1          # checkpoints per doubling of the step (1: powers of two; 0: end only)
    # system
    device: str = "auto"              # auto (cuda > mps > cpu), cpu, cuda, cuda:1, mps
    compile: bool = False             # torch.compile the model
    seed: int = 1337
    progress: bool = True             # tqdm progress bar


# keys that may differ from the saved run when resuming (everything else must match)
RESUMABLE_OVERRIDES = {"max_iters", "device", "compile", "progress", "resume", "out_dir", "overwrite"}
CHOICES = {"lr_schedule": ("constant", "cosine", "linear")}


# ConfigError (bad input, reported as one line without a traceback) comes from rundir.py.


def parse_args(argv):
    """Returns (config, the set of keys the user gave explicitly); configurator.py reads the flags."""
    usage = f"{__doc__.strip().split(chr(10) * 2)[0]}\n\nusage: python train.py [CONFIG_FILE] [--key=value ...]"
    config, given = configurator.parse_flags(argv, TrainConfig(), usage)
    config.out_dir, config.dataset = os.path.expanduser(config.out_dir), os.path.expanduser(config.dataset)  # ~/runs
    check_config(config)
    return config, given


def check_config(c):
    for key in ("n_layer", "n_head", "n_embd", "block_size", "batch_size", "grad_accum", "max_iters", "n_probe"):
        if getattr(c, key) < 1:
            raise ConfigError(f"--{key} must be at least 1, got {getattr(c, key)}")
    for key in ("warmup_iters", "record_per_octave", "ckpt_per_octave"):
        if getattr(c, key) < 0:
            raise ConfigError(f"--{key} must not be negative, got {getattr(c, key)}")
    if c.n_embd % c.n_head:
        raise ConfigError(f"--n_embd ({c.n_embd}) must be divisible by --n_head ({c.n_head})")
    if not c.learning_rate > 0:
        raise ConfigError(f"--learning_rate must be positive, got {c.learning_rate}")
    if not 0.0 <= c.warmup_start <= 1.0:
        raise ConfigError(f"--warmup_start is a fraction of the peak LR in [0, 1], got {c.warmup_start}")
    if not 0.0 <= c.dropout < 1.0:
        raise ConfigError(f"--dropout must be in [0, 1), got {c.dropout}")
    for key, allowed in CHOICES.items():
        if getattr(c, key) not in allowed:
            raise ConfigError(f"--{key} must be one of {', '.join(allowed)}, got {getattr(c, key)!r}")
    check_optimizer_and_system(c)


def check_optimizer_and_system(c):
    """The ranges torch would otherwise reject with a traceback, or accept and silently misuse."""
    for field in dataclasses.fields(c):
        if field.type is float and not math.isfinite(getattr(c, field.name)):
            raise ConfigError(f"--{field.name} must be a finite number, got {getattr(c, field.name)}")
    for key in ("beta1", "beta2"):
        if not 0.0 <= getattr(c, key) < 1.0:
            raise ConfigError(f"--{key} must be in [0, 1), got {getattr(c, key)} (AdamW's default: 0.9, 0.95)")
    if not c.adam_eps > 0:
        raise ConfigError(f"--adam_eps must be positive, got {c.adam_eps} (the paper's: 1e-5)")
    for key in ("weight_decay", "grad_clip"):
        if getattr(c, key) < 0:
            raise ConfigError(f"--{key} must not be negative, got {getattr(c, key)} (0 turns it off)")
    if not 0.0 <= c.min_lr <= c.learning_rate:
        # below 0 the decay would end in gradient ascent; above the peak it would be a warm-up, not a decay
        raise ConfigError(f"--min_lr must be between 0 and --learning_rate ({c.learning_rate}), got {c.min_lr}")
    if not 0 <= c.seed < 2 ** 63:
        raise ConfigError(f"--seed must be between 0 and 2**63 - 1, got {c.seed}")
    if not re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", c.device):
        raise ConfigError(f"--device must be auto, cpu, cuda, cuda:N or mps, got {c.device!r}")
    for key in ("out_dir", "dataset"):
        if not getattr(c, key).strip():
            raise ConfigError(f"--{key} must not be empty; give a directory name such as --{key}="
                              f"{getattr(TrainConfig, key)}")
    if c.resume and c.overwrite:
        raise ConfigError("--resume continues the run in out_dir and --overwrite deletes it; give only one")


# ----------------------------------------------------------------------------------------------
# Schedules: the learning rate at each step, and the log-spaced steps to record and checkpoint at.

def lr_at(step, c):
    """Learning rate used by update `step` (1-based)."""
    if step <= c.warmup_iters:
        # linear warm-up from warmup_start * peak (step 1) towards the peak (step warmup_iters + 1)
        return c.learning_rate * (c.warmup_start + (1 - c.warmup_start) * (step - 1) / c.warmup_iters)
    if c.lr_schedule == "constant":
        return c.learning_rate
    progress = (step - c.warmup_iters - 1) / max(1, c.max_iters - c.warmup_iters - 1)  # 0 -> 1 after warm-up
    progress = min(progress, 1.0)  # past max_iters (the last checkpoint's "next" LR) the decay has ended: min_lr
    if c.lr_schedule == "cosine":
        return c.min_lr + 0.5 * (1 + math.cos(math.pi * progress)) * (c.learning_rate - c.min_lr)
    return c.learning_rate - progress * (c.learning_rate - c.min_lr)  # linear


def log_spaced_steps(max_iters, per_octave):
    """round(2^(k / per_octave)) for k = 0, 1, ... up to max_iters, plus max_iters itself."""
    if per_octave == 0:
        return {max_iters}
    n_points = int(math.log2(max_iters) * per_octave) + 1
    return {round(2 ** (k / per_octave)) for k in range(n_points)} | {max_iters}


# ----------------------------------------------------------------------------------------------
# Atomic files: write to a temporary name in the same directory, then rename over the target.

def atomic_write(path, write):
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "wb") as f:
        write(f)
    os.replace(tmp, path)


def write_log(path, rows):
    def write(f):
        text = io.StringIO()
        csv.writer(text, lineterminator="\n").writerows([("step", "loss", "lr", "tokens", "time_s")] + rows)
        f.write(text.getvalue().encode())
    atomic_write(path, write)


def save_npz(path, **arrays):
    atomic_write(path, lambda f: np.savez(f, **arrays))


# ----------------------------------------------------------------------------------------------
# Data: random windows of the training split; a fixed probe and update batch from validation.

def load_data(c, is_master):
    data_dir = prepare.dataset_dir(c.dataset)
    if is_master:  # "stdlib" and "stdlib_bpeN" are built on first use
        try:
            prepare.build_named_if_missing(c.dataset, data_dir)
        except prepare.DataError as e:
            raise ConfigError(str(e))
    if dist.is_initialized():
        dist.barrier()  # the other processes wait until the data exists
    try:
        train, val, meta = prepare.load_dataset(data_dir)
    except prepare.DataError as e:
        raise ConfigError(str(e))
    for name, split in (("train", train), ("val", val)):
        if len(split) < c.block_size + 2:
            raise ConfigError(f"the {name} split of {data_dir} has {len(split)} tokens, too few for one sequence "
                              f"of --block_size={c.block_size}; use more text or a smaller --block_size")
    if len(val) - c.block_size < c.n_probe + c.batch_size:  # else the probe and the update batch repeat windows
        raise ConfigError(f"the val split of {data_dir} has {len(val)} tokens, too few for --n_probe + --batch_size "
                          f"= {c.n_probe + c.batch_size} distinct held-out windows; use more text or smaller values")
    return train, val, dict(meta, fingerprint=prepare.fingerprint(data_dir))


def fixed_heldout_sets(val, c):
    """Evenly spaced validation windows: the first n_probe form the probe, the rest the update batch."""
    starts = np.linspace(0, len(val) - c.block_size - 1, c.n_probe + c.batch_size).astype(np.int64)
    probe_x, probe_y = windows(val, starts[:c.n_probe], c.block_size)
    update_x, update_y = windows(val, starts[c.n_probe:], c.block_size)
    return probe_x, probe_y, update_x, update_y


@torch.no_grad()
def per_token_losses(model, x, y, device, autocast):
    """[B, T] per-token losses in eval mode (no dropout), as float32 numpy."""
    was_training = model.training
    model.eval()
    with autocast:
        _, losses = model(x.to(device), y.to(device), per_token=True)
    model.train(was_training)
    return losses.float().cpu().numpy()


# ----------------------------------------------------------------------------------------------
# Checkpoints

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
        raise ConfigError(f"nothing to resume: no checkpoint in {os.path.join(out_dir, 'checkpoints')!r}; "
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
    raise ConfigError(f"no readable checkpoint in {os.path.join(out_dir, 'checkpoints')!r} (all {len(steps)} are "
                      f"damaged); start afresh with --overwrite")


def save_checkpoint(path, model, optimizer, step, c, model_config, data_rng_states, log_rows, elapsed,
                    data_fingerprint=None):
    state = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "step": step,                      # updates done: these are the weights after update `step`
        "lr": lr_at(step + 1, c),          # the learning rate the next update would use
        "train_config": dataclasses.asdict(c),
        "model_config": dataclasses.asdict(model_config),
        "torch_rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "data_rng": data_rng_states[0],    # the position in the stream of random batches (process 0)
        "data_rng_all": data_rng_states,   # ... and of every process, by rank
        "log_rows": log_rows,
        "elapsed": elapsed,
        "data_fingerprint": data_fingerprint,  # which data the run trained on (prepare.fingerprint)
    }
    atomic_write(path, lambda f: torch.save(state, f))


# ----------------------------------------------------------------------------------------------
# The run

def pick_device(name):
    if name != "auto":
        if name.startswith("cuda") and not torch.cuda.is_available():
            raise ConfigError(f"--device={name} but CUDA is not available; use --device=cpu or auto")
        if name.startswith("cuda:") and int(name[5:]) >= torch.cuda.device_count():
            raise ConfigError(f"--device={name} but there are {torch.cuda.device_count()} CUDA devices; "
                              f"use cuda:0 to cuda:{torch.cuda.device_count() - 1}")
        if name == "mps" and not torch.backends.mps.is_available():
            raise ConfigError("--device=mps but MPS is not available; use --device=cpu or auto")
        return name
    if torch.cuda.is_available():
        return "cuda"
    return "mps" if torch.backends.mps.is_available() else "cpu"


# ----------------------------------------------------------------------------------------------
# The run directory: one run per directory, one writer at a time, nothing of an old run left behind
# (rundir.py: the lock, the run's files, --overwrite, the checks on resume). Here: what --resume restores.

def prepare_run_dir(c, given):
    """Check out_dir against --resume / --overwrite (writing nothing); on resume, the saved flags come back."""
    check_out_dir(c.out_dir)
    if not c.resume:
        refuse_to_mix(c)
        return c, None
    ckpt = load_newest_checkpoint(c.out_dir)
    try:
        saved = TrainConfig(**ckpt["train_config"])
    except TypeError as e:
        raise ConfigError(f"the checkpoint of step {ckpt['step']} was written by another version of train.py "
                          f"({e}); resume it with that version or start afresh with --overwrite")
    for key in given - RESUMABLE_OVERRIDES:
        if getattr(c, key) != getattr(saved, key):
            raise ConfigError(f"cannot change --{key} when resuming (the run used {getattr(saved, key)!r})")
    for key in given & RESUMABLE_OVERRIDES:
        setattr(saved, key, getattr(c, key))
    saved.out_dir = c.out_dir  # the directory the checkpoint came from, even if the run was moved
    saved.resume, saved.overwrite = True, False  # (the run may have been started with --overwrite)
    if saved.max_iters < ckpt["step"]:
        raise ConfigError(f"--max_iters={saved.max_iters} is below the checkpoint's step {ckpt['step']}")
    planned = ckpt["train_config"]["max_iters"]
    if saved.max_iters != planned and saved.lr_schedule != "constant":
        # a decay is laid out over max_iters: another max_iters would change the LR of every remaining step
        # (raising it would restart a finished decay from high up), so a decayed run cannot be extended
        raise ConfigError(f"cannot change --max_iters when resuming a --lr_schedule={saved.lr_schedule} run: its "
                          f"decay is laid out over max_iters={planned}; train a new run with the new --max_iters")
    check_config(saved)
    return saved, ckpt


def train(c, given=frozenset()):
    """Train (or resume) one run in c.out_dir. Returns 0 when it reached max_iters, or the signal (SIGINT:
    Ctrl-C; SIGTERM: what a cluster scheduler sends) that stopped it after the current step was saved."""
    stop_requested = []  # signals received; the loop stops after the current step (a second one aborts at once)

    def on_signal(signum, frame):
        if stop_requested:
            raise KeyboardInterrupt
        stop_requested.append(signum)

    previous_handlers = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    held_locks = []  # the run directory's lock, once taken; released however the run ends
    try:
        run(c, given, stop_requested, held_locks)
    finally:
        for lock in held_locks:
            lock.close()
        for s, handler in previous_handlers.items():
            signal.signal(s, handler)
    return stop_requested[0] if stop_requested else 0


def run(c, given, stop_requested, held_locks):
    """train()'s body: every check first, then the run directory, then the loop."""
    if int(os.environ.get("RANK", 0)) == 0 and os.path.isdir(c.out_dir):
        held_locks.append(lock_run_dir(c.out_dir))  # before reading the run: no other writer changes it now
    c, ckpt = prepare_run_dir(c, given)

    # -- processes: one, or several under torchrun (DDP) ----------------------------------------
    ddp = int(os.environ.get("RANK", -1)) != -1
    rank, world = 0, 1
    device = pick_device(c.device)
    if ddp:
        use_nccl = device.startswith("cuda")
        dist.init_process_group(backend="nccl" if use_nccl else "gloo")
        rank, world = dist.get_rank(), dist.get_world_size()
        if use_nccl:
            device = f"cuda:{int(os.environ['LOCAL_RANK'])}"
            torch.cuda.set_device(device)
    is_master = rank == 0
    device_type = "cuda" if device.startswith("cuda") else device
    # bf16 autocast on CUDA only; fp32 elsewhere
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device_type == "cuda" else nullcontext()
    train_tokens, val_tokens, data_meta = load_data(c, is_master)

    # -- model and optimizer ----------------------------------------------------------------------
    torch.manual_seed(c.seed)
    model_config = GPTConfig(vocab_size=data_meta["vocab_size"], block_size=c.block_size, n_layer=c.n_layer,
                             n_head=c.n_head, n_embd=c.n_embd, dropout=c.dropout, bias=c.bias)
    model = GPT(model_config).to(device)
    optimizer = model.configure_optimizer(c.learning_rate, c.weight_decay, (c.beta1, c.beta2), c.adam_eps)
    data_rng = torch.Generator().manual_seed(c.seed + rank)  # each process draws its own batches
    log_rows, elapsed, start_step = [], 0.0, 1
    if ckpt is not None:
        check_same_data(ckpt, data_meta, model_config, c)
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        saved_states = ckpt.get("data_rng_all", [ckpt["data_rng"]])
        if rank < len(saved_states):
            data_rng.set_state(saved_states[rank])
        else:  # a process the run did not have: a fresh stream, not a replay of the first steps' batches
            data_rng.manual_seed(c.seed + 1_000_003 * ckpt["step"] + rank)
        if world != len(saved_states) and is_master:
            print(f"warning: resuming with {world} processes where the run had {len(saved_states)}: "
                  f"the batches from here on differ from an uninterrupted run", file=sys.stderr)
        torch.set_rng_state(ckpt["torch_rng"])
        if device_type == "cuda" and ckpt["cuda_rng"]:
            torch.cuda.set_rng_state_all(ckpt["cuda_rng"])
        log_rows, elapsed, start_step = ckpt["log_rows"], ckpt["elapsed"], ckpt["step"] + 1
    raw_model = model
    if c.compile:
        model = torch.compile(model)
    if ddp:
        model = DDP(model, device_ids=[device] if device_type == "cuda" else None)

    # -- the run directory ------------------------------------------------------------------------
    probe_x, probe_y, update_x, update_y = fixed_heldout_sets(val_tokens, c)
    record_steps = log_spaced_steps(c.max_iters, c.record_per_octave) if c.record_per_octave else set()
    ckpt_steps = log_spaced_steps(c.max_iters, c.ckpt_per_octave)
    log_path = os.path.join(c.out_dir, "log.csv")
    if is_master:  # every check has passed: only now is anything written
        if not held_locks:  # a new out_dir: created here
            held_locks.append(lock_run_dir(c.out_dir))
            refuse_to_mix(c)  # another process may have started a run in it meanwhile
        if ckpt is None:
            clear_old_run(c.out_dir)  # --overwrite (refuse_to_mix let it through)
        else:
            drop_records_after(c.out_dir, ckpt["step"])
            write_log(log_path, log_rows)
        os.makedirs(os.path.join(c.out_dir, "records"), exist_ok=True)
        os.makedirs(os.path.join(c.out_dir, "checkpoints"), exist_ok=True)
        info = {"train": dataclasses.asdict(c), "model": dataclasses.asdict(model_config), "data": data_meta,
                "data_fingerprint": data_meta["fingerprint"], "world_size": world, "device": device,
                "non_embedding_params": raw_model.num_params()}
        atomic_write(os.path.join(c.out_dir, "config.json"), lambda f: f.write(json.dumps(info, indent=2).encode()))
        if ckpt is None or not os.path.isfile(os.path.join(c.out_dir, "probe.npz")):  # same data: same probe
            save_npz(os.path.join(c.out_dir, "probe.npz"), x=probe_x.numpy(), y=probe_y.numpy(),
                     update_x=update_x.numpy(), update_y=update_y.numpy())
    tokens_per_step = c.batch_size * c.grad_accum * c.block_size * world

    def save(step, data_rng_states):
        save_checkpoint(checkpoint_path(c.out_dir, step), raw_model, optimizer, step, c, model_config,
                        data_rng_states, log_rows, elapsed, data_fingerprint=data_meta["fingerprint"])
        write_log(log_path, log_rows)

    # -- the loop: one optimizer update per step --------------------------------------------------
    bar = tqdm(range(start_step, c.max_iters + 1), initial=start_step - 1, total=c.max_iters,
               disable=not (is_master and c.progress), unit="step", dynamic_ncols=True, mininterval=0.5)
    last_flush = time.time()
    for step in bar:
        t0 = time.perf_counter()
        lr = lr_at(step, c)
        for group in optimizer.param_groups:
            group["lr"] = lr
        batches = [windows(train_tokens, torch.randint(len(train_tokens) - c.block_size - 1, (c.batch_size,),
                                                       generator=data_rng).numpy(), c.block_size)
                   for _ in range(c.grad_accum)]
        recording = is_master and step in record_steps
        if recording:
            probe_before = per_token_losses(raw_model, probe_x, probe_y, device, autocast)
            train_x, train_y = torch.cat([x for x, _ in batches]), torch.cat([y for _, y in batches])
            if c.dropout > 0:  # with dropout the training forward is noisy: measure "before" in eval mode
                train_before = per_token_losses(raw_model, train_x, train_y, device, autocast)

        # forward/backward over the micro-batches, keeping the per-token losses of the training forward
        batch_losses = []
        for micro, (x, y) in enumerate(batches):
            if ddp:  # average gradients across processes only on the last micro-batch
                model.require_backward_grad_sync = micro == c.grad_accum - 1
            with autocast:
                _, token_losses = model(x.to(device), y.to(device), per_token=True)
            (token_losses.mean() / c.grad_accum).backward()
            batch_losses.append(token_losses.detach())
        if c.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), c.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

        batch_losses = torch.cat(batch_losses)
        # the step's training loss (mean over all processes) and whether any process was interrupted
        status = torch.tensor([batch_losses.mean().item(), float(bool(stop_requested))], device=device)
        if ddp:
            dist.all_reduce(status)
        loss, stop = status[0].item() / world, status[1].item() > 0
        elapsed += time.perf_counter() - t0
        tokens = (log_rows[-1][3] if log_rows else 0) + tokens_per_step  # cumulative, whatever the world size was
        if not math.isfinite(loss):  # diverged: the log up to this step shows the blow-up
            if is_master:
                log_rows.append((step, f"{loss:.6f}", f"{lr:.6g}", tokens, f"{elapsed:.3f}"))
                write_log(log_path, log_rows)
            raise ConfigError(f"the loss became {loss} at step {step} (log.csv holds every step up to it); "
                              f"start afresh with a smaller --learning_rate and --overwrite")

        if recording:
            if c.dropout == 0:  # the training forward's own per-token losses are the "before" losses
                train_before = batch_losses.float().cpu().numpy()
            save_npz(os.path.join(c.out_dir, "records", f"step_{step:06d}.npz"),
                     train_x=train_x.numpy(), train_y=train_y.numpy(), train_before=train_before,
                     train_after=per_token_losses(raw_model, train_x, train_y, device, autocast),
                     probe_before=probe_before,
                     probe_after=per_token_losses(raw_model, probe_x, probe_y, device, autocast),
                     step=np.int64(step), lr=np.float64(lr))
        if step in ckpt_steps or stop:  # every process's position in its batches (all of them take part)
            data_rng_states = [data_rng.get_state()] * world
            if ddp:
                dist.all_gather_object(data_rng_states, data_rng.get_state())
        if is_master:
            log_rows.append((step, f"{loss:.6f}", f"{lr:.6g}", tokens, f"{elapsed:.3f}"))
            bar.set_postfix(loss=f"{loss:.3f}", tok_s=f"{tokens_per_step / (time.perf_counter() - t0):,.0f}", refresh=False)
            if step in ckpt_steps or stop:
                save(step, data_rng_states)
            elif time.time() - last_flush > 2.0:  # keep log.csv fresh for a run in progress
                write_log(log_path, log_rows)
                last_flush = time.time()
        if stop:
            bar.close()
            if is_master:
                cause = signal.Signals(stop_requested[0]).name if stop_requested else "another process stopped"
                print(f"interrupted ({cause}): saved step {step} to {checkpoint_path(c.out_dir, step)}; "
                      f"continue with: python train.py --out_dir={c.out_dir} --resume", file=sys.stderr)
            break
    bar.close()
    if is_master and not stop_requested:
        write_log(log_path, log_rows)
        print(f"done: {len(log_rows)} steps, final loss {float(log_rows[-1][1]):.4f}, "
              f"{elapsed:.1f} s of training; run directory: {c.out_dir}")
    if ddp:
        dist.destroy_process_group()


def main(argv=None):
    try:
        config, given = parse_args(sys.argv[1:] if argv is None else argv)
        interrupted = train(config, given)
    except ConfigError as e:
        sys.exit(f"train.py: error: {e}")
    except OSError as e:  # a full disk, a directory that vanished, ...: every file written so far is whole
        sys.exit(f"train.py: error: {e.strerror or e} ({e.filename}); free space or fix the path and --resume")
    except (MemoryError, RuntimeError) as e:  # torch reports a failed allocation as a RuntimeError
        if not isinstance(e, MemoryError) and "memory" not in str(e).lower():
            raise
        sys.exit(f"train.py: error: out of memory ({str(e).strip().splitlines()[0][:300]}); use a smaller "
                 f"--batch_size, --n_embd or --n_layer")
    except KeyboardInterrupt:  # a second Ctrl-C: stop at once (the last checkpoint stays as it was)
        sys.exit("train.py: aborted")
    if interrupted:
        sys.exit(128 + interrupted)  # 130 after Ctrl-C (SIGINT), 143 after SIGTERM


if __name__ == "__main__":
    main()
