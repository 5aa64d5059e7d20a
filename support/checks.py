"""
The checks train.py runs on its flags, its device and its data before anything is written: every value
torch would reject with a traceback, or accept and silently misuse, becomes one line (a UsageError)
that names the flag and the fix.

    check_config(c)                          every flag of a train.TrainConfig
    pick_device(name)                        auto -> cuda > mps > cpu; a named device must exist
    check_data_sizes(c, train, val, where)   the splits hold the windows the run will draw
"""
import dataclasses
import math
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
    check_optimizer_and_system(c)


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
