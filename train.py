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
    eval.csv               step,loss,lr,eval_s -- with --eval_per_octave: the mean loss of n_eval fixed
                           held-out sequences after update s, at log-spaced s (a quieter curve to fit)
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
files first, and --resume refuses data whose fingerprint differs from the run's (support/rundir.py).
"""
if __name__ == "__main__":  # Ctrl-C while torch loads (a second or more): one line, not a traceback
    from support.cli import quiet_ctrl_c_while_loading
    quiet_ctrl_c_while_loading("train.py")

import dataclasses
import math
import os
import signal
import sys
import time
from contextlib import ExitStack, nullcontext
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
from support.checks import check_config, check_data_sizes, pick_device, schedule_warning, set_threads
from support.cli import UsageError, guarded, stop_signals
from support.files import atomic_write, save_npz, write_csv
from support.rundir import (check_same_data, checkpoint_path, disk_full_hint, lock_run_dir, prepare_run_dir,
                            refuse_to_mix, start_run_dir)


# ----------------------------------------------------------------------------------------------
# Flags: every key has a default and a type; `--key=value` overrides it.
# Defaults: a tiny model whose loss curve bends (decelerates) near the end of warm-up, ~step 100,
# with about a decade of logged steps on each side of the bend, in a few minutes on 2 CPU cores.

@dataclass
class TrainConfig:
    # run directory and data
    out_dir: str = "out"              # where the run directory goes
    dataset: str = "stdlib"           # a directory under data/, or a path (relative: to the current directory,
                                      # stored absolute); stdlib, stdlib_bpeN built on first use
    resume: bool = False              # continue from the newest checkpoint in out_dir
    overwrite: bool = False           # allow starting afresh in an out_dir that already holds a run
    # model (see model.GPTConfig)
    n_layer: int = 2
    n_head: int = 4
    n_embd: int = 64
    block_size: int = 64
    dropout: float = 0.0
    bias: bool = True
    # optimisation: AdamW with the reference paper's settings (docs/science.md §4)
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
    eval_per_octave: int = 0          # held-out loss points per doubling of the step, in eval.csv (0: none)
    n_eval: int = 64                  # held-out sequences of that evaluation (fixed for the whole run)
    # system
    device: str = "auto"              # auto (cuda > mps > cpu), cpu, cuda, cuda:1, mps
    compile: bool = False             # torch.compile the model
    seed: int = 1337
    progress: bool = True             # tqdm progress bar
    threads: int = 0                  # torch CPU threads per process; 0: torch's choice


def parse_args(argv):
    """Returns (config, the set of keys the user gave explicitly); configurator.py reads the flags and
    support/checks.py checks them (UsageError: one line naming the flag)."""
    usage = f"{__doc__.strip().split(chr(10) * 2)[0]}\n\nusage: python train.py [CONFIG_FILE] [--key=value ...]"
    config, given = configurator.parse_flags(argv, TrainConfig(), usage)
    config.out_dir = os.path.expanduser(config.out_dir)  # ~/runs
    config.dataset = dataset_path(config.dataset)
    check_config(config)
    return config, given


def dataset_path(dataset):
    """--dataset as the run stores it: a name under data/ as it is; a path (~ expanded) made absolute
    against the current directory, so every tool that reads the run later finds the same data
    wherever it is started (prepare.dataset_dir)."""
    dataset = os.path.expanduser(dataset)
    return os.path.abspath(dataset) if os.sep in dataset else dataset


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
# The logs: one CSV row per step (log.csv) and per evaluation (eval.csv), each file rewritten whole
# (support/files.write_csv: a reader never sees half a file).

LOG_COLUMNS = ("step", "loss", "lr", "tokens", "time_s")
EVAL_COLUMNS = ("step", "loss", "lr", "eval_s")


# ----------------------------------------------------------------------------------------------
# Data: random windows of the training split; a fixed probe and update batch from validation.

def load_data(c, is_master):
    """(train tokens, val tokens, metadata with the data's fingerprint) of dataset c.dataset."""
    data_dir = prepare.dataset_dir(c.dataset)
    try:
        if is_master:  # "stdlib" and "stdlib_bpeN" are built on first use
            prepare.build_named_if_missing(c.dataset, data_dir)
        if dist.is_initialized():
            dist.barrier()  # the other processes wait until the data exists
        train, val, meta = prepare.load_dataset(data_dir)
    except prepare.DataError as e:
        raise UsageError(str(e))
    check_data_sizes(c, train, val, data_dir)
    return train, val, dict(meta, fingerprint=prepare.fingerprint(data_dir))


def fixed_eval_set(val, c):
    """n_eval evenly spaced validation windows, half a spacing away from the probe's: the held-out set
    of eval.csv (the same for every step of the run, so its curve moves only with the weights)."""
    starts = np.linspace(0, len(val) - c.block_size - 1, c.n_eval + 2)[1:-1].astype(np.int64)
    return windows(val, starts, c.block_size)


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
# Checkpoints: everything an exact resume needs (support/rundir.py finds and loads them)

def save_checkpoint(path, model, optimizer, step, c, model_config, data_rng_states, log_rows, elapsed,
                    data_fingerprint=None, eval_rows=()):
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
        "eval_rows": list(eval_rows),      # eval.csv's rows up to this step
        "elapsed": elapsed,
        "data_fingerprint": data_fingerprint,  # which data the run trained on (prepare.fingerprint)
    }
    atomic_write(path, lambda f: torch.save(state, f))


