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
name, then renamed), so a crash or Ctrl-C never leaves a half-written file behind.
"""
import ast
import csv
import dataclasses
import difflib
import io
import json
import math
import os
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

from model import GPT, GPTConfig

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "data"))
import prepare  # noqa: E402  (data/prepare.py)


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


class ConfigError(Exception):
    """Bad input: reported to the user as one line, without a traceback."""


def parse_value(key, text, kind):
    """'3e-3' -> 0.003 for a float key, 'true' -> True for a bool key, and so on."""
    if kind is bool:
        if text.lower() in ("1", "true", "yes", "on"):
            return True
        if text.lower() in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"--{key} takes true or false, got {text!r}")
    try:
        return kind(text)
    except ValueError:
        raise ConfigError(f"--{key} takes a {kind.__name__}, got {text!r}")


def read_config_file(path):
    """A preset: a JSON object, or a .py file of plain `key = literal` lines (read, never executed)."""
    if not os.path.isfile(path):
        raise ConfigError(f"config file {path!r} does not exist")
    with open(path) as f:
        text = f.read()
    if path.endswith(".json"):
        try:
            values = json.loads(text)
        except json.JSONDecodeError as e:
            raise ConfigError(f"config file {path!r} is not valid JSON ({e.msg}, line {e.lineno})")
        if not isinstance(values, dict):
            raise ConfigError(f"config file {path!r} must hold a JSON object of flags")
        return values
    try:
        tree = ast.parse(text, path)
    except SyntaxError as e:
        raise ConfigError(f"config file {path!r} line {e.lineno}: not valid Python")
    values = {}
    for node in tree.body:
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            continue  # a docstring
        if not (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)):
            raise ConfigError(f"config file {path!r} line {node.lineno}: only `key = value` lines are allowed")
        try:
            values[node.targets[0].id] = ast.literal_eval(node.value)
        except ValueError:
            raise ConfigError(f"config file {path!r} line {node.lineno}: the value must be a literal")
    return values


def apply_setting(config, key, value, kinds):
    """Set one flag, checking the key exists and the value has the key's type."""
    if key not in kinds:
        close = difflib.get_close_matches(key, kinds, n=1)
        hint = f" (did you mean --{close[0]}?)" if close else " (see --help)"
        raise ConfigError(f"unknown flag --{key}{hint}")
    kind = kinds[key]
    if isinstance(value, str) and kind is not str:
        value = parse_value(key, value, kind)
    elif kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    elif not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ConfigError(f"--{key} takes a {kind.__name__}, got {value!r}")
    setattr(config, key, value)


def help_text():
    lines = [__doc__.strip().split("\n\n")[0], "", "usage: python train.py [CONFIG_FILE] [--key=value ...]", "",
             "flags (default):"]
    for field in dataclasses.fields(TrainConfig):
        lines.append(f"  --{field.name}={field.default}")
    return "\n".join(lines)


def parse_args(argv):
    """Returns (config, the set of keys the user gave explicitly)."""
    config = TrainConfig()
    kinds = {field.name: field.type for field in dataclasses.fields(TrainConfig)}  # int, float, bool or str
    given = set()
    for arg in argv:
        if arg in ("-h", "--help"):
            print(help_text())
            sys.exit(0)
        if not arg.startswith("--"):
            for key, value in read_config_file(arg).items():
                apply_setting(config, key, value, kinds)
                given.add(key)
            continue
        key, has_value, value = arg[2:].partition("=")
        if not has_value:
            if kinds.get(key) is not bool:
                raise ConfigError(f"--{key} needs a value: --{key}=VALUE" if key in kinds else f"unknown flag --{key}")
            value = "true"  # a bare --resume means --resume=true
        apply_setting(config, key, value, kinds)
        given.add(key)
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
    data_dir = c.dataset if os.sep in c.dataset else os.path.join(prepare.DATA_ROOT, c.dataset)
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
    return train, val, meta


def windows(tokens, starts, block_size):
    """x[b] = tokens[s : s + T], y[b] = tokens[s + 1 : s + T + 1] for each start s."""
    idx = np.asarray(starts)[:, None] + np.arange(block_size + 1)
    chunk = torch.from_numpy(tokens[idx].astype(np.int64))
    return chunk[:, :-1].contiguous(), chunk[:, 1:].contiguous()


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


def latest_checkpoint(out_dir):
    folder = os.path.join(out_dir, "checkpoints")
    names = sorted(n for n in os.listdir(folder) if n.startswith("step_") and n.endswith(".pt")) \
        if os.path.isdir(folder) else []
    return os.path.join(folder, names[-1]) if names else None


def save_checkpoint(path, model, optimizer, step, c, model_config, data_rng, log_rows, elapsed):
    state = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "step": step,                      # updates done: these are the weights after update `step`
        "lr": lr_at(step + 1, c),          # the learning rate the next update would use
        "train_config": dataclasses.asdict(c),
        "model_config": dataclasses.asdict(model_config),
        "torch_rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "data_rng": data_rng.get_state(),  # the position in the stream of random batches
        "log_rows": log_rows,
        "elapsed": elapsed,
    }
    atomic_write(path, lambda f: torch.save(state, f))


# ----------------------------------------------------------------------------------------------
# The run

