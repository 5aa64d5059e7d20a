"""
Reproduce the paper's findings at small scale, in one command.

    python reproduce.py                                  # three sizes on CPU; writes report/
    python reproduce.py --seeds=1337,2,3                 # the same on three seeds, judged together
    python reproduce.py --sizes=4x256,6x384,8x512 --max_iters=20000 --warmup_iters=2000 \\
                        --block_size=256 --device=cuda   # the same experiment, bigger, on a GPU

It trains one GPT per size with train.py, fits the 1-break BNSL to each loss curve with
bnsl.py, measures zero-sum learning with zsl.py, and writes into --out_dir:

    runs/<size>/          each size's run directory (train.py's layout, plus zsl.json);
                          runs/<size>.log: what its training and analysis printed
    loss_fits.png         loss curves, BNSL fits and t_d           (finding 1)
    scaling.png           L_d and r_d against model size           (findings 2 and 3)
    zsl_loss.png          D(Δℓ) and M(Δℓ) against step, per size  (finding 4)
    zsl_grad.png          D(∇θℓ) against step, per size           (finding 5)
    zsl_hist.png          the histogram of C_j at the last checkpoint, with the null's
    zsl_null.png          D(∇θℓ) beside its random-sign null, and the excess alignment   (finding 6)
    zsl_n.png             D(∇θℓ) against the number of pooled tokens N, with the null
    timescale_runs.png    loss and logit scale against dynamic time τ = Σ lr (timescale.py's lens)
    error_entropy_*.png   CE = EE + SA - log C against step per size, and each term against size
    report.md             the conclusion, then the findings, each judged by a stated rule, with the numbers
                          (report.log: what the analysis printed)
    summary.json          every number in the report

With several --seeds, each seed's outputs go in out_dir/seed_<N>/ as above, and out_dir holds
them together (seeds.py): report.md with each finding as "holds on k of N seeds" by the majority
rule in seeds.py, the numbers as mean ± sd across seeds, and seeds.png with every curve overlaid.

Each finding holds, does not hold, or is not judged: findings 2-6 are measured at the
deceleration step t_d, so a size whose fit has no supported break cannot be judged on them, and
the report says which size and why (the fit's reason). Figures draw what the report rejects grey
and hollow. The terminal output ends with the report's conclusion.

Every core busy: one job per size and seed (training, then the per-token gradients of every
checkpoint), then one per seed (fits, figures, report), on a pool of worker processes, one per
CPU core, each on one torch thread (support/job_pool.py says why); --jobs=N for fewer. The progress is one
labelled bar with an ETA on a terminal, one line per finished phase in a log file.

A finished run is reused and an interrupted one resumed (training and the gradient analysis,
checkpoint by checkpoint), so running the command again after a Ctrl-C picks up where it
stopped. The findings (docs/science.md §1-3):
    1. the 1-break BNSL fits the loss curves clearly better than a plain power law;
    2. L_d decreases with model size;          3. r_d increases with model size;
    4. D(Δℓ) rises sharply around t_d;          5. D(∇θℓ) is close to 1 after t_d;
    6. (ours, docs/science.md §6) the excess alignment of the per-token gradients over the random-sign
       null, D_null − D(∇θℓ), falls through the bend.
Each is judged by its rule in judge() below, never tuned to pass: if a finding does not hold,
the report says so with the numbers.
"""
import argparse
import concurrent.futures.process
import json
import math
import os
import re
import sys
import threading

import numpy as np

if __package__ in (None, ""):  # run as `python experiments/NAME.py`: import from the repository root,
    sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # as `python -m experiments.NAME` does

import bnsl
import curves
import deceleration
import plots
import train
import zsl
from data import prepare
from experiments import error_entropy, timescale_report
from experiments import seeds as seeds_view
from support import checks, job_pool, rundir, runfiles
from support.cli import OneLineParser, UsageError, guarded
from support.files import atomic_write, json_safe, write_json

# Defaults chosen by experiment (docs/results.md, "Choosing the default experiment"), with every rule
# written down before the runs that judged them: the bytes of the standard library (with them the
# deceleration is a clear bend; with a 2 048-token BPE vocabulary no size showed one by the same rules);
# a width series of one-layer models, 1x32, 1x64, 1x96 (1x16 bends before the fit window; deeper
# models showed no bend in dynamic time); a short warm-up of 50 steps from 10% of the peak, then a
# constant learning rate as in the paper, so that the schedule cannot place a bend at t_d ~ 1 100-1 500;
# 6 144 steps, so that the bend has two octaves after it (the run cut at 1/2 still holds it on 5 of 9 runs); the fit
# from step 101 (before it, the fit catches the early bigram bend); the peak learning rate shrinks with
# width, lr = learning_rate * 64 / n_embd (as in the paper); a probe of 32 sequences (2 048 tokens),
# D(∇θℓ) on its first 1 024; three seeds, judged by the majority rule of seeds.py.
DEFAULTS = dict(dataset="stdlib", sizes="1x32,1x64,1x96", max_iters=6144, warmup_iters=50,
                learning_rate=3e-3, batch_size=32, block_size=64, n_probe=32, seed=1337, transient=100,
                probe_tokens=1024, seeds="1337,2,3")


def learning_rate_for(n_embd, args):
    """lr = learning_rate * 64 / n_embd with --lr_scaling=width; the same lr for all with none."""
    return args.learning_rate * 64 / n_embd if args.lr_scaling == "width" else args.learning_rate


def parse_sizes(text):
    """'1x32,2x64' -> [(1, 32), (2, 64)]: n_layer x n_embd."""
    sizes = []
    for item in text.split(","):
        layers, _, width = item.strip().partition("x")
        if not (layers.isdigit() and width.isdigit() and int(layers) > 0 and int(width) > 0):
            raise UsageError(f"--sizes takes n_layer x n_embd pairs like 1x32,2x64; got {item!r}")
        sizes.append((int(layers), int(width)))
    return sizes


# flags that may differ between the run on disk and this command without changing the science:
# those train.py lets a resume change, except the number of steps
NOT_SCIENCE = rundir.RESUMABLE_OVERRIDES - {"max_iters"}