# ----------------------------------------------------------------------------------------------
# The run: processes, model and optimizer, the run directory, then the loop

def train(c, given=frozenset()):
    """Train (or resume) one run in c.out_dir. Returns 0 when it reached max_iters, or the signal (SIGINT:
    Ctrl-C; SIGTERM: what a cluster scheduler sends) that stopped it after the current step was saved."""
    with stop_signals() as stop_requested, ExitStack() as locks:  # the lock is released however the run ends
        run(c, given, stop_requested, locks)
    return stop_requested[0] if stop_requested else 0


def build_model(c, vocab_size, device, rank):
    """(model config, GPT, AdamW, this process's generator of batch positions), seeded by --seed."""
    torch.manual_seed(c.seed)
    model_config = GPTConfig(vocab_size=vocab_size, block_size=c.block_size, n_layer=c.n_layer,
                             n_head=c.n_head, n_embd=c.n_embd, dropout=c.dropout, bias=c.bias)
    model = GPT(model_config).to(device)
    optimizer = model.configure_optimizer(c.learning_rate, c.weight_decay, (c.beta1, c.beta2), c.adam_eps)
    data_rng = torch.Generator().manual_seed(c.seed + rank)  # each process draws its own batches
    return model_config, model, optimizer, data_rng


@dataclass
class Processes:
    """One process, or one of several under torchrun (DDP): which, and where it computes."""
    ddp: bool
    rank: int
    world: int
    device: str
    autocast: object  # bf16 autocast on CUDA only; a no-op (fp32) elsewhere

    @property
    def is_master(self):
        return self.rank == 0  # process 0 writes the run directory and prints


def start_processes(c):
    """This process's Processes; under torchrun, joins the group (nccl on GPUs, gloo on CPUs), one GPU each."""
    device, ddp, rank, world = pick_device(c.device), int(os.environ.get("RANK", -1)) != -1, 0, 1
    if ddp:
        dist.init_process_group(backend="nccl" if device.startswith("cuda") else "gloo")
        rank, world = dist.get_rank(), dist.get_world_size()
        if device.startswith("cuda"):
            device = f"cuda:{int(os.environ['LOCAL_RANK'])}"
            torch.cuda.set_device(device)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.startswith("cuda") else nullcontext()
    return Processes(ddp, rank, world, device, autocast)


