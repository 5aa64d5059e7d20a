"""
zsl.py's command line: flags, the checks made before any long computation, the run directories'
locks, the processes under torchrun, and what is written and printed. The science is in zsl.py;
this file only calls zsl.analyse_run and zsl.headline.

    python zsl.py RUN_DIR [RUN_DIR ...]         # runs this file's main()
    torchrun --standalone --nproc_per_node=2 zsl.py RUN_DIR

Under torchrun every process runs main(); process 0 writes and prints. zsl.json of the runs already
finished is kept if a later one fails. Exit status and one-line errors: support/cli.py.
"""
import argparse
import contextlib
import json
import os
import sys

import torch
import torch.distributed as dist

import zsl
from plots import write_figures
from support.checks import set_threads, threads_flag
from support.cli import OneLineParser, UsageError, guarded
from support.files import json_safe, write_json
from support.rundir import check_out_dir, lock_run_dir
from support.runfiles import check_run_dir



def _step_list(text):
    try:
        steps = [int(s) for s in text.split(",") if s.strip()]
        if not steps or min(steps) < 1:
            raise ValueError
        return steps
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated steps like 64,128, got {text!r}") from None


def _steps_text(steps):
    return ", ".join(map(str, steps))


def _subset_sizes(text):
    if text.strip().lower() == "none":
        return []
    try:
        sizes = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        sizes = [0]
    if not sizes or any(n < 1 for n in sizes):
        raise argparse.ArgumentTypeError(f"expected comma-separated token counts >= 1 like 64,256 (or none), "
                                         f"got {text!r}")
    return sizes


