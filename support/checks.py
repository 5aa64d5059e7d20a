"""
The checks train.py runs on its flags, its device and its data before anything is written: every value
torch would reject with a traceback, or accept and silently misuse, becomes one line (a UsageError)
that names the flag and the fix.

    check_config(c)                          every flag of a train.TrainConfig
    pick_device(name)                        auto -> cuda > mps > cpu; a named device must exist
    check_data_sizes(c, train, val, where)   the splits hold the windows the run will draw
    check_threads(n, flag), set_threads(n)   a thread count torch can start (--threads=100000 crashes it)
    check_schedule(c), schedule_warning(c)   a warm-up that never ends, or leaves little of the run after it
"""
import argparse
import dataclasses
import math
import os
import re

import torch

from support.cli import UsageError

CHOICES = {"lr_schedule": ("constant", "cosine", "linear")}


def check_config(c):
    """Raises UsageError for the first flag of c (a train.TrainConfig) that is out of range."""
    for key in ("n_layer", "n_head", "n_embd", "block_size", "batch_size", "grad_accum", "max_iters", "n_probe",
                "n_eval"):
        if getattr(c, key) < 1:
            raise UsageError(f"--{key} must be at least 1, got {getattr(c, key)}")
    for key in ("warmup_iters", "record_per_octave", "ckpt_per_octave", "eval_per_octave"):
        if getattr(c, key) < 0:
            raise UsageError(f"--{key} must not be negative, got {getattr(c, key)}")
    if c.n_embd % c.n_head:
        raise UsageError(f"--n_embd ({c.n_embd}) must be divisible by --n_head ({c.n_head})")
    if not c.learning_rate > 0:
        raise UsageError(f"--learning_rate must be positive, got {c.learning_rate}")
    if not 0.0 <= c.warmup_start <= 1.0:
        raise UsageError(f"--warmup_start is a fraction of the peak LR in [0, 1], got {c.warmup_start}")
    if not 0.0 <= c.dropout < 1.0:
        raise UsageError(f"--dropout must be in [0, 1), got {c.dropout}")
    for key, allowed in CHOICES.items():
        if getattr(c, key) not in allowed:
            raise UsageError(f"--{key} must be one of {', '.join(allowed)}, got {getattr(c, key)!r}")
    if not c.resume:  # (a resume's schedule is the saved run's: prepare_run_dir checks it)
        check_schedule(c)
    check_optimizer_and_system(c)


def check_schedule(c):
    """The warm-up must end before the run does: lr_at reaches the peak at step warmup_iters + 1, so
    with warmup_iters >= max_iters the run would never train at --learning_rate (nor decay from it)."""
    if c.warmup_iters >= c.max_iters:
        raise UsageError(f"--warmup_iters={c.warmup_iters} is not below --max_iters={c.max_iters}: the learning "
                         f"rate would never reach --learning_rate; use a shorter --warmup_iters or more --max_iters")


def check_optimizer_and_system(c):
    """The ranges torch would otherwise reject with a traceback, or accept and silently misuse."""
    for field in dataclasses.fields(c):
        if field.type is float and not math.isfinite(getattr(c, field.name)):
            raise UsageError(f"--{field.name} must be a finite number, got {getattr(c, field.name)}")
    for key in ("beta1", "beta2"):
        if not 0.0 <= getattr(c, key) < 1.0:
            raise UsageError(f"--{key} must be in [0, 1), got {getattr(c, key)} (AdamW's default: 0.9, 0.95)")
    if not c.adam_eps > 0:
        raise UsageError(f"--adam_eps must be positive, got {c.adam_eps} (the paper's: 1e-5)")
    for key in ("weight_decay", "grad_clip"):
        if getattr(c, key) < 0:
            raise UsageError(f"--{key} must not be negative, got {getattr(c, key)} (0 turns it off)")
    if not 0.0 <= c.min_lr <= c.learning_rate:
        # below 0 the decay would end in gradient ascent; above the peak it would be a warm-up, not a decay
        raise UsageError(f"--min_lr must be between 0 and --learning_rate ({c.learning_rate}), got {c.min_lr}")
    if not 0 <= c.seed < 2 ** 63:
        raise UsageError(f"--seed must be between 0 and 2**63 - 1, got {c.seed}")
    if not re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", c.device):
        raise UsageError(f"--device must be auto, cpu, cuda, cuda:N or mps, got {c.device!r}")
    for key in ("out_dir", "dataset"):
        if not getattr(c, key).strip():
            raise UsageError(f"--{key} must not be empty; give a directory name such as --{key}="
                             f"{getattr(type(c), key)}")
    if c.resume and c.overwrite:
        raise UsageError("--resume continues the run in out_dir and --overwrite deletes it; give only one")
    check_threads(c.threads, allow_zero=True)