def restore(ckpt, model, optimizer, data_rng, c, procs):
    """Load a checkpoint's weights, optimizer moments and random-number states, so that the resumed run
    takes exactly the steps the uninterrupted one would have. Returns (log rows, elapsed s, next step)."""
    model.load_state_dict(ckpt["model"])
    optimizer.load_state_dict(ckpt["optimizer"])
    saved_states = ckpt.get("data_rng_all", [ckpt["data_rng"]])
    if procs.rank < len(saved_states):
        data_rng.set_state(saved_states[procs.rank])
    else:  # a process the run did not have: a fresh stream, not a replay of the first steps' batches
        data_rng.manual_seed(c.seed + 1_000_003 * ckpt["step"] + procs.rank)
    if procs.world != len(saved_states) and procs.is_master:
        print(f"warning: resuming with {procs.world} processes where the run had {len(saved_states)}: "
              f"the batches from here on differ from an uninterrupted run", file=sys.stderr)
    torch.set_rng_state(ckpt["torch_rng"])
    if procs.device.startswith("cuda") and ckpt["cuda_rng"]:
        torch.cuda.set_rng_state_all(ckpt["cuda_rng"])
    return ckpt["log_rows"], ckpt["elapsed"], ckpt["step"] + 1


def run(c, given, stop_requested, locks):
    """train()'s body: every check first, then the run directory, then the loop."""
    locked = int(os.environ.get("RANK", 0)) == 0 and os.path.isdir(c.out_dir)
    if locked:
        locks.enter_context(lock_run_dir(c.out_dir))  # before reading the run: no other writer changes it now
    c, ckpt = prepare_run_dir(c, given)
    if ckpt is None:
        c.dataset = dataset_path(c.dataset)  # (a TrainConfig made in Python, not by parse_args)
    set_threads(c.threads)
    procs = start_processes(c)
    train_tokens, val_tokens, data_meta = load_data(c, procs.is_master)

    model_config, model, optimizer, data_rng = build_model(c, data_meta["vocab_size"], procs.device, procs.rank)
    log_rows, elapsed, start_step = [], 0.0, 1
    if ckpt is not None:
        check_same_data(ckpt, data_meta, model_config, c)
        log_rows, elapsed, start_step = restore(ckpt, model, optimizer, data_rng, c, procs)
    raw_model = model
    if c.compile:
        model = torch.compile(model)
    if procs.ddp:
        model = DDP(model, device_ids=[procs.device] if procs.device.startswith("cuda") else None)
    probe_x, probe_y, update_x, update_y = fixed_heldout_sets(val_tokens, c)
    if procs.is_master:  # every check has passed: only now is anything written
        if ckpt is None and schedule_warning(c):
            print(schedule_warning(c), file=sys.stderr)
        if not locked:  # a new out_dir: created here
            locks.enter_context(lock_run_dir(c.out_dir))
            refuse_to_mix(c)  # another process may have started a run in it meanwhile
        info = {"train": dataclasses.asdict(c), "model": dataclasses.asdict(model_config), "data": data_meta,
                "data_fingerprint": data_meta["fingerprint"], "world_size": procs.world, "device": procs.device,
                "non_embedding_params": raw_model.num_params()}
        if ckpt is not None:  # the log up to the checkpoint, without the steps taken after it
            write_csv(os.path.join(c.out_dir, "log.csv"), LOG_COLUMNS, log_rows)
        start_run_dir(c.out_dir, ckpt, info, (probe_x, probe_y, update_x, update_y))

    eval_x, eval_y = fixed_eval_set(val_tokens, c)
    eval_steps = log_spaced_steps(c.max_iters, c.eval_per_octave) if c.eval_per_octave else set()
    eval_rows = list(ckpt.get("eval_rows", [])) if ckpt is not None else []

    def losses_on(x, y):  # [B, T] per-token losses of the current weights, in eval mode
        return per_token_losses(raw_model, x, y, procs.device, procs.autocast)

    def evaluate(step, lr):  # eval.csv: the held-out loss after update `step`, at log-spaced steps
        if procs.is_master and step in eval_steps:
            t0 = time.perf_counter()
            loss = float(losses_on(eval_x, eval_y).mean())
            eval_s = (float(eval_rows[-1][3]) if eval_rows else 0.0) + time.perf_counter() - t0  # its cost
            eval_rows.append((step, f"{loss:.6f}", f"{lr:.6g}", f"{eval_s:.3f}"))

    def flush(log_rows):  # log.csv (and eval.csv) as they are now: whole files, renamed into place
        write_csv(os.path.join(c.out_dir, "log.csv"), LOG_COLUMNS, log_rows)
        if eval_steps:
            write_csv(os.path.join(c.out_dir, "eval.csv"), EVAL_COLUMNS, eval_rows)

    def save(step, log_rows, elapsed, data_rng_states):  # a checkpoint: all that an exact resume needs
        save_checkpoint(checkpoint_path(c.out_dir, step), raw_model, optimizer, step, c, model_config,
                        data_rng_states, log_rows, elapsed, data_meta["fingerprint"], eval_rows)
        flush(log_rows)

    log_rows, elapsed, stopped = train_loop(c, procs, model, optimizer, data_rng, train_tokens, (probe_x, probe_y),
                                            (log_rows, elapsed, start_step), stop_requested, losses_on, evaluate,
                                            save, flush)
    if procs.is_master:
        report_end(c, log_rows, elapsed, stop_requested, stopped)
    if procs.ddp:  # every process at the end before any closes its connections (gloo aborts a peer left reading)
        dist.barrier()
        dist.destroy_process_group()