def pick_device(name):
    if name != "auto":
        if name.startswith("cuda") and not torch.cuda.is_available():
            raise ConfigError(f"--device={name} but CUDA is not available; use --device=cpu or auto")
        if name == "mps" and not torch.backends.mps.is_available():
            raise ConfigError("--device=mps but MPS is not available; use --device=cpu or auto")
        return name
    if torch.cuda.is_available():
        return "cuda"
    return "mps" if torch.backends.mps.is_available() else "cpu"


def prepare_run_dir(c, given):
    """Check out_dir against --resume / --overwrite; on resume, the saved flags come back."""
    has_run = os.path.isfile(os.path.join(c.out_dir, "config.json"))
    if not c.resume:
        if has_run and not c.overwrite:
            raise ConfigError(f"{c.out_dir!r} already holds a run; continue it with --resume, "
                              f"start afresh with --overwrite, or pick another --out_dir")
        return c, None
    ckpt_path = latest_checkpoint(c.out_dir)
    if ckpt_path is None:
        raise ConfigError(f"nothing to resume: no checkpoint in {os.path.join(c.out_dir, 'checkpoints')!r}")
    ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=False)
    saved = TrainConfig(**ckpt["train_config"])
    for key in given - RESUMABLE_OVERRIDES:
        if getattr(c, key) != getattr(saved, key):
            raise ConfigError(f"cannot change --{key} when resuming (the run used {getattr(saved, key)!r})")
    for key in given & RESUMABLE_OVERRIDES:
        setattr(saved, key, getattr(c, key))
    if saved.max_iters < ckpt["step"]:
        raise ConfigError(f"--max_iters={saved.max_iters} is below the checkpoint's step {ckpt['step']}")
    return saved, ckpt


def train(c, given=frozenset()):
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
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        data_rng.set_state(ckpt["data_rng"])
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
    if is_master:
        os.makedirs(os.path.join(c.out_dir, "records"), exist_ok=True)
        os.makedirs(os.path.join(c.out_dir, "checkpoints"), exist_ok=True)
        info = {"train": dataclasses.asdict(c), "model": dataclasses.asdict(model_config), "data": data_meta,
                "world_size": world, "device": device, "non_embedding_params": raw_model.num_params()}
        atomic_write(os.path.join(c.out_dir, "config.json"), lambda f: f.write(json.dumps(info, indent=2).encode()))
        save_npz(os.path.join(c.out_dir, "probe.npz"), x=probe_x.numpy(), y=probe_y.numpy(),
                 update_x=update_x.numpy(), update_y=update_y.numpy())
    log_path = os.path.join(c.out_dir, "log.csv")
    tokens_per_step = c.batch_size * c.grad_accum * c.block_size * world

    def save(step):
        save_checkpoint(checkpoint_path(c.out_dir, step), raw_model, optimizer, step, c, model_config,
                        data_rng, log_rows, elapsed)
        write_log(log_path, log_rows)

    # Ctrl-C asks the loop to stop after the current step (a second Ctrl-C aborts at once)
    stop_requested = []

    def on_interrupt(signum, frame):
        if stop_requested:
            raise KeyboardInterrupt
        stop_requested.append(signum)

    previous_handler = signal.signal(signal.SIGINT, on_interrupt)

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
        if not math.isfinite(loss):
            raise ConfigError(f"the loss became {loss} at step {step}; try a smaller --learning_rate")
        elapsed += time.perf_counter() - t0

        if recording:
            if c.dropout == 0:  # the training forward's own per-token losses are the "before" losses
                train_before = batch_losses.float().cpu().numpy()
            save_npz(os.path.join(c.out_dir, "records", f"step_{step:06d}.npz"),
                     train_x=train_x.numpy(), train_y=train_y.numpy(), train_before=train_before,
                     train_after=per_token_losses(raw_model, train_x, train_y, device, autocast),
                     probe_before=probe_before,
                     probe_after=per_token_losses(raw_model, probe_x, probe_y, device, autocast),
                     step=np.int64(step), lr=np.float64(lr))
        if is_master:
            log_rows.append((step, f"{loss:.6f}", f"{lr:.6g}", step * tokens_per_step, f"{elapsed:.3f}"))
            bar.set_postfix(loss=f"{loss:.3f}", tok_s=f"{tokens_per_step / (time.perf_counter() - t0):,.0f}", refresh=False)
            if step in ckpt_steps or stop:
                save(step)
            elif time.time() - last_flush > 2.0:  # keep log.csv fresh for a run in progress
                write_log(log_path, log_rows)
                last_flush = time.time()
        if stop:
            bar.close()
            if is_master:
                print(f"interrupted: saved step {step} to {checkpoint_path(c.out_dir, step)}; "
                      f"continue with: python train.py --out_dir={c.out_dir} --resume", file=sys.stderr)
            break
    bar.close()
    signal.signal(signal.SIGINT, previous_handler)
    if is_master and not stop_requested:
        write_log(log_path, log_rows)
        print(f"done: {len(log_rows)} steps, final loss {float(log_rows[-1][1]):.4f}, "
              f"{elapsed:.1f} s of training; run directory: {c.out_dir}")
    if ddp:
        dist.destroy_process_group()
    return bool(stop_requested)


def main(argv=None):
    try:
        config, given = parse_args(sys.argv[1:] if argv is None else argv)
        interrupted = train(config, given)
    except ConfigError as e:
        sys.exit(f"train.py: error: {e}")
    except KeyboardInterrupt:  # a second Ctrl-C: stop at once (the last checkpoint stays as it was)
        sys.exit("train.py: aborted")
    if interrupted:
        sys.exit(130)


if __name__ == "__main__":
    main()