def max_threads():
    """The most CPU threads a tool lets torch start: 4 per core (far more only slows down, and near
    100 000 torch crashes without a word)."""
    return 4 * (os.cpu_count() or 1)


def check_threads(threads, flag="--threads", allow_zero=False):
    """threads between 1 (0 with allow_zero: torch's choice) and max_threads(); else a UsageError."""
    low = 0 if allow_zero else 1
    if threads is not None and not low <= threads <= max_threads():
        raise UsageError(f"{flag} must be between {low} and {max_threads()} (4 per CPU core), got {threads}"
                         + ("; 0 lets torch choose" if allow_zero else "; leave it out to let torch choose"))


def threads_flag(text):
    """argparse's type for --threads: a whole number that check_threads accepts (else one line)."""
    try:
        threads = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid int value: {text!r}") from None  # (argparse's own words)
    try:
        check_threads(threads)
    except UsageError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return threads


def set_threads(threads):
    """torch's CPU threads for this process: threads if given (checked), else torch's own choice."""
    if threads:
        torch.set_num_threads(threads)


def schedule_warning(c):
    """A warning (one line) when the warm-up takes more than half the run: the learning rate then stays
    at its peak, or decays, over only what is left. None otherwise."""
    if c.warmup_iters * 2 <= c.max_iters:
        return None
    after = c.max_iters - c.warmup_iters
    if after <= 0:  # the run ends inside the warm-up: the peak is never reached
        return (f"warning: the warm-up takes {c.warmup_iters} steps and the run only {c.max_iters}, so the learning "
                f"rate never reaches --learning_rate; a shorter --warmup_iters or more --max_iters reaches it")
    phase = "stays at --learning_rate" if c.lr_schedule == "constant" else f"decays ({c.lr_schedule})"
    return (f"warning: the warm-up takes {c.warmup_iters} of the {c.max_iters} steps, so the learning rate "
            f"{phase} for only the last {after}; a shorter --warmup_iters or more --max_iters leaves more")


def pick_device(name):
    """'auto' -> 'cuda' if there is a GPU, else 'mps' on a Mac that has it, else 'cpu'. A named device
    must exist (raises UsageError)."""
    if name != "auto":
        if name.startswith("cuda") and not torch.cuda.is_available():
            raise UsageError(f"--device={name} but CUDA is not available; use --device=cpu or auto")
        if name.startswith("cuda:") and int(name[5:]) >= torch.cuda.device_count():
            raise UsageError(f"--device={name} but there are {torch.cuda.device_count()} CUDA devices; "
                             f"use cuda:0 to cuda:{torch.cuda.device_count() - 1}")
        if name == "mps" and not torch.backends.mps.is_available():
            raise UsageError("--device=mps but MPS is not available; use --device=cpu or auto")
        return name
    if torch.cuda.is_available():
        return "cuda"
    return "mps" if torch.backends.mps.is_available() else "cpu"


def check_data_sizes(c, train, val, data_dir):
    """Both splits must hold one window of block_size + 1 tokens, and the validation split n_probe +
    batch_size distinct ones (the probe and the update batch), else they would repeat windows."""
    for name, split in (("train", train), ("val", val)):
        if len(split) < c.block_size + 2:
            raise UsageError(f"the {name} split of {data_dir} has {len(split)} tokens, too few for one sequence "
                             f"of --block_size={c.block_size}; use more text or a smaller --block_size")
    if len(val) - c.block_size < c.n_probe + c.batch_size:
        raise UsageError(f"the val split of {data_dir} has {len(val)} tokens, too few for --n_probe + --batch_size "
                         f"= {c.n_probe + c.batch_size} distinct held-out windows; use more text or smaller values")