def train_loop(c, procs, model, optimizer, data_rng, train_tokens, probe, start, stop_requested, losses_on,
               evaluate, save, flush):
    """Steps start_step .. max_iters, one optimizer update each: the log row of every step, the per-token
    records and held-out losses at log-spaced steps, the checkpoints. Returns (log rows, elapsed s,
    whether it was stopped)."""
    (probe_x, probe_y), (log_rows, elapsed, start_step) = probe, start
    record_steps = log_spaced_steps(c.max_iters, c.record_per_octave) if c.record_per_octave else set()
    ckpt_steps = log_spaced_steps(c.max_iters, c.ckpt_per_octave)
    tokens_per_step = c.batch_size * c.grad_accum * c.block_size * procs.world
    bar = tqdm(range(start_step, c.max_iters + 1), initial=start_step - 1, total=c.max_iters,
               disable=not (procs.is_master and c.progress), unit="step", dynamic_ncols=True, mininterval=0.5)
    last_flush, stop = time.time(), False
    for step in bar:
        t0 = time.perf_counter()
        lr = lr_at(step, c)
        for group in optimizer.param_groups:
            group["lr"] = lr
        batches = [windows(train_tokens, torch.randint(len(train_tokens) - c.block_size - 1, (c.batch_size,),
                                                       generator=data_rng).numpy(), c.block_size)
                   for _ in range(c.grad_accum)]
        recording = procs.is_master and step in record_steps
        if recording:  # the per-token losses just before the update (with dropout: measured in eval mode)
            train_x, train_y = torch.cat([x for x, _ in batches]), torch.cat([y for _, y in batches])
            probe_before = losses_on(probe_x, probe_y)
            train_before = losses_on(train_x, train_y) if c.dropout > 0 else None

        # forward/backward over the micro-batches, keeping the per-token losses of the training forward
        batch_losses = []
        for micro, (x, y) in enumerate(batches):
            if procs.ddp:  # average gradients across processes only on the last micro-batch
                model.require_backward_grad_sync = micro == c.grad_accum - 1
            with procs.autocast:
                _, token_losses = model(x.to(procs.device), y.to(procs.device), per_token=True)
            (token_losses.mean() / c.grad_accum).backward()
            batch_losses.append(token_losses.detach())
        if c.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), c.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

        batch_losses = torch.cat(batch_losses)
        loss, stop = step_status(batch_losses, stop_requested, procs)  # the loss averaged over processes
        elapsed += time.perf_counter() - t0
        tokens = (log_rows[-1][3] if log_rows else 0) + tokens_per_step  # cumulative, whatever the world size was
        row = (step, f"{loss:.6f}", f"{lr:.6g}", tokens, f"{elapsed:.3f}")
        if not math.isfinite(loss):
            stop_diverged(c, step, loss, log_rows + [row], procs.is_master)
        if recording:  # without dropout, the training forward's own per-token losses are the "before" losses
            save_npz(os.path.join(c.out_dir, "records", f"step_{step:06d}.npz"), train_x=train_x.numpy(),
                     train_y=train_y.numpy(), probe_before=probe_before, probe_after=losses_on(probe_x, probe_y),
                     train_before=batch_losses.float().cpu().numpy() if train_before is None else train_before,
                     train_after=losses_on(train_x, train_y), step=np.int64(step), lr=np.float64(lr))
        evaluate(step, lr)
        checkpointing = step in ckpt_steps or stop
        data_rng_states = gather_rng_states(data_rng, procs) if checkpointing else None  # (all processes)
        if procs.is_master:
            log_rows.append(row)
            bar.set_postfix(loss=f"{loss:.3f}", tok_s=f"{tokens_per_step / (time.perf_counter() - t0):,.0f}",
                            refresh=False)
            if checkpointing:
                save(step, log_rows, elapsed, data_rng_states)
            elif time.time() - last_flush > 2.0:  # keep log.csv fresh for a run in progress
                flush(log_rows)
                last_flush = time.time()
        if stop:
            break
    bar.close()
    return log_rows, elapsed, stop