def size_config(run_dir, n_layer, n_embd, args):
    """The train.py config of one size, checked (a bad flag fails before any training). A run of this
    size already in run_dir is reused only if it is the same experiment on the same data (its dataset's
    fingerprint, checked now, or once the dataset exists: check_reused_data)."""
    config = train.TrainConfig(
        out_dir=run_dir, dataset=train.dataset_path(args.dataset), n_probe=args.n_probe, n_layer=n_layer,
        n_head=max(1, n_embd // 32), n_embd=n_embd,  # heads 32 wide
        block_size=args.block_size, batch_size=args.batch_size, max_iters=args.max_iters,
        learning_rate=learning_rate_for(n_embd, args), warmup_iters=args.warmup_iters, seed=args.seed,
        device=args.device, progress=False)  # progress: reproduce.py's own display, for every job
    checks.check_config(config)
    checks.pick_device(args.device)
    saved_path = os.path.join(run_dir, "config.json")
    if os.path.exists(run_dir) and not os.path.isdir(run_dir):
        raise UsageError(f"{run_dir} is a file, not a run directory; move it away or use another --out_dir")
    if not os.path.isfile(saved_path) and (rundir.latest_checkpoint(run_dir) or record_files(run_dir)):
        raise UsageError(f"{run_dir} holds checkpoints or records but no config.json, so it cannot "
                                "be checked or resumed; delete that directory to train this size afresh")
    if os.path.isfile(saved_path):  # a run from an earlier call: reuse it only if it is the same experiment
        saved_config = read_run_config(run_dir)
        saved = saved_config["train"]
        for key, value in vars(config).items():
            same = (prepare.dataset_dir(str(saved.get(key))) == prepare.dataset_dir(value) if key == "dataset"
                    else saved.get(key) == value)   # (a relative path of an older run: from here)
            if key not in NOT_SCIENCE and not same:
                raise UsageError(f"{run_dir} was trained with {key}={saved.get(key)!r}, this command "
                                        f"asks for {value!r}; use another --out_dir or delete that run")
        expect_same_data(run_dir, config.dataset, saved_config.get("data_fingerprint"))
        config.resume = rundir.latest_checkpoint(run_dir) is not None
        config.overwrite = not config.resume  # a run that died before its first checkpoint starts afresh
    return config


# Runs reused from an earlier call must be of the data this call uses: {data_dir: (fingerprint, run_dir)}
# for the datasets that did not exist yet when size_config looked (train.py builds stdlib_bpeN on first
# use); token_entropies checks them once the first size has trained.
_EXPECTED_DATA = {}


def expect_same_data(run_dir, dataset, then):
    """The reused run trained on the tokens `dataset` holds now (prepare.fingerprint), or a UsageError."""
    data_dir = prepare.dataset_dir(dataset)
    if then is None:
        return  # a run from before fingerprints: train.py warns when it resumes one
    if not os.path.isfile(os.path.join(data_dir, "meta.json")):
        _EXPECTED_DATA[os.path.abspath(data_dir)] = (then, run_dir)
        return
    try:
        now = prepare.fingerprint(data_dir)
    except (prepare.DataError, OSError) as e:
        raise UsageError(f"{data_dir}: {getattr(e, 'strerror', None) or e}; rebuild it with data/prepare.py") from None
    if now != then:
        raise UsageError(f"{run_dir} trained on other tokens than {data_dir} holds now (fingerprint {then}, now "
                         f"{now}): the dataset was rebuilt; restore it, or use another --out_dir")


def record_files(run_dir):
    folder = os.path.join(run_dir, "records")
    return os.listdir(folder) if os.path.isdir(folder) else []


def read_run_config(run_dir, need=("train",)):
    """A size's config.json, or a one-line UsageError that says how to start that size afresh."""
    path = os.path.join(run_dir, "config.json")
    try:
        with open(path, encoding="utf-8") as f:
            saved = json.load(f)
        missing = [key for key in need if key not in saved]
        if missing or not isinstance(saved["train"], dict):
            raise ValueError(f"no {' or '.join(missing) or 'train section'}")
    except (OSError, ValueError, TypeError) as e:  # unreadable, not JSON, not UTF-8, not train.py's
        raise UsageError(f"{path} is damaged ({type(e).__name__}: {str(e)[:80]}); delete {run_dir} "
                                "to train this size afresh") from None
    return saved


def check_flags(args, sizes):
    """Flags that support.checks.check_config does not see, checked before the first size trains (those that
    depend on the dataset: now if it exists, else once the first size has built it, token_entropies)."""
    if not args.out_dir.strip():
        raise UsageError("--out_dir is empty; name a directory for the report, e.g. --out_dir=report")
    for path in (args.out_dir, os.path.join(args.out_dir, "runs")):
        if os.path.exists(path) and not os.path.isdir(path):
            raise UsageError(f"--out_dir: {path} is a file, not a directory; use another --out_dir")
    if not re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", args.device):
        raise UsageError(f"--device={args.device!r} is not a device; use auto, cpu, cuda, cuda:N or mps")
    if len(set(sizes)) < len(sizes):
        raise UsageError(f"--sizes lists a size twice ({args.sizes}); give each size once")
    rough = [12 * n_layer * n_embd ** 2 for n_layer, n_embd in sizes]  # non-embedding parameters
    if any(a >= b for a, b in zip(rough, rough[1:])):
        raise UsageError(f"--sizes must go from the smallest model to the largest (about 12 "
                                f"n_layer n_embd^2 parameters: {', '.join(map(str, rough))}); reorder them")
    probe = args.n_probe * args.block_size    # the probe: n_probe sequences of block_size
    if args.probe_tokens > probe or (args.probe_tokens > args.block_size and args.probe_tokens % args.block_size):
        raise UsageError(f"--probe_tokens={args.probe_tokens}: the probe holds {probe // args.block_size} "
                                f"sequences of {args.block_size} tokens; use at most {args.block_size} or a "
                                f"multiple of {args.block_size} up to {probe}")
    every_step = np.arange(1.0, args.max_iters + 1)
    fitted = every_step[bnsl.log_subsample_mask(every_step) & (every_step > max(args.transient or 0, 1))]
    if args.transient is not None and len(fitted) < bnsl.MIN_POINTS_PER_PARAM * 5:
        raise UsageError(f"--transient={args.transient} with --max_iters={args.max_iters} leaves "
                                f"{len(fitted)} points for the 1-break fit, which needs "
                                f"{bnsl.MIN_POINTS_PER_PARAM * 5}; lower --transient or raise --max_iters")
    for key in ("ee_tokens", "block_size", "n_probe", "batch_size"):
        _DATA_FLAGS[key] = getattr(args, key, None)
    data_dir = prepare.dataset_dir(train.dataset_path(args.dataset))
    if os.path.isfile(os.path.join(data_dir, "meta.json")):
        check_data_for_flags(data_dir)


_DATA_FLAGS = {}   # the flags check_data_for_flags needs, as check_flags saw them


def check_data_for_flags(data_dir):
    """The validation split holds what the flags ask of it: the probe and update batch of every size, and
    the error-entropy lens's --ee_tokens in windows of --block_size (error_entropy.evaluation_set)."""
    try:
        _, val, _ = prepare.load_dataset(data_dir)
    except prepare.DataError as e:
        raise UsageError(str(e)) from None
    T, ee_tokens = _DATA_FLAGS.get("block_size"), _DATA_FLAGS.get("ee_tokens")
    if T is None:
        return
    held_out = _DATA_FLAGS["n_probe"] + _DATA_FLAGS["batch_size"]
    if len(val) - T < held_out:
        raise UsageError(f"the val split of {data_dir} has {len(val):,} tokens, too few for --n_probe + "
                         f"--batch_size = {held_out} windows of --block_size={T}; use smaller values or more text")
    if ee_tokens:
        windows = math.ceil(ee_tokens / T)
        if windows > 1 and (len(val) - T - 1) / (windows - 1) < T:
            most = ((len(val) - T - 1) // T + 1) * T
            raise UsageError(f"the val split of {data_dir} has {len(val):,} tokens, too few for --ee_tokens="
                             f"{ee_tokens} in separate windows of --block_size={T}; use --ee_tokens={most} or less")


# ---------------------------------------------------------------------------------------------
# The data's entropies, and the fit-window rule (stated before the final runs, the same for every size)

def token_entropies(data_dir):
    """(H1, H2) of the training split in nats per token: the unigram entropy H1 = −Σ p(a) log p(a),
    and the bigram conditional entropy H2 = H(next | current) = H(a, b) − H(a). A model that knows
    only token frequencies reaches H1; one that knows only the previous token, H2. The dataset is
    first checked against the flags and the runs reused from an earlier call (size_config), which
    could not be checked before it existed."""
    try:
        train_tokens, _, meta = prepare.load_dataset(data_dir)
    except prepare.DataError as e:
        raise UsageError(f"{e}; the runs of this report were trained on it") from None
    expected = _EXPECTED_DATA.get(os.path.abspath(data_dir))
    if expected and prepare.fingerprint(data_dir) != expected[0]:
        raise UsageError(f"{expected[1]} trained on other tokens than {data_dir} holds now (fingerprint "
                         f"{expected[0]}, now {prepare.fingerprint(data_dir)}); restore it, or use another --out_dir")
    check_data_for_flags(data_dir)
    V = meta["vocab_size"]
    tokens = np.asarray(train_tokens, dtype=np.int64)
    entropy = lambda counts: float(-(p := counts[counts > 0] / counts.sum()) @ np.log(p))
    unigram = np.bincount(tokens, minlength=V)
    # counts of the pairs (a, b) that occur: a V x V table would not fit in memory for a large vocabulary
    _, pairs = np.unique(tokens[:-1] * V + tokens[1:], return_counts=True)
    first = np.bincount(tokens[:-1], minlength=V)                       # counts of a, as first of a pair
    return entropy(unigram), entropy(pairs) - entropy(first)


def fit_start_rule(steps, losses, H1):
    """
    THE FIT-WINDOW RULE (written down before the final runs; the same for every size and dataset):
    s1 = the first step whose smoothed loss (log moving average, as the fit uses) is below the
    data's unigram entropy H1 -- the model has learned which tokens are common and begins to use
    context. The fit uses the steps >= 2 s1, one octave later, so the exit from the unigram plateau
    (an early bend of its own) is not mistaken for the deceleration. Returns the transient 2 s1 − 1.
    """
    steps = np.asarray(steps, dtype=float)
    smoothed = bnsl.log_moving_average(steps, np.asarray(losses, dtype=float))
    below = np.flatnonzero(smoothed < H1)
    if len(below) == 0:
        raise bnsl.CurveError(f"the smoothed loss never fell below the unigram entropy {H1:.3f}; train longer "
                              "or give --transient=N")
    return int(2 * steps[below[0]] - 1)


def octave_interference(run_dir):
    """
    D(Δℓ) with Δt = t, on the held-out probe, as in the paper's main figure (checkpoint t -> 2t):
    for each record step s, Δℓ_i = ℓ_i(s') − ℓ_i(s) on the probe (losses just before update s and s'),
    s' = the first record at or after 2s. Returns [(s, s', D)].
    """
    records = [runfiles.load_record(path) for path in runfiles.record_paths(run_dir)]
    steps = [int(r["step"]) for r in records]
    rows = []
    for k, record in enumerate(records):
        later = [j for j in range(k + 1, len(records)) if steps[j] >= 2 * steps[k]]
        if later:
            j = later[0]
            D, _, _ = zsl.interference(records[j]["probe_before"] - record["probe_before"])
            rows.append((steps[k], steps[j], D))
    return rows


def around_deceleration_octave(rows, t_d):
    """Mean D (Δt = t) over the octaves that end by t_d (s <= t_d/2) and those that start after it (s >= t_d)."""
    before = [D for s, _, D in rows if s <= t_d / 2 and np.isfinite(D)]
    after = [D for s, _, D in rows if s >= t_d and np.isfinite(D)]
    return (float(np.mean(before)) if before else None), (float(np.mean(after)) if after else None)


# ---------------------------------------------------------------------------------------------
# The jobs: one per size and seed (training, then the per-token gradients of every checkpoint),
# then one per seed (the fits, the findings, the figures and the report). job_pool.py runs them,
# one single-threaded job per CPU core; each tells the progress display how far it is.

def last_logged_step(run_dir):
    """The last step in a run's log.csv (train.py rewrites it every 2 s), or 0."""
    try:
        with open(os.path.join(run_dir, "log.csv"), "rb") as f:
            f.seek(max(0, os.path.getsize(f.name) - 256))
            last = f.read().decode(errors="replace").strip().splitlines()[-1]
        return int(last.split(",")[0])
    except (OSError, IndexError, ValueError):
        return 0


def train_size(config, report):
    """Train one size, resume it, or reuse it if it is complete; report(phase, done, total) as it goes."""
    if os.path.isfile(rundir.checkpoint_path(config.out_dir, config.max_iters)):
        report("training", config.max_iters, config.max_iters, "complete, reused")
        return
    print(f"training {config.n_layer} layers x {config.n_embd} wide -> {config.out_dir}")
    report("training", last_logged_step(config.out_dir), config.max_iters)
    stop = threading.Event()

    def watch():   # the loop's progress, read from its log.csv (its end is reported below, with the loss)
        while not stop.wait(1.0):
            report("training", min(last_logged_step(config.out_dir), config.max_iters - 1), config.max_iters)
    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        interrupted = train.train(config, given={"device"})
    finally:
        stop.set()
        watcher.join()
    if interrupted:
        raise KeyboardInterrupt
    report("training", config.max_iters, config.max_iters, f"last batch loss {bnsl.load_curve(config.out_dir)[1][-1]:.3f}")


def analyse_checkpoints(run_dir, probe_tokens, report):
    """zsl.py's per-token gradient analysis of every checkpoint not yet in zsl.json, one at a time,
    zsl.json rewritten after each: an interrupted analysis resumes where it stopped."""
    steps = [runfiles.step_of(path) for path in runfiles.checkpoint_paths(run_dir)]
    kept, _ = runfiles.previous_gradient_rows(run_dir)
    done = {row["step"] for row in kept if row.get("n_tokens") == probe_tokens and "update" in row}
    todo = [step for step in steps if step not in done]
    if not todo:
        report("zero-sum", len(steps), len(steps), "every checkpoint analysed before, reused")
        return
    report("zero-sum", len(steps) - len(todo), len(steps))
    for k, step in enumerate(todo):
        summary = zsl.analyse_run(run_dir, steps=[step], probe_tokens=probe_tokens, progress=False)
        write_json(os.path.join(run_dir, "zsl.json"), summary)
        report("zero-sum", len(steps) - len(todo) + k + 1, len(steps),
               f"D(∇θℓ) at {len(steps)} checkpoints" if k == len(todo) - 1 else None)


def size_job(config, probe_tokens, report):
    """One size of one seed: training, then the per-token gradients at its checkpoints."""
    train_size(config, report)
    analyse_checkpoints(config.out_dir, probe_tokens, report)


# ---------------------------------------------------------------------------------------------
# The findings: each a rule on the measured numbers, stated in the report next to its verdict.
#
# Three states. A finding "holds" when its rule is met; it "does not hold" when the numbers break the
# rule; it is "not judged" when the numbers the rule needs do not exist -- findings 2-6 are about
# the deceleration, so a size whose fit has no supported break (no t_d) cannot be judged on them.
# A rule "for every size" does not hold as soon as one judged size breaks it, holds only when every
# size is judged and meets it, and is not judged otherwise (each size's reason is kept).

HOLDS, FAILS, NOT_JUDGED = "holds", "does not hold", "not judged"
HOLDS_AS_BOOL = {HOLDS: True, FAILS: False, NOT_JUDGED: None}


def _no_break(row):
    return f"no supported break ({row.get('warning') or 'the fit found none'})"


def _every_size(rows, check):
    """check(row) -> (state, why) for one size; returns (state, why) of the rule over every size."""
    per_size = [(row["name"], *check(row)) for row in rows]
    for state in (FAILS, NOT_JUDGED):   # a failure decides; else a missing size leaves it open
        reasons = [f"{name}: {why}" for name, s, why in per_size if s == state]
        if reasons:
            return state, "; ".join(reasons)
    return HOLDS, None


def _monotone(rows, key, falling):
    """(state, why) of 'key strictly falls (rises) from the smallest size to the largest'. Only
    supported fits count; a pair of them in the wrong order already breaks the rule."""
    judged = [row for row in rows if row["supported"]]
    for a, b in zip(judged, judged[1:]):
        if not (a[key] > b[key] if falling else a[key] < b[key]):
            return FAILS, f"{key} {a[key]:.4g} at {a['name']} -> {b[key]:.4g} at {b['name']}"
    missing = [f"{row['name']}: {_no_break(row)}" for row in rows if not row["supported"]]
    return (NOT_JUDGED, "; ".join(missing)) if missing else (HOLDS, None)


def _check_ratio(row):   # finding 1, one size
    ratio = row["rsle_power_law"] / row["rsle"]
    problems = ([f"RSLE ratio {np.floor(ratio * 100) / 100:.2f} < 2"] if ratio < 2 else []) + ([] if row["supported"] else [_no_break(row)])
    return (FAILS, "; ".join(problems)) if problems else (HOLDS, None)


def _check_around(needs, passes, describe):
    """A check of one size on numbers around t_d (findings 4-6). needs: {key: where it is measured};
    passes(*values) and describe(*values) take them in that order. Not judged without t_d, or
    without a measurement where the rule needs one."""
    def check(row):
        if row["t_d"] is None:
            return NOT_JUDGED, _no_break(row)
        values = [row.get(key) for key in needs]
        for value, where in zip(values, needs.values()):
            if value is None:
                return NOT_JUDGED, f"no measurement {where} (t_d = {row['t_d']:.0f})"
        return (HOLDS, None) if passes(*values) else (FAILS, describe(*values))
    return check


def _fmt(values, digits=3):
    return ", ".join("n/a" if v is None else f"{v:.{digits}f}" for v in values)


def judge(rows):
    """rows: one dict per size, smallest first (the keys main() puts in summary.json's "sizes").
    Returns one dict per finding: finding, rule, state (HOLDS / FAILS / NOT_JUDGED), holds
    (True / False / None), why (the sizes that decide it, or None), numbers."""
    column = lambda key: [row.get(key) for row in rows]  # noqa: E731
    ratio = [row["rsle_power_law"] / row["rsle"] for row in rows]
    findings = [
        ("1. BNSL fits clearly better than a power law",
         "RSLE(power law) / RSLE(BNSL) >= 2 and the break supported, for every size",
         _every_size(rows, _check_ratio),
         f"ratio {_fmt(ratio, 2)}; supported {', '.join(str(row['supported']) for row in rows)}"),
        # L_d and r_d of an unsupported fit describe a curve, not a deceleration: not judged on them
        ("2. L_d decreases with model size", "L_d strictly decreasing from smallest to largest, over supported breaks",
         _monotone(rows, "L_d", falling=True), f"L_d {_fmt(column('L_d'))}"),
        ("3. r_d increases with model size", "r_d strictly increasing from smallest to largest, over supported breaks",
         _monotone(rows, "r_d", falling=False), f"r_d {_fmt(column('r_d'), 4)}"),
        ("4. D(Δℓ) rises sharply around t_d",
         "mean D(Δℓ) on the probe from record s to 2s (Δt = t) <= 0.5 over the octaves that end by t_d "
         "(s <= t_d/2) and >= 0.8 over those that start after it (s >= t_d), every size",
         _every_size(rows, _check_around({"D_oct_before": "in an octave ending by t_d/2",
                                          "D_oct_after": "in an octave starting after t_d"},
                                         lambda b, a: b <= 0.5 and a >= 0.8,
                                         lambda b, a: f"D(Δℓ) {b:.2f} before, {a:.2f} after")),
         f"Δt = t: before {_fmt(column('D_oct_before'), 2)}; after {_fmt(column('D_oct_after'), 2)} (not judged, "
         f"one step Δt = 1: {_fmt(column('D_before'), 2)} at s <= t_d/2 -> {_fmt(column('D_after'), 2)} at s >= 2 t_d)"),
        ("5. D(∇θℓ) is close to 1 after t_d", "mean D(∇θℓ) >= 0.9 at checkpoints >= 2 t_d, every size",
         _every_size(rows, _check_around({"D_grad_after": "at a checkpoint >= 2 t_d"}, lambda a: a >= 0.9,
                                         lambda a: f"D(∇θℓ) {a:.3f} after 2 t_d")),
         f"D(∇θℓ) after {_fmt(column('D_grad_after'))} (before t_d/2: {_fmt(column('D_grad_before'))})"),
        judge_finding_6(rows),
    ]
    return [{"finding": name, "rule": rule, "state": state, "holds": HOLDS_AS_BOOL[state], "why": why,
             "numbers": numbers} for name, rule, (state, why), numbers in findings]


# Finding 6 is ours (docs/science.md §6): D(∇θℓ) alone grows with the number of pooled tokens even for
# random signs, so we compare it with the Monte Carlo random-sign null of the same gradients.
# The rule was written on 2026-11-23 before any run of this code, and is not tuned afterwards.
def judge_finding_6(rows):
    """The calibrated finding, judged like the paper's: (finding, rule, (state, why), numbers)."""
    column = lambda key: [row.get(key) for row in rows]  # noqa: E731
    return ("6. the excess alignment over the random-sign null falls through the bend",
            "mean D_null − D(∇θℓ) (Monte Carlo null) > 0 at checkpoints <= t_d/2, and at checkpoints "
            ">= 2 t_d at most half of that, every size",
            _every_size(rows, _check_around({"excess_before": "at a checkpoint <= t_d/2",
                                             "excess_after": "at a checkpoint >= 2 t_d"},
                                            lambda b, a: b > 0 and a <= 0.5 * b,
                                            lambda b, a: f"excess {b:.4f} before, {a:.4f} after")),
            f"excess before {_fmt(column('excess_before'), 4)}; after {_fmt(column('excess_after'), 4)} (CLT null: "
            f"{_fmt(column('excess_sign_before'), 4)} -> {_fmt(column('excess_sign_after'), 4)})")


# ---------------------------------------------------------------------------------------------
# Figures and the report

def plot_scaling(rows, path):
    """L_d and r_d against non-embedding parameters (findings 2 and 3), with the fits' errors. A size
    whose break the fit does not support is drawn hollow and grey, without error bars, not joined to
    the others and labelled "rejected": its L_d and r_d describe a fitted curve, not a deceleration,
    and the findings are not judged on it. Writes path; returns the (closed) figure."""
    import matplotlib.pyplot as plt
    figure, axes = plt.subplots(1, 2, figsize=(10, 4.4))
    kept = [r for r in rows if r["supported"]]
    rejected = [r for r in rows if not r["supported"] and np.isfinite(r["L_d"]) and np.isfinite(r["r_d"])]
    for ax, key, label in ((axes[0], "L_d", "L_d, the loss at t_d (nats per token)"),
                           (axes[1], "r_d", "r_d, the log-log slope after t_d")):
        if kept:
            ax.errorbar([r["params"] for r in kept], [r[key] for r in kept], yerr=[r[key + "_err"] for r in kept],
                        marker="o", color="C0", capsize=3, label="supported break (judged)")
        if rejected:
            ax.plot([r["params"] for r in rejected], [r[key] for r in rejected], "o", mfc="none", mec="0.55",
                    ls="none", label="fit rejected: not a deceleration (not judged)")
        largest = max(r["params"] for r in rows)
        for r in kept + rejected:  # labels right of each point; the largest size's left of it, inside the axes
            left = r["params"] == largest and len(rows) > 1
            ax.annotate(r["name"] + ("" if r["supported"] else " (rejected)"), (r["params"], r[key]),
                        textcoords="offset points", xytext=(-5 if left else 5, 5), ha="right" if left else "left",
                        fontsize=8, color="k" if r["supported"] else "0.45")
        ax.margins(y=0.12)
        ax.set(xscale="log", xlabel="non-embedding parameters", ylabel=label)
        plots.plain_log_axis(ax.xaxis)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="best")
    figure.suptitle(f"Findings 2 and 3: L_d and r_d against model size; {len(kept)} of {len(rows)} sizes have a "
                    "supported break" + ("" if len(kept) == len(rows) else " (hollow grey: rejected fits)"), fontsize=9)
    plots.save(figure, path)
    return figure


def _number(value, digits, signed=False):
    if value is None or not np.isfinite(value):
        return "n/a"
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def size_lines(rows, H2):
    """The per-size table and each fit's verdict, with the reason a break is rejected."""
    lines = ["| size | params | fit from | t_d | L_d | L_d − H2 | r_d | RSLE | RSLE power law | final loss (smoothed) | "
             "D(Δℓ) Δt = t before / after | D(Δℓ) Δt = 1 before / after | D(∇θℓ) before / after |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        t_d = f"{r['t_d']:.0f} ± {r['t_d_err']:.0f}" if r["t_d"] is not None else "none (rejected)"
        mark = "" if r["supported"] else " *"   # numbers of a rejected fit: of the curve, not of a deceleration
        lines.append(
            f"| {r['name']} | {r['params']:,} | {r['fit_start']} | {t_d} | {_number(r['L_d'], 3)} ± "
            f"{_number(r['L_d_err'], 3)}{mark} | {_number(r['L_d'] - H2, 3, signed=True)}{mark} | "
            f"{_number(r['r_d'], 4)} ± {_number(r['r_d_err'], 4)}{mark} | {r['rsle']:.4f} | {r['rsle_power_law']:.4f} | "
            f"{r['L_T']:.3f} | {_number(r['D_oct_before'], 2)} / {_number(r['D_oct_after'], 2)} | "
            f"{_number(r['D_before'], 2)} / {_number(r['D_after'], 2)} | "
            f"{_number(r['D_grad_before'], 3)} / {_number(r['D_grad_after'], 3)} |")
    lines += ["", "Each size's fit, by bnsl.py's rules:", ""]
    lines += [f"- {r['name']}: " + ("break supported: t_d is the deceleration step" if r["supported"] else
                                   f"**break rejected**: {r['warning']}") for r in rows]
    if not all(r["supported"] for r in rows):
        lines += ["", "\\* a rejected fit's L_d and r_d describe the fitted curve, not a deceleration; "
                  "no finding is judged on them."]
    return lines


def group_by_reason(verdicts):
    """[(reason, [finding numbers])] of the given verdicts, in order: findings that share a reason together."""
    groups = {}
    for v in verdicts:
        groups.setdefault(v["why"] or "", []).append(v["finding"].split(".")[0])
    return list(groups.items())


def _numbers(items):
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def conclusion(verdicts, rows):
    """The report's opening: what reproduced, what did not, what was not judged (and why), and what
    that means; Markdown lines. The same text, without the Markdown, ends reproduce.py's output."""
    by_state = {state: [v for v in verdicts if v["state"] == state] for state in (HOLDS, FAILS, NOT_JUDGED)}
    lines = [f"**Reproduced ({len(by_state[HOLDS])} of {len(verdicts)}):** "
             + ("; ".join(v["finding"] for v in by_state[HOLDS]) or "none of the findings") + "."]
    for v in by_state[FAILS]:
        lines.append(f"**Not reproduced:** {v['finding']} — {v['why']}.")
    for why, numbers in group_by_reason(by_state[NOT_JUDGED]):
        lines.append(f"**Not judged:** finding{'s' if len(numbers) > 1 else ''} {_numbers(numbers)}, "
                     f"because {why}.")
    rejected = [r["name"] for r in rows if not r["supported"]]
    failed_at_t_d = [v["finding"].split(".")[0] for v in by_state[FAILS] if not v["finding"].startswith("1.")]
    decelerating = [r["name"] for r in rows if r["supported"]]
    if not by_state[FAILS] and not by_state[NOT_JUDGED]:
        meaning = ("the paper's account reproduces at this scale: every size's loss decelerates, larger models "
                   "decelerate at a lower loss and improve faster afterwards, and learning turns zero-sum through the bend.")
    else:
        meaning = ""
        if rejected:
            meaning += (f"the loss curve{'s' if len(rejected) > 1 else ''} of {_numbers(rejected)} "
                        f"show{'' if len(rejected) > 1 else 's'} no deceleration that the fit's stated rules accept, so the deceleration itself did not reproduce there, and the findings measured at "
                        f"t_d could not be tested on {'it' if len(rejected) == 1 else 'them'}. ")
        if failed_at_t_d:
            plural = len(failed_at_t_d) > 1
            meaning += (f"{'Where the loss does decelerate (' + _numbers(decelerating) + ')' if rejected else 'Although every size decelerates'}, "
                        f"finding{'s' if plural else ''} {_numbers(failed_at_t_d)} {'do' if plural else 'does'} not "
                        "hold: at this scale these runs do not show what the paper reports about the deceleration. ")
        elif any(v["finding"].startswith("1.") for v in by_state[FAILS]) and not rejected:
            meaning += "Every break is supported, but does not fit clearly better than a power law. "
        if by_state[NOT_JUDGED]:
            meaning += "A finding not judged is evidence neither for nor against the paper."
        meaning = meaning.strip()
        meaning = meaning[0].upper() + meaning[1:]
    lines.append(f"**What this means:** {meaning}")
    return lines


def plain(markdown_lines):
    """Markdown lines as terminal text: no ** or backticks."""
    return "\n".join(line.replace("**", "").replace("`", "") for line in markdown_lines)


def verdict_cell(v):
    return {HOLDS: "holds", FAILS: "**does not hold**", NOT_JUDGED: "not judged"}[v["state"]]


def write_report(out_dir, args, rows, verdicts, entropies, sections=(), command=None):
    """report.md: the conclusion, the setup, the findings (verdict and the sizes that decide it), each
    size's numbers and fit verdict, the figures, the other lenses. Returns the Markdown text."""
    H1, H2 = entropies
    window = (f"from step {args.transient + 1} (--transient)" if args.transient is not None else
              "by the fit-window rule: from 2 s1, s1 = the first step whose smoothed loss is below the "
              f"unigram entropy H1 (steps {', '.join(str(r['fit_start']) for r in rows)})")
    lines = ["# Loss deceleration and zero-sum learning at small scale", "", "## Conclusion", ""]
    lines += [line for item in conclusion(verdicts, rows) for line in (item, "")]
    lines += [f"`{command or 'python reproduce.py'}`: dataset {args.dataset}, sizes {args.sizes}, "
              f"{args.max_iters} steps, warm-up {args.warmup_iters} from 10% of the peak LR ({args.learning_rate} x 64 / width"
              f"{'' if args.lr_scaling == 'width' else ': off, the same for all'}), batch "
              f"{args.batch_size}x{args.block_size} tokens, probe {args.n_probe}x{args.block_size} tokens, "
              f"seed {args.seed}. BNSL fit {window} (log moving average, log subsampling).", "",
              f"The data's training split: unigram entropy H1 = {H1:.3f}, bigram conditional entropy "
              f"H2 = H(next | current) = {H2:.3f} nats per token.", "",
              "## Findings", "",
              "Each finding holds, does not hold, or is not judged (the numbers its rule needs do not exist: "
              "findings 2–6 are measured at t_d, which a rejected fit does not have). A rule over every size "
              "fails as soon as one judged size breaks it.", "",
              "| finding | rule | verdict | why (the sizes that decide it) | numbers (smallest to largest) |",
              "|---|---|---|---|---|"]
    lines += [f"| {v['finding']} | {v['rule']} | {verdict_cell(v)} | {v['why'] or '—'} | {v['numbers']} |"
              for v in verdicts]
    lines += ["", "## Per size", ""] + size_lines(rows, H2)
    lines += ["", "D(Δℓ) Δt = t: on the probe from record s to record 2s, before = octaves with s <= t_d/2, "
              "after = s >= t_d (judged, as the paper's main figure); Δt = 1: one optimizer step on the probe, "
              "before = steps <= t_d/2, after = steps >= 2 t_d (reported); D(∇θℓ): checkpoints <= t_d/2 and >= 2 t_d."]
    lines += ["", "## Figures", "", "Fits the report rejects are drawn grey and hollow; t_d is marked only where "
              "the break is supported.", "", "![loss curves and BNSL fits](loss_fits.png)", "",
              "![L_d and r_d against model size](scaling.png)", "",
              "![D(Δℓ) and M(Δℓ) against step](zsl_loss.png)", "", "![D(∇θℓ) against step](zsl_grad.png)", "",
              "![histogram of C_j](zsl_hist.png)", "",
              "![D(∇θℓ) beside its random-sign null, and the excess alignment](zsl_null.png)", "",
              "![D(∇θℓ) against the number of pooled tokens](zsl_n.png)", ""]
    for section in sections:  # the other lenses (timescale.py, ...), each a markdown section
        lines += [section.strip(), ""]
    text = "\n".join(lines)
    atomic_write(os.path.join(out_dir, "report.md"), lambda f: f.write(text.encode()))
    return text


# ---------------------------------------------------------------------------------------------
# One seed's analysis: the job that runs once every size of that seed has trained

def dataset_dir(dataset):
    return dataset if os.sep in dataset else os.path.join(prepare.DATA_ROOT, dataset)


def analyse_size(name, run_dir, args, H1):
    """One size's fit (the fit-window rule or --transient), D(Δℓ) over octaves, and the zero-sum
    numbers around the supported t_d: (the row summary.json keeps, zsl.py's summary for the figures)."""
    curve = curves.read_curve(run_dir)
    raw_steps, raw_losses = curve["steps"], curve["losses"]
    transient = args.transient if args.transient is not None else fit_start_rule(raw_steps, raw_losses, H1)
    if args.transient is None and transient + 1 > raw_steps[-1] / 2:
        raise bnsl.CurveError(f"{name}: the fit-window rule starts the fit at step {transient + 1}, less than "
                              f"an octave before the run's end ({raw_steps[-1]:.0f}); train longer "
                              "(--max_iters) or give --transient=N")
    # the break counts only if deceleration.py judges it a deceleration: supported in steps, still there
    # against dynamic time tau = sum lr (not the schedule), and where it was on the run cut at 3/4 and 1/2
    # (not the run's end); docs/science.md §9
    judged = deceleration.deceleration_verdict(raw_steps, raw_losses, curve["lr"], transient=transient)
    fit = dict(judged["fit"], name=name, verdict=judged["verdict"], verdict_reason=judged["reason"])
    if fit["supported"] and judged["verdict"] != "deceleration":
        fit.update(supported=False, warning=f"the break is the {judged['verdict']}: {judged['reason']}")
    summary = zsl.analyse_run(run_dir, grad=False)   # the gradient rows: those analyse_checkpoints wrote
    t_d = fit["t_d"] if fit["supported"] else None    # an unsupported fit has no t_d to use
    octaves = octave_interference(run_dir)
    summary.update(t_d=t_d, t_d_note=fit["warning"], octaves=octaves, fit_start=transient + 1,
                   t_d_rejected=None if fit["supported"] else fit["t_d"])
    write_json(os.path.join(run_dir, "zsl.json"), summary)
    params = read_run_config(run_dir, need=("train", "non_embedding_params"))["non_embedding_params"]
    D_before, D_after, D_grad_before, D_grad_after = zsl.around_deceleration(summary, t_d) if t_d else (None,) * 4
    D_oct_before, D_oct_after = around_deceleration_octave(octaves, t_d) if t_d else (None, None)
    excess = dict(zip(("excess_before", "excess_after", "excess_sign_before", "excess_sign_after"),
                      zsl.excess_around_deceleration(summary, t_d) +
                      zsl.excess_around_deceleration(summary, t_d, key="excess_sign") if t_d else (None,) * 4))
    row = {**{k: fit[k] for k in ("name", "t_d_err", "L_d", "L_d_err", "r_d", "r_d_err", "rsle", "rsle_power_law",
                                  "L_T", "L_hat_T", "supported", "warning", "b", "c0", "c1", "f1",
                                  "verdict", "verdict_reason")},
           "t_d": t_d, "t_d_fitted": fit["t_d"], "params": params, "fit_start": transient + 1,
           "D_before": D_before, "D_after": D_after, "D_oct_before": D_oct_before, "D_oct_after": D_oct_after,
           "octaves": octaves, "D_grad_before": D_grad_before, "D_grad_after": D_grad_after, **excess}
    return row, {**summary, "run_dir": run_dir, "fit": fit}


def analyse_seed(args, names, command, report):
    """The report of one seed (args.seed) in args.out_dir from its finished runs: fits, findings,
    figures, the other lenses, report.md and summary.json. Returns {"summary": what summary.json
    holds, "written": [paths], "conclusion": [Markdown lines]}."""
    out = args.out_dir
    report("report", 0, 4)
    entropies = token_entropies(dataset_dir(args.dataset))
    rows, summaries = zip(*[analyse_size(name, os.path.join(out, "runs", name), args, entropies[0]) for name in names])
    rows, summaries = list(rows), list(summaries)
    report("report", 1, 4)
    plots.plot_loss_fits([s["fit"] for s in summaries], os.path.join(out, "loss_fits.png"))
    plot_scaling(rows, os.path.join(out, "scaling.png"))
    written = [os.path.join(out, "loss_fits.png"), os.path.join(out, "scaling.png")] + plots.write_figures(summaries, out)
    report("report", 2, 4)
    # The other lenses on the same runs, each its own section of the report (and of summary.json)
    run_dirs, fits = [s["run_dir"] for s in summaries], [s["fit"] for s in summaries]
    lens_texts, lens_numbers = {}, {}
    lens_texts["timescale"], lens_numbers["timescale"] = timescale_report.report_section(run_dirs, fits, out,
                                                                                        progress=False)
    written.append(os.path.join(out, "timescale_runs.png"))
    report("report", 3, 4)
    lens_texts["error_entropy"], lens_numbers["error_entropy"] = error_entropy.report_section(
        run_dirs, fits, out, names=names, n_tokens=args.ee_tokens, context=args.block_size, progress=False)
    written += [os.path.join(out, f"error_entropy_{name}.png") for name in ("sizes", *names)]
    verdicts = judge(rows)
    write_report(out, args, rows, verdicts, entropies, sections=list(lens_texts.values()), command=command)
    summary = {"args": vars(args), "entropies": {"H1": entropies[0], "H2": entropies[1]}, "sizes": rows,
               "findings": verdicts, "conclusion": conclusion(verdicts, rows), **lens_numbers}
    write_json(os.path.join(out, "summary.json"), summary)
    written += [os.path.join(out, "report.md"), os.path.join(out, "summary.json")]
    report("report", 4, 4, f"{sum(v['state'] == HOLDS for v in verdicts)} of {len(verdicts)} findings hold")
    return {"summary": json_safe(summary), "written": written, "conclusion": summary["conclusion"]}


# ---------------------------------------------------------------------------------------------
# The plan: which jobs, on how many processes, and how much work each phase is (for the ETA)

# The expected work of each phase, for the progress bar's fraction and ETA (only the ratios matter),
# in units of one token through 12 L d^2 + V d multiply-adds. Measured with this tool's own phase
# times ("done in ..."; 256 steps of 1x32, 2x64, 3x96 at vocab 2 048, probe 512, 16 384 evaluation
# tokens, two shared cores): training ran at 2.0-2.7e9 units per second per core; one probe token
# of the per-token gradient analysis cost 50-110 training tokens; the report's fits, figures and
# lenses took about 15 s per size beyond the error-entropy lens's forward passes.
ZERO_SUM_COST, ERROR_ENTROPY_COST = 80.0, 0.33    # per token, relative to a training token
UNITS_PER_SECOND, REPORT_SECONDS_PER_SIZE = 2.2e9, 15.0


def flops_per_token(n_layer, n_embd, vocab_size):
    """The matrix work of one token through the model, up to a constant: 12 L d^2 + V d."""
    return 12 * n_layer * n_embd ** 2 + vocab_size * n_embd


def plan_jobs(args, seeds, sizes, names, configs, vocab_size, command):
    """One job per size and seed (largest first: the longest job starts first), then one report job
    per seed once all its sizes are done. configs: {(seed, name): TrainConfig}."""
    checkpoints = len(train.log_spaced_steps(args.max_iters, train.TrainConfig.ckpt_per_octave))
    tokens = args.batch_size * args.block_size
    jobs, by_seed = [], {}
    for (n_layer, n_embd), name in sorted(zip(sizes, names), key=lambda item: -flops_per_token(*item[0], vocab_size)):
        cost = flops_per_token(n_layer, n_embd, vocab_size)
        for seed in seeds:
            key = f"{name} seed {seed}"
            config = configs[(seed, name)]
            jobs.append(job_pool.Job(key, size_job, (config, args.probe_tokens),
                                     [("training", args.max_iters * tokens * cost),
                                      ("zero-sum", checkpoints * args.probe_tokens * cost * ZERO_SUM_COST)],
                                     log=config.out_dir.rstrip(os.sep) + ".log"))
            by_seed.setdefault(seed, []).append(key)
    lens = (checkpoints * args.ee_tokens * ERROR_ENTROPY_COST * sum(flops_per_token(*s, vocab_size) for s in sizes)
            + len(sizes) * REPORT_SECONDS_PER_SIZE * UNITS_PER_SECOND)
    for seed in seeds:
        seed_args = argparse.Namespace(**{**vars(args), "seed": seed, "out_dir": seed_dir(args.out_dir, seed, seeds)})
        jobs.append(job_pool.Job(f"seed {seed}", analyse_seed, (seed_args, names, command), [("report", lens)],
                                 after=tuple(by_seed[seed]), log=os.path.join(seed_args.out_dir, "report.log")))
    return jobs


def seed_dir(out_dir, seed, seeds):
    """A single seed's outputs go in out_dir itself; several seeds each get out_dir/seed_<seed>."""
    return out_dir if len(seeds) == 1 else os.path.join(out_dir, f"seed_{seed}")


def parse_seeds(text):
    """'1337,2,3' -> [1337, 2, 3]: distinct non-negative integers."""
    try:
        seeds = [int(item) for item in text.split(",")]
    except ValueError:
        seeds = None
    if not seeds or any(seed < 0 for seed in seeds) or len(set(seeds)) < len(seeds):
        raise UsageError(f"--seeds takes distinct non-negative integers like 1337,2,3; got {text!r}")
    return seeds


def parse_args(argv):
    parser = OneLineParser(prog="reproduce.py", command="experiments/reproduce.py",
                           description=__doc__.split("\n\n")[0].strip(), allow_abbrev=False,
                           fromfile_prefix_chars="@",  # @config/reproduce_gpu.txt: a preset, one flag per line
                           formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--out_dir", default="report", help="where the report and the runs go")
    parser.add_argument("--sizes", default=DEFAULTS["sizes"], help="n_layer x n_embd, comma-separated, smallest first")
    parser.add_argument("--dataset", default=DEFAULTS["dataset"],
                        help="a dataset under data/ (stdlib: bytes; stdlib_bpeN: BPE, built on first use)")
    for key in ("max_iters", "warmup_iters", "batch_size", "block_size", "n_probe", "probe_tokens"):
        parser.add_argument(f"--{key}", type=int, default=DEFAULTS[key])
    parser.add_argument("--seeds", default=DEFAULTS["seeds"], help="comma-separated seeds, each trained and judged; with "
                        "several, each seed's report goes in out_dir/seed_N and out_dir holds them together")
    parser.add_argument("--seed", type=int, default=DEFAULTS["seed"], help="one seed only, instead of --seeds")
    parser.add_argument("--jobs", type=int, default=0,
                        help="worker processes (default 0: one per CPU core, one torch thread each)")
    parser.add_argument("--transient", type=int, default=DEFAULTS["transient"],
                        help="fit from step N+1 for every size; -1: the fit-window rule of fit_start_rule (2 s1, "
                             "s1 the first step the smoothed loss is below the unigram entropy)")
    parser.add_argument("--learning_rate", type=float, default=DEFAULTS["learning_rate"],
                        help="peak learning rate of a 64-wide model (see --lr_scaling)")
    parser.add_argument("--lr_scaling", choices=("width", "none"), default="width",
                        help="width: lr = learning_rate * 64 / n_embd per size; none: the same for all")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, mps")
    parser.add_argument("--ee_tokens", type=int, default=error_entropy.DEFAULT_TOKENS,
                        help="held-out tokens of the error-entropy lens (the same for every checkpoint and size)")
    args = parser.parse_args(argv)
    args.out_dir = os.path.expanduser(args.out_dir)
    given = argv if argv is not None else sys.argv[1:]
    seed_given = any(a.startswith("--seed=") or a == "--seed" for a in given)
    if seed_given and any(a.startswith("--seeds=") or a == "--seeds" for a in given):
        parser.error("give --seeds or --seed, not both")
    if seed_given:  # one seed instead of the default three
        args.seeds = None
    if args.transient == -1:  # the fit-window rule instead of a fixed first step
        args.transient = None
    return args


def check_args(args):
    """The flags no other check sees; returns (sizes, seeds)."""
    sizes = parse_sizes(args.sizes)
    seeds = parse_seeds(args.seeds) if args.seeds is not None else [args.seed]
    if len(sizes) < 2:
        raise UsageError("--sizes needs at least two sizes to compare")
    if args.probe_tokens < 1:
        raise UsageError(f"--probe_tokens must be at least 1, got {args.probe_tokens}")
    if args.ee_tokens < args.block_size:
        raise UsageError(f"--ee_tokens must be at least one sequence ({args.block_size}), got {args.ee_tokens}")
    if args.transient is not None and args.transient < 0:
        raise UsageError(f"--transient must not be negative (or -1 for the fit-window rule), got {args.transient}")
    if args.jobs < 0:
        raise UsageError(f"--jobs must be 0 (one per core) or more, got {args.jobs}")
    return sizes, seeds


def prepare_data(dataset):
    """Build a built-in dataset before the worker processes start (each would build it at once)."""
    try:
        prepare.build_named_if_missing(dataset, dataset_dir(dataset))
    except prepare.DataError as e:
        raise UsageError(str(e)) from None


def vocab_size_of(dataset):
    """The dataset's vocabulary size (its meta.json; before it is built, what its name says), for the ETA."""
    try:
        with open(os.path.join(dataset_dir(dataset), "meta.json"), encoding="utf-8") as f:
            return int(json.load(f)["vocab_size"])
    except (OSError, ValueError, KeyError, TypeError):
        return prepare.parse_bpe_name(dataset) or 256


def main(argv=None):
    """The command line; returns the exit status (support/cli.py). What is finished is kept: after an error
    or Ctrl-C, the same command continues where it stopped."""
    return guarded("reproduce.py", run_command, sys.argv[1:] if argv is None else argv,
                   interrupt_hint="run the same command again to continue")


def run_command(argv):
    args = parse_args(argv)
    command = "python experiments/reproduce.py " + " ".join(argv)
    try:
        sizes, seeds = check_args(args)
        names = [f"{n_layer}x{n_embd}" for n_layer, n_embd in sizes]
        configs = {(seed, name): size_config(os.path.join(seed_dir(args.out_dir, seed, seeds), "runs", name),
                                             n_layer, n_embd, argparse.Namespace(**{**vars(args), "seed": seed}))
                   for seed in seeds for name, (n_layer, n_embd) in zip(names, sizes)}
        check_flags(args, sizes)
        device = checks.pick_device(args.device)
        workers, threads, why = job_pool.plan_workers(len(sizes) * len(seeds), device, args.jobs)
        if workers > 1:
            prepare_data(args.dataset)
        for seed in seeds:
            os.makedirs(os.path.join(seed_dir(args.out_dir, seed, seeds), "runs"), exist_ok=True)
        jobs = plan_jobs(args, seeds, sizes, names, configs, vocab_size_of(args.dataset), command)
        print(f"reproduce.py: {len(sizes)} sizes x {len(seeds)} seed{'s' if len(seeds) > 1 else ''}: {why}", flush=True)
        results = job_pool.run_jobs(jobs, workers, threads)
        per_seed = [results[f"seed {seed}"] for seed in seeds]
        written = [path for result in per_seed for path in result["written"]]
        final = per_seed[0]["conclusion"]
        if len(seeds) > 1:
            together = seeds_view.write(args.out_dir, [seed_dir(args.out_dir, seed, seeds) for seed in seeds],
                                        command=command)
            written, final = written + together["written"], together["conclusion"]
    except concurrent.futures.process.BrokenProcessPool:
        raise UsageError("a worker process died (out of memory?); run the same command with --jobs=1 to "
                         "continue one job at a time") from None
    for path in written:
        print(f"wrote {path}")
    print("\n" + plain(final))


if __name__ == "__main__":
    sys.exit(main())