def start_processes(device):
    """(rank, world size, device) of this process; under torchrun, joins the process group."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if device == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device=cuda but torch sees no GPU; use --device=cpu")
    if world == 1:
        return 0, 1, device
    if device == "cuda":
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local_rank)
        device = f"cuda:{local_rank}"
    dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
    return dist.get_rank(), world, device


def parse_args(argv):
    p = OneLineParser(prog="zsl.py", allow_abbrev=False,
                      description="Zero-sum learning metrics for train.py runs.")
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="train.py --out_dir(s)")
    p.add_argument("--steps", type=_step_list, default=None,
                   help="checkpoint steps for the gradient analysis, e.g. 64,128 (default: all)")
    p.add_argument("--max_checkpoints", type=int, default=None,
                   help="analyse at most this many checkpoints, spread over the run (default: all)")
    p.add_argument("--probe_tokens", type=int, default=None,
                   help="per-token gradients on only this many probe tokens (default: the whole probe)")
    p.add_argument("--no_grad", action="store_true", help="skip the checkpoint (gradient) analysis")
    p.add_argument("--no_update", action="store_true", help="skip the one-AdamW-step update link")
    p.add_argument("--chunk", type=int, default=16, help="positions per prefix forward (speed only)")
    p.add_argument("--hist_step", type=int, default=None,
                   help="checkpoint step of the C_j histogram (default: the last; nearest is used)")
    p.add_argument("--fig_dir", default=None,
                   help="where the overlay figures of several runs go (default: the runs' common "
                        "parent directory); each run's own figures go into the run")
    p.add_argument("--json", action="store_true", help="print the per-step summary as JSON on stdout")
    p.add_argument("--no_progress", action="store_true", help="no progress bars")
    p.add_argument("--threads", type=threads_flag, default=None,
                   help="torch CPU threads (default: torch's choice; 1 is faster on a busy machine)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the gradient rows of an earlier zsl.json even if made with other settings "
                        "(default: add to them, and refuse to mix settings)")
    p.add_argument("--n_signs", type=int, default=zsl.N_SIGNS,
                   help="random sign patterns K of the Monte Carlo null (0: only the free CLT null)")
    p.add_argument("--subsets", type=_subset_sizes, default=None,
                   help="token counts N of D against N, e.g. 64,256 (default: 64, 256, 1024, ... below "
                        "the probe, always plus all of it; 'none': only all of it)")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                   help="under torchrun, cuda uses one GPU per process (NCCL), cpu uses gloo")
    args = p.parse_args(argv)
    if args.n_signs < 0 or args.n_signs == 1:
        p.error(f"--n_signs must be 0 or at least 2 (its error needs two), got {args.n_signs}")
    for name in ("max_checkpoints", "probe_tokens", "chunk"):
        value = getattr(args, name)
        if value is not None and value < 1:
            p.error(f"--{name} must be >= 1, got {value}")
    if args.fig_dir is not None and len(args.run_dirs) < 2:
        p.error("--fig_dir is for the overlay of several runs; one run's figures go into its directory")
    if args.hist_step is not None and args.hist_step < 1:
        p.error(f"--hist_step must be a checkpoint step >= 1, got {args.hist_step}")
    if args.no_grad and (args.steps or args.max_checkpoints or args.probe_tokens or args.overwrite):
        given = [f for f, v in (("--steps", args.steps), ("--max_checkpoints", args.max_checkpoints),
                                ("--probe_tokens", args.probe_tokens), ("--overwrite", args.overwrite)) if v]
        p.error(f"{given[0]} is for the gradient analysis, which --no_grad skips; give one or the other")
    return args


def main(argv=None):
    """python zsl.py ...: returns the exit status (0, or 2 and one line for bad input: support/cli.py)."""
    return guarded("zsl.py", run_command, sys.argv[1:] if argv is None else argv)


def run_command(argv):
    args = parse_args(argv)
    set_threads(args.threads)
    with contextlib.ExitStack() as locks:
        analyse_all(args, locks)


def lock_runs(run_dirs, locks):
    """Process 0 holds the lock of every run directory it will write into, until it is done."""
    for run_dir in {os.path.realpath(r): r for r in run_dirs}.values():  # (a directory given twice: locked once)
        if os.path.isdir(run_dir):  # (a missing one is reported by check_run_dir)
            locks.enter_context(lock_run_dir(run_dir, tool="zsl.py", create=False,
                                             fix="analyse a copy of the run"))


def analyse_all(args, locks):
    try:
        rank, world, device = start_processes(args.device)
        if rank == 0:
            lock_runs(args.run_dirs, locks)
        fig_dir = None
        if len(args.run_dirs) > 1:
            fig_dir = args.fig_dir or os.path.commonpath([os.path.abspath(r) for r in args.run_dirs])
            if os.path.exists(fig_dir) and not os.path.isdir(fig_dir):
                raise UsageError(f"--fig_dir={fig_dir} is a file, not a directory; give a directory")
            check_out_dir(fig_dir, flag="--fig_dir")
        for run_dir in args.run_dirs:  # fail before any long computation
            check_run_dir(run_dir, need_probe=not args.no_grad, probe_tokens=args.probe_tokens,
                          update=not args.no_update, steps=args.steps, max_checkpoints=args.max_checkpoints,
                          n_signs=args.n_signs, subset_sizes=args.subsets, overwrite=args.overwrite)
            if not os.access(run_dir, os.W_OK):
                raise UsageError(f"{run_dir}: cannot write zsl.json there (no permission); copy the run "
                               "to a directory you can write to")
            if os.path.lexists(os.path.join(run_dir, "zsl.json")) and not os.path.isfile(os.path.join(run_dir, "zsl.json")):
                raise UsageError(f"{os.path.join(run_dir, 'zsl.json')} is in the way: zsl.py writes a file there, and "
                                 "it is not one (a directory?); move it away")
        summaries = []
        for run_dir in args.run_dirs:
            summary = zsl.analyse_run(run_dir, steps=args.steps, max_checkpoints=args.max_checkpoints,
                                  probe_tokens=args.probe_tokens, grad=not args.no_grad,
                                  update=not args.no_update, chunk=args.chunk,
                                  progress=not args.no_progress and rank == 0, n_signs=args.n_signs,
                                  subset_sizes=args.subsets, rank=rank, world=world, device=device,
                                  print_time=rank == 0, overwrite=args.overwrite)
            if rank > 0:  # process 0 writes and prints
                continue
            write_json(os.path.join(run_dir, "zsl.json"), summary)
            figures = write_figures([summary], run_dir, args.hist_step)
            summaries.append(summary)
            notes = []
            if summary["kept_rows"]:
                notes.append(f"kept zsl.json's earlier analysis of checkpoint(s) {_steps_text(summary['kept_rows'])}")
            if summary["stale_rows"]:
                notes.append(f"dropped zsl.json's earlier analysis of checkpoint(s) "
                             f"{_steps_text(summary['stale_rows'])}: "
                             + ("replaced (--overwrite)" if args.overwrite else "changed or gone since"))
            if summary["nonfinite_records"]:
                notes.append(f"left out record(s) {_steps_text(summary['nonfinite_records'])}: nan or "
                             "inf losses (the run diverged)")
            if not args.json:
                print(f"{run_dir}: {len(summary['loss_interference'])} records, "
                      f"{len(summary['gradient_interference'])} checkpoints analysed -> zsl.json, "
                      + (", ".join(os.path.basename(f) for f in figures) or "no figures (no data)")
                      + "\n  " + zsl.headline(summary) + "".join(f"\n  {n}" for n in notes))
            else:
                for note in notes:
                    print(f"zsl.py: {run_dir}: {note}", file=sys.stderr)
        if len(summaries) > 1 and rank == 0:
            os.makedirs(fig_dir, exist_ok=True)
            figures = write_figures(summaries, fig_dir, args.hist_step)
            if not args.json:
                print(f"overlay of {len(summaries)} runs -> " + ", ".join(figures))
        if args.json and rank == 0:
            print(json.dumps(json_safe([{"run_dir": s["run_dir"], "t_d": s["t_d"], "steps": s["steps"]}
                                         for s in summaries]), indent=1))
    finally:
        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()