def step_status(batch_losses, stop_requested, procs):
    """(the step's training loss averaged over all processes, whether any process was asked to stop)."""
    status = torch.tensor([batch_losses.mean().item(), float(bool(stop_requested))], device=procs.device)
    if procs.ddp:
        dist.all_reduce(status)
    return status[0].item() / procs.world, status[1].item() > 0


def gather_rng_states(data_rng, procs):
    """Every process's position in its stream of random batches, by rank (all processes take part)."""
    states = [data_rng.get_state()] * procs.world
    if procs.ddp:
        dist.all_gather_object(states, data_rng.get_state())
    return states


def stop_diverged(c, step, loss, log_rows, is_master):
    """A nan or inf loss: log.csv keeps every step up to this one (it shows the blow-up), then stop."""
    if is_master:
        write_csv(os.path.join(c.out_dir, "log.csv"), LOG_COLUMNS, log_rows)
    raise UsageError(f"the loss became {loss} at step {step} (log.csv holds every step up to it); "
                     f"start afresh with a smaller --learning_rate and --overwrite")


def report_end(c, log_rows, elapsed, stop_requested, stopped):
    """The last line: done, or where the interrupted run was saved and how to continue it."""
    if stopped:
        cause = signal.Signals(stop_requested[0]).name if stop_requested else "another process stopped"
        step = log_rows[-1][0]
        print(f"interrupted ({cause}): saved step {step} to {checkpoint_path(c.out_dir, step)}; "
              f"continue with: python train.py --out_dir={c.out_dir} --resume", file=sys.stderr)
    elif not stop_requested:
        print(f"done: {len(log_rows)} steps, last batch loss {float(log_rows[-1][1]):.4f}, "
              f"{elapsed:.1f} s of training; run directory: {c.out_dir}")


def main(argv=None):
    """The command line: 0 when the run reached --max_iters, 130 or 143 after Ctrl-C or SIGTERM (the step
    was saved), 2 and one line for bad input, a full disk or out of memory (support/cli.py)."""
    parsed = []

    def run_from_flags():
        config, given = parse_args(sys.argv[1:] if argv is None else argv)
        parsed.append(config)
        interrupted = train(config, given)
        return 128 + interrupted if interrupted else 0  # 130 after Ctrl-C (SIGINT), 143 after SIGTERM

    def os_hint():  # after a full disk: --resume, --overwrite or a rerun, by what the run directory holds
        return disk_full_hint(parsed[0].out_dir if parsed else None)
    return guarded("train.py", run_from_flags, os_hint=os_hint,
                   memory_hint="use a smaller --batch_size, --n_embd or --n_layer")


if __name__ == "__main__":
    sys.exit(main())
