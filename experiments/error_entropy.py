"""
A third lens on the loss: cross-entropy = error-entropy + self-alignment - confidence.

    python error_entropy.py RUN_DIR [RUN_DIR ...]    # every checkpoint, one fixed evaluation set
    python error_entropy.py runs/* --json            # print the per-checkpoint terms as JSON

The decomposition (docs/science.md §8; arXiv 2510.04067). For token i with target y_i and
model probabilities s = softmax(logits):

    rank      e_i = #{v : s_v > s_{y_i}}           strict: ties get the best rank, 0 = ranked first
    buckets   p_e = #{i : e_i = e} / N              the fraction of tokens whose target has rank e
              log Q_e = mean of log s_{y_i} over the tokens of bucket e   (Q_e: a geometric mean)
              C = sum_e Q_e,  q_e = Q_e / C         (empty buckets drop out)
    terms     EE = -sum_e p_e log p_e               error-entropy: how spread out the ranks are
              SA = sum_e p_e log(p_e / q_e)         self-alignment = KL(p || q) >= 0
              log C                                 the confidence (C can be above or below 1)
    identity  CE = EE + SA - log C                  exactly, because sum_e p_e log Q_e = mean_i log
              s_{y_i} = -CE and log Q_e = log q_e + log C.

Sign convention: every number is in nats and CE, EE, SA are reported as they enter the sum;
the confidence is reported both as log_C and as its contribution to CE, neg_log_C = -log C
(positive when C < 1). A uniform model has EE = SA = 0 and -log C = log V = CE; a model that
ranks every target first with probability s has EE = SA = 0 and CE = -log C = -log s.

EE depends only on the ranks, so any monotone transform of the logits (a temperature) leaves
it unchanged; SA and the confidence absorb the change. All three are plug-in estimates that
depend on the number of tokens N, so every checkpoint of every run is evaluated on the same
fixed set of tokens (below), and a large one.

Read top to bottom:
  1. the decomposition: a streaming accumulator over batches, and decompose(logits, targets)
  2. the evaluation set: evenly spaced windows of the dataset's validation split
  3. a run: every checkpoint on that set; the terms against step; bnsl.py on the CE and EE curves;
     per-token loss changes between checkpoints, split by the target's rank
  4. across runs: each term against model size, a power law and its R^2
  5. figures, the section of reproduce.py's report, the command line

Nothing mixed, nothing lost: the evaluation set comes from the run's own dataset, checked by its
fingerprint (a dataset rebuilt from other text is refused); the run directory is locked while
error_entropy.json and error_entropy.png are written (support/rundir.py), both atomically; and a rerun
that would replace an earlier analysis with a narrower one (fewer checkpoints, other --tokens,
--context or --transient) is refused unless --overwrite. Checkpoints of a diverged run (nan or inf
weights) are left out, and said so.

Rules, written before the measurements (not tuned):
  * a term "bends at the deceleration" if bnsl.py's 1-break fit of that term against the
    checkpoint step is supported and its t_d is within a factor 2 of the t_d of the CE curve
    fitted on the same checkpoints;
  * zero-sum learning is "concentrated in" a group of tokens when that group carries more than
    80 % of sum_i |delta l_i| after 2 t_d (delta l_i: a token's loss change from one checkpoint
    to the next; groups: the target's rank unchanged / improved / worsened between them).
"""
import contextlib
import hashlib
import json
import math
import os
import sys

if __package__ in (None, ""):  # run as `python experiments/NAME.py`: import from the repository root,
    sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # as `python -m experiments.NAME` does
if __name__ == "__main__":  # Ctrl-C while torch loads (a second or more): one line, not a traceback
    from support.cli import quiet_ctrl_c_while_loading
    quiet_ctrl_c_while_loading("error_entropy.py")

import numpy as np
import torch
from tqdm import tqdm

import bnsl
import zsl
from data import prepare
from support import runfiles
from support.checks import set_threads, threads_flag
from support.files import json_bytes, json_safe, render_figure, write_figure, write_json, write_together
from support.cli import OneLineParser, UsageError, guarded
from support.rundir import check_out_dir, is_run_file, lock_run_dir

DEFAULT_TOKENS = 65_536    # 1 024 windows of 64 tokens; the estimates depend on N (docs/science.md §8)
DEFAULT_CONTEXT = 64       # tokens per window, the default block_size
TERMS = ("CE", "EE", "SA", "neg_log_C")
TERM_LABELS = {"CE": "CE", "EE": "EE (error-entropy)", "SA": "SA (self-alignment)",
               "neg_log_C": "-log C (confidence)"}
RANK_GROUPS = ((0, 0), (1, 1), (2, 3), (4, 7), (8, 15), (16, None))   # target rank ranges
SAME_STEP = 2.0            # "within a factor 2 of the CE curve's t_d"
CONCENTRATED = 0.8         # "more than 80 % of sum |delta l|"



# ---------------------------------------------------------------------------------------------
# 1. The decomposition
# ---------------------------------------------------------------------------------------------

class RankBuckets:
    """
    Streams tokens through, keeping per rank e only what the terms need:
        counts[e]    = #{i : e_i = e}
        sum_log_s[e] = sum of log s_{y_i} over those tokens          (float64)
    so a large evaluation set goes through in batches, never all its logits at once.
    """

    def __init__(self, vocab_size):
        self.vocab_size = vocab_size
        self.counts = np.zeros(vocab_size, dtype=np.int64)
        self.sum_log_s = np.zeros(vocab_size, dtype=np.float64)

    def add(self, logits, targets):
        """Adds a batch (logits [..., V], targets [...]); returns its per-token (losses, ranks)."""
        logits, targets = torch.as_tensor(logits), torch.as_tensor(targets)
        if logits.dim() < 1 or logits.shape[:-1] != targets.shape:
            raise UsageError(f"logits {tuple(logits.shape)} and targets {tuple(targets.shape)} do not "
                               "match: logits must be [..., V] with targets [...] (the same leading shape)")
        if logits.shape[-1] != self.vocab_size:
            raise UsageError(f"logits have {logits.shape[-1]} classes, expected {self.vocab_size}")
        if targets.dtype.is_floating_point or targets.dtype == torch.bool:
            raise UsageError(f"targets must be integer class ids, got {targets.dtype}")
        targets = targets.reshape(-1).long()
        if targets.numel() and (targets.min() < 0 or targets.max() >= self.vocab_size):
            raise UsageError(f"targets must lie in 0..{self.vocab_size - 1}, found "
                               f"{int(targets.min())}..{int(targets.max())}")
        log_s = torch.log_softmax(logits.detach().reshape(-1, self.vocab_size).double(), dim=-1)
        if not torch.isfinite(log_s).all():
            raise UsageError("the logits hold nan or inf values; a diverged model cannot be decomposed")
        log_s_target = log_s.gather(1, targets[:, None])[:, 0]            # log s_{y_i}
        ranks = (log_s > log_s_target[:, None]).sum(1)                    # e_i = #{v : s_v > s_{y_i}}
        self.counts += torch.bincount(ranks, minlength=self.vocab_size).numpy()
        self.sum_log_s += torch.zeros(self.vocab_size, dtype=torch.float64).index_add_(
            0, ranks, log_s_target).numpy()
        return -log_s_target.numpy(), ranks.numpy()

    def result(self):
        """The terms, in nats, and the bucket arrays (length V; log_Q is nan for empty buckets)."""
        n_tokens = int(self.counts.sum())
        if n_tokens == 0:
            raise UsageError("no tokens were added; give at least one token")
        filled = self.counts > 0
        p = self.counts / n_tokens                                        # p_e
        log_Q = np.full(self.vocab_size, np.nan)
        log_Q[filled] = self.sum_log_s[filled] / self.counts[filled]      # log Q_e = mean log s_y
        top = log_Q[filled].max()
        log_C = top + math.log(np.exp(log_Q[filled] - top).sum())         # log C = log sum_e Q_e
        log_q = log_Q[filled] - log_C                                     # log q_e = log Q_e - log C
        EE = float(-(p[filled] * np.log(p[filled])).sum())                # -sum_e p_e log p_e
        SA = float((p[filled] * (np.log(p[filled]) - log_q)).sum())       # sum_e p_e log(p_e / q_e)
        CE = float(-self.sum_log_s.sum() / n_tokens)                      # -mean_i log s_y
        return {"CE": CE, "EE": EE, "SA": SA, "log_C": float(log_C), "neg_log_C": float(-log_C),
                "EE_share": EE / CE if CE > 0 else float("nan"), "n_tokens": n_tokens,
                "p": p, "log_Q": log_Q, "counts": self.counts.copy()}


def decompose(logits, targets):
    """
    CE = EE + SA - log C for logits [..., V] and integer targets [...], in float64.

    Returns a dict: CE, EE, SA, log_C, neg_log_C (= -log C, the confidence as it enters CE),
    EE_share (= EE / CE), n_tokens, and the bucket arrays indexed by rank e = 0..V-1:
    p (p_e), log_Q (log Q_e, nan where no token has rank e) and counts. Ranks are strict,
    e_i = #{v : s_v > s_{y_i}}, so tied classes all share the best rank.
    """
    logits = torch.as_tensor(logits)
    if logits.dim() < 1:
        raise UsageError("logits must have a class dimension: [..., V]")
    buckets = RankBuckets(logits.shape[-1])
    buckets.add(logits, targets)
    return buckets.result()


# ---------------------------------------------------------------------------------------------
# 2. The evaluation set: the same tokens for every checkpoint and every run
# ---------------------------------------------------------------------------------------------

def evaluation_set(run_dir, n_tokens=DEFAULT_TOKENS, context=DEFAULT_CONTEXT, tokens_flag="--tokens"):
    """
    (x, y, description): ceil(n_tokens / context) windows of `context` tokens, evenly spaced over
    the validation split of the run's dataset (as train.py's probe is), so runs on one dataset
    see exactly the same tokens whatever their size or seed. The dataset must hold the tokens the
    run trained on (runfiles.run_dataset: its fingerprint). tokens_flag: the caller's name for
    n_tokens, in the message when the split is too small (reproduce.py's is --ee_tokens).
    """
    data_dir, _, val, meta = runfiles.run_dataset(run_dir, need="its dataset (the evaluation set's tokens)")
    n_windows = math.ceil(n_tokens / context)
    spacing = (len(val) - context - 1) / max(n_windows - 1, 1)
    if spacing < context:
        most = ((len(val) - context - 1) // context + 1) * context if len(val) > 2 * context else 0
        raise UsageError(f"the validation split of {data_dir} has {len(val):,} tokens, too few for "
                         f"{n_windows} separate windows of {context}; use {tokens_flag}={most} or less")
    starts = np.linspace(0, len(val) - context - 1, n_windows).astype(np.int64)
    x, y = prepare.windows(val, starts, context)
    description = {"dataset": os.path.abspath(data_dir), "vocab_size": int(meta["vocab_size"]),
                   "n_tokens": int(y.numel()), "context": context,
                   "sha1": hashlib.sha1(y.numpy().tobytes()).hexdigest()[:16]}  # which tokens exactly
    return x, y, description


# ---------------------------------------------------------------------------------------------
# 3. A run: every checkpoint on the evaluation set
# ---------------------------------------------------------------------------------------------

@torch.no_grad()
def evaluate(model, x, y, batch_size=64):
    """decompose() of the model's predictions on (x, y), streamed batch by batch.
    Returns (terms, per-token losses [N], per-token target ranks [N])."""
    if x.shape[1] > model.config.block_size:
        raise UsageError(f"the evaluation windows have {x.shape[1]} tokens but the model's block_size is "
                           f"{model.config.block_size}; use --context={model.config.block_size}")
    buckets = RankBuckets(model.config.vocab_size)
    losses, ranks = [], []
    for start in range(0, len(x), batch_size):
        logits, _ = model(x[start:start + batch_size])
        batch_losses, batch_ranks = buckets.add(logits, y[start:start + batch_size])
        losses.append(batch_losses)
        ranks.append(batch_ranks)
    return buckets.result(), np.concatenate(losses), np.concatenate(ranks)


def rank_group_names():
    return [f"{low}" if low == high else f"{low}+" if high is None else f"{low}-{high}" for low, high in RANK_GROUPS]


def loss_changes_by_rank(losses_a, ranks_a, losses_b, ranks_b):
    """
    Per-token loss changes delta l_i = l_i(b) - l_i(a) between two checkpoints a -> b, split two ways:
      by_rank:  the target's rank at a (0, 1, 2-3, 4-7, 8-15, 16+)
      by_move:  the target's rank unchanged / improved (smaller) / worsened (larger) from a to b
    Per group: share of tokens, net = sum_group delta l / N (these add up to delta CE),
    abs = sum_group |delta l| / N (these add up to M = mean |delta l|), and D = 1 - |net| / abs.
    """
    delta = losses_b - losses_a
    n_tokens = len(delta)

    def summary(mask):
        net, total_abs = delta[mask].sum() / n_tokens, np.abs(delta[mask]).sum() / n_tokens
        return {"share": float(mask.mean()), "net": float(net), "abs": float(total_abs),
                "D": float(1 - abs(net) / total_abs) if total_abs > 0 else None}

    by_rank = {name: summary((ranks_a >= low) & ((ranks_a <= high) if high is not None else True))
               for name, (low, high) in zip(rank_group_names(), RANK_GROUPS)}
    by_move = {"unchanged": summary(ranks_b == ranks_a), "improved": summary(ranks_b < ranks_a),
               "worsened": summary(ranks_b > ranks_a)}
    D, M, _ = zsl.interference(delta)
    return {"D": D, "M": M, "dCE": float(delta.mean()), "by_rank": by_rank, "by_move": by_move}


def fit_term(steps, values, transient=bnsl.DEFAULT_TRANSIENT):
    """bnsl.py's 1-break fit of one term against the checkpoint step (no smoothing or subsampling:
    checkpoints are already log-spaced). Returns the fit's numbers, or {"error": why not}."""
    try:
        steps, values = bnsl.prepare_curve(steps, values, smooth="none", subsample="none",
                                           transient=transient)
        fit = bnsl.fit_bnsl(steps, values, breaks=1)
    except bnsl.CurveError as e:
        return {"error": str(e)}
    return {key: json_safe(fit[key]) for key in ("t_d", "t_d_err", "L_d", "r_d", "c1", "rsle",
                                                  "rsle_power_law", "supported", "warning")}


def mean_over(intervals, key_path, low, high):
    """Mean of a nested value over the intervals that start at step >= low and end <= high."""
    values = []
    for interval in intervals:
        if interval["from_step"] >= low and interval["to_step"] <= high:
            value = interval
            for key in key_path:
                value = value[key] if value is not None else None
            if value is not None:
                values.append(value)
    return float(np.mean(values)) if values else None


def zero_sum_summary(intervals, t_d):
    """Who carries sum |delta l| before t_d / 2, from t_d / 2 to 2 t_d and after 2 t_d: per group,
    its share of the tokens, of sum |delta l| (abs_share) and of the net delta CE (net_share),
    and each term's net change as a share of delta CE."""
    if not t_d:
        return None
    summary = {}
    for phase, (low, high) in (("before", (0, t_d / 2)), ("around", (t_d / 2, 2 * t_d)),
                               ("after", (2 * t_d, math.inf))):
        chosen = [i for i in intervals if i["from_step"] >= low and i["to_step"] <= high]
        if not chosen:
            summary[phase] = None
            continue
        total, net = sum(i["M"] for i in chosen), sum(i["dCE"] for i in chosen)
        share = lambda value, whole: value / whole if whole else None
        row = {"intervals": len(chosen), "D": mean_over(intervals, ("D",), low, high)}
        for split in ("by_move", "by_rank"):
            for name in chosen[0][split]:
                row[f"{split}:{name}:token_share"] = float(np.mean([i[split][name]["share"] for i in chosen]))
                row[f"{split}:{name}:abs_share"] = share(sum(i[split][name]["abs"] for i in chosen), total)
                row[f"{split}:{name}:net_share"] = share(sum(i[split][name]["net"] for i in chosen), net)
                row[f"{split}:{name}:D"] = mean_over(chosen, (split, name, "D"), low, high)
        for term in ("EE", "SA", "neg_log_C"):   # the net change of each term, as a share of delta CE
            row[f"d{term}_share"] = share(sum(i[f"d{term}"] for i in chosen), net)
        summary[phase] = row
    after = summary.get("after")
    summary["concentrated_in"] = (next((name for name in ("unchanged", "improved", "worsened")
                                        if (after[f"by_move:{name}:abs_share"] or 0) > CONCENTRATED), None)
                                  if after else None)
    return summary


def chosen_checkpoints(run_dir, max_checkpoints=None):
    """The checkpoint paths analyse_run evaluates: all, or max_checkpoints of them evenly spaced in log
    step, always the last."""
    paths = runfiles.checkpoint_paths(run_dir)
    if not paths:
        raise UsageError(f"{run_dir}: no checkpoints/step_*.pt yet; let train.py run longer")
    if max_checkpoints and len(paths) > max_checkpoints:
        keep = np.unique(np.round(np.linspace(0, len(paths) - 1, max_checkpoints)).astype(int))
        paths = [paths[k] for k in keep]
    return paths


def finite_weights(model):
    return all(bool(torch.isfinite(p).all()) for p in model.parameters())


def analyse_run(run_dir, n_tokens=DEFAULT_TOKENS, context=DEFAULT_CONTEXT, t_d=None,
                transient=bnsl.DEFAULT_TRANSIENT, max_checkpoints=None, progress=False, tokens_flag="--tokens"):
    """Everything error_entropy.json holds, for one train.py run directory. A checkpoint with nan or
    inf weights (the run diverged) is left out and listed in "nonfinite_checkpoints"."""
    x, y, eval_set = evaluation_set(run_dir, n_tokens, context, tokens_flag)   # (checks the directory)
    paths = chosen_checkpoints(run_dir, max_checkpoints)
    checkpoints, intervals, previous, diverged = [], [], None, []
    for path in tqdm(paths, desc=f"{os.path.basename(os.path.normpath(run_dir))}: checkpoints",
                     leave=False, disable=not progress, file=sys.stderr):
        model, ckpt = runfiles.load_checkpoint(path)
        if model.config.vocab_size != eval_set["vocab_size"]:
            raise UsageError(f"{path}: the model has {model.config.vocab_size} classes but the dataset "
                             f"{eval_set['dataset']} has {eval_set['vocab_size']}; the run and its dataset do "
                             f"not match: re-run train.py on that dataset")
        if not finite_weights(model):
            diverged.append(int(ckpt["step"]))
            continue
        terms, losses, ranks = evaluate(model, x, y)
        last = int(np.flatnonzero(terms["counts"])[-1]) + 1   # keep the bucket arrays up to the last rank seen
        row = {"step": int(ckpt["step"]), **{k: terms[k] for k in ("CE", "EE", "SA", "log_C", "neg_log_C",
                                                                    "EE_share", "n_tokens")},
               "p": terms["p"][:last].tolist(), "log_Q": terms["log_Q"][:last].tolist(),
               "checkpoint_sha256": runfiles.checkpoint_fingerprint(path)}   # which weights exactly
        checkpoints.append(row)
        if previous is not None:
            change = loss_changes_by_rank(previous[1], previous[2], losses, ranks)
            change.update({"from_step": previous[0]["step"], "to_step": row["step"],
                           **{f"d{term}": row[term] - previous[0][term] for term in TERMS}})
            intervals.append(change)
        previous = (row, losses, ranks)
    if not checkpoints:
        raise UsageError(f"{run_dir}: every checkpoint has nan or inf weights (the run diverged); train it "
                         f"again with a smaller --learning_rate")
    return summarise_run(run_dir, eval_set, checkpoints, intervals, t_d, transient, max_checkpoints, diverged)


def summarise_run(run_dir, eval_set, checkpoints, intervals, t_d, transient, max_checkpoints, diverged):
    """error_entropy.json's content from the per-checkpoint rows and intervals: the fits of the terms
    against step, the bends, the zero-sum summary, and the settings they were made with."""
    if t_d is None:
        t_d = runfiles.deceleration_step(run_dir)   # from the training loss in log.csv
    steps = np.array([c["step"] for c in checkpoints], dtype=float)
    fits = {term: fit_term(steps, np.array([c[term] for c in checkpoints]), transient) for term in TERMS}
    config = runfiles.load_config(run_dir)
    return {"run_dir": os.path.abspath(run_dir), "eval_set": eval_set, "t_d": t_d,
            "params": config.get("non_embedding_params"), "model": config["model"],
            "settings": {"tokens": eval_set["n_tokens"], "context": eval_set["context"], "transient": transient,
                         "max_checkpoints": max_checkpoints},
            "checkpoints": checkpoints, "nonfinite_checkpoints": diverged, "fits": fits,
            "bends_at_deceleration": bends(fits), "intervals": intervals, "zero_sum": zero_sum_summary(intervals, t_d),
            "rules": {"bends": f"a term bends at the deceleration if its 1-break fit is supported and its "
                               f"t_d is within a factor {SAME_STEP:g} of the CE curve's t_d",
                      "concentrated": f"zero-sum learning is concentrated in a group if it carries more than "
                                      f"{CONCENTRATED:.0%} of sum |delta l| after 2 t_d"}}


# A rerun never silently destroys a wider analysis: the earlier error_entropy.json is replaced only by one
# made with the same evaluation set and --transient that covers every checkpoint it analysed (and that is
# unchanged since: a checkpoint rewritten by train.py --overwrite or a resume makes its row stale).

def earlier_analysis(run_dir):
    """(path, the earlier error_entropy.json's content, the steps of its rows whose checkpoint is unchanged),
    or (path, None, []) if there is none. A file of that name that is not one (unreadable, or not written
    by error_entropy.py) is a UsageError: it is never replaced without --overwrite."""
    path = os.path.join(run_dir, "error_entropy.json")
    if not os.path.lexists(path):
        return path, None, []
    if not is_run_file(path):
        raise UsageError(f"{path} is not an analysis error_entropy.py wrote (or it is damaged); move it away, "
                         f"or pass --overwrite to replace it")
    with open(path, encoding="utf-8") as f:
        old = json.load(f)
    by_step = {runfiles.step_of(p): p for p in runfiles.checkpoint_paths(run_dir)}
    valid = []
    for row in old.get("checkpoints", []):
        checkpoint = by_step.get(row.get("step")) if isinstance(row, dict) else None
        if checkpoint is None:
            continue
        if "checkpoint_sha256" in row:
            unchanged = row["checkpoint_sha256"] == runfiles.checkpoint_fingerprint(checkpoint)
        else:  # written before fingerprints: valid if the checkpoint is older than the analysis
            unchanged = os.path.getmtime(checkpoint) <= os.path.getmtime(path)
        if unchanged:
            valid.append(row["step"])
    return path, old, valid


def check_earlier_analysis(run_dir, eval_set, steps, transient):
    """UsageError if this analysis (on eval_set, of the checkpoints `steps`, with `transient`) would
    replace a valid earlier one it does not cover. Returns a note for the user, or None."""
    path, old, valid = earlier_analysis(run_dir)
    if old is None:
        return None
    if not valid:
        return f"replaced {os.path.basename(path)} of an earlier run (its checkpoints are gone or changed since)"
    before, settings = old.get("eval_set", {}), old.get("settings", {})
    what = f"{len(valid)} checkpoints on {before.get('n_tokens', 0):,} tokens in windows of {before.get('context')}"
    flags = f"--tokens={before.get('n_tokens')} --context={before.get('context')}" + (
        f" --transient={settings['transient']}" if "transient" in settings else "")
    problem = None
    if before.get("sha1") != eval_set["sha1"]:
        problem = (f"it would evaluate other tokens ({eval_set['n_tokens']:,} in windows of {eval_set['context']}: "
                   f"another --tokens or --context)")
    elif settings.get("transient", transient) != transient:
        problem = f"it would fit the terms with --transient={transient}, not {settings['transient']}"
    elif set(valid) - set(steps):
        dropped = sorted(set(valid) - set(steps))
        problem = (f"it would drop checkpoint(s) {', '.join(map(str, dropped[:6]))}{' ...' if len(dropped) > 6 else ''}"
                   f" (--max_checkpoints)")
    if problem:
        raise UsageError(f"{path} holds an analysis of {what} that this rerun would replace: {problem}; rerun "
                         f"with {flags} and every checkpoint it had, or pass --overwrite to replace it")
    return None


def bends(fits):
    """{term: True/False/None} by the rule in the module docstring (None: no CE break to compare)."""
    ce = fits["CE"]
    if "error" in ce or not ce["supported"]:
        return {term: None for term in TERMS}
    return {term: ("error" not in fit and bool(fit["supported"])
                   and abs(math.log(fit["t_d"] / ce["t_d"])) <= math.log(SAME_STEP))
            for term, fit in fits.items()}


# ---------------------------------------------------------------------------------------------
# 4. Across runs: each term against model size
# ---------------------------------------------------------------------------------------------

def power_law_fit(params, values):
    """log y = log a - alpha log N by least squares; R^2 = 1 - SS_res / SS_tot in log space.
    Returns {"a", "alpha", "r2"}, or {"error": why not} (a non-positive value has no log)."""
    params, values = np.asarray(params, dtype=float), np.asarray(values, dtype=float)
    if len(np.unique(params)) < 3:   # two points always lie on a line: R^2 = 1 says nothing
        return {"error": "needs at least three model sizes"}
    if np.any(values <= 0):
        return {"error": f"a value <= 0 ({values.min():.3g}) has no logarithm"}
    log_n, log_y = np.log(params), np.log(values)
    design = np.stack([np.ones_like(log_n), -log_n], axis=1)
    (log_a, alpha), *_ = np.linalg.lstsq(design, log_y, rcond=None)
    residual = log_y - design @ np.array([log_a, alpha])
    ss_tot = ((log_y - log_y.mean()) ** 2).sum()
    return {"a": float(np.exp(log_a)), "alpha": float(alpha),
            "r2": float(1 - (residual ** 2).sum() / ss_tot) if ss_tot > 0 else None}


def size_table(summaries):
    """The last checkpoint of each run, and a power law in model size per term over all runs."""
    fingerprints = {s["eval_set"]["sha1"] for s in summaries}
    if len(fingerprints) > 1:
        raise UsageError("the runs were evaluated on different token sets (different datasets or "
                           "--tokens/--context); compare runs of one dataset with the same flags")
    rows = [{"name": os.path.basename(s["run_dir"].rstrip("/")), "params": s["params"],
             **{k: s["checkpoints"][-1][k] for k in ("step", *TERMS, "EE_share")}} for s in summaries]
    fits = {term: power_law_fit([r["params"] for r in rows], [r[term] for r in rows]) for term in TERMS}
    return rows, fits


# ---------------------------------------------------------------------------------------------
# 5. Figures, reproduce.py's section, the command line
# ---------------------------------------------------------------------------------------------

def _pyplot():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def plot_run(summary, path):
    """CE and its terms against step (t_d marked where the fit of the training loss supports one), the
    EE share of CE, and p_e at three checkpoints. Writes path; returns the (closed) figure."""
    import plots
    plt = _pyplot()
    figure, (ax_terms, ax_share, ax_ranks) = plt.subplots(1, 3, figsize=(15, 4.4))
    rows = summary["checkpoints"]
    steps = [r["step"] for r in rows]
    for k, term in enumerate(TERMS):
        ax_terms.plot(steps, [r[term] for r in rows], "o-", ms=3, color=f"C{k}", label=TERM_LABELS[term])
    ax_share.plot(steps, [r["EE_share"] for r in rows], "o-", ms=3, color="C1", label="EE / CE")
    ee_fit = summary["fits"]["EE"]
    for ax in (ax_terms, ax_share):
        if summary["t_d"]:
            ax.axvline(summary["t_d"], color="k", ls="-.", lw=1, label=f"t_d (training loss) = {summary['t_d']:.0f}")
        if "error" not in ee_fit and ee_fit["supported"]:
            ax.axvline(ee_fit["t_d"], color="C1", ls=":", lw=1, label=f"t_d of EE = {ee_fit['t_d']:.0f}")
    ax_terms.axhline(0, color="grey", lw=0.5)
    marks = "dash-dot: t_d of the training loss" if summary["t_d"] else "no supported t_d of the training loss"
    ax_terms.set(xscale="log", xlabel="step", ylabel="nats per token",
                 title=f"CE = EE + SA − log C on the evaluation set\n({marks})")
    ax_share.set(xscale="log", xlabel="step", ylabel="EE / CE", title="error-entropy share of CE")
    picks = sorted({0, len(rows) // 2, len(rows) - 1})
    for k in picks:
        p = np.asarray(rows[k]["p"])
        ax_ranks.plot(np.arange(len(p)) + 1, np.where(p > 0, p, np.nan), ".-", ms=3,
                      label=f"step {rows[k]['step']} (EE {rows[k]['EE']:.2f} nats)")
    ax_ranks.set(xscale="log", yscale="log", xlabel="target rank e + 1 (1: the target ranked first)",
                 ylabel="p_e, fraction of tokens", title=f"rank distribution (V = {summary['eval_set']['vocab_size']})")
    for ax in (ax_terms, ax_share, ax_ranks):
        ax.title.set_fontsize(9)
        for axis in (ax.xaxis, ax.yaxis):
            if axis.get_scale() == "log":
                plots.plain_log_axis(axis)
        plots.legend_below(ax)
    plots.save(figure, path)
    return figure


def plot_sizes(summaries, rows, fits, path):
    """Each term at the last checkpoint against model size, with its power law and R^2 (and over how
    many sizes it is fitted: with 3, one degree of freedom is left); and the EE share of CE against
    step for every run. Writes path; returns the (closed) figure."""
    import plots
    plt = _pyplot()
    figure, axes = plt.subplots(1, 5, figsize=(22, 4.4))
    params = np.array([r["params"] for r in rows], dtype=float)
    dense = np.geomspace(params.min(), params.max(), 50)
    for ax, term in zip(axes, TERMS):
        ax.plot(params, [r[term] for r in rows], "o", color="C0", label="last checkpoint of each size")
        fit = fits[term]
        if "error" in fit:
            title = f"{TERM_LABELS[term]}\nno power law: {fit['error']}"
        else:
            ax.plot(dense, fit["a"] * dense ** -fit["alpha"], "-", color="C3", label="a N^(−α), least squares in log")
            title = (f"{TERM_LABELS[term]} ∝ N^{-fit['alpha']:.3f}\nR² = {_number(fit['r2'])} over {len(rows)} sizes "
                     f"({len(rows) - 2} degree{'s' if len(rows) != 3 else ''} of freedom)")
            ax.set_yscale("log")
        ax.set(xscale="log", xlabel="non-embedding parameters N", ylabel=f"{TERM_LABELS[term].split(' (')[0]} at the last checkpoint (nats per token)",
               title=title)
        ax.title.set_fontsize(9)
        for axis in (ax.xaxis, ax.yaxis):
            if axis.get_scale() == "log":
                plots.plain_log_axis(axis)
        plots.legend_below(ax, columns=1)
    for k, s in enumerate(summaries):
        ax = axes[-1]
        ax.plot([r["step"] for r in s["checkpoints"]], [r["EE_share"] for r in s["checkpoints"]],
                "-", color=f"C{k % 10}", label=rows[k]["name"])
    axes[-1].set(xscale="log", xlabel="step", ylabel="EE / CE", title="error-entropy share of CE, every size")
    axes[-1].title.set_fontsize(9)
    plots.plain_log_axis(axes[-1].xaxis)
    plots.legend_below(axes[-1], columns=3)
    plots.save(figure, path)
    return figure


def _number(value, digits=3):
    return "n/a" if value is None or (isinstance(value, float) and not math.isfinite(value)) else f"{value:.{digits}f}"


def _percent(value):
    return "n/a" if value is None else f"{100 * value:.0f}%"


def report_section(run_dirs, fits, out_dir, names=None, n_tokens=DEFAULT_TOKENS, context=DEFAULT_CONTEXT,
                   progress=True):
    """
    For reproduce.py: decompose every checkpoint of every run (writing each run's
    error_entropy.json), draw error_entropy_sizes.png and error_entropy_<name>.png into out_dir,
    and return (markdown text, dict of every number). fits: bnsl.py's fits of the training loss,
    one per run (their t_d is marked and used to split before / after the deceleration).
    """
    names = names or [os.path.basename(os.path.normpath(r)) for r in run_dirs]
    summaries = []
    for run_dir, fit, name in zip(run_dirs, fits, names):
        t_d = fit.get("t_d") if fit.get("supported", True) else None  # an unsupported fit has no t_d
        summary = analyse_run(run_dir, n_tokens, context, t_d=t_d, progress=progress, tokens_flag="--ee_tokens")
        write_json(os.path.join(run_dir, "error_entropy.json"), summary)
        write_figure(os.path.join(out_dir, f"error_entropy_{name}.png"), lambda path: plot_run(summary, path))
        summaries.append(summary)
    rows, size_fits = size_table(summaries)
    for row, name in zip(rows, names):
        row["name"] = name
    write_figure(os.path.join(out_dir, "error_entropy_sizes.png"),
                 lambda path: plot_sizes(summaries, rows, size_fits, path))
    eval_set = summaries[0]["eval_set"]
    lines = ["## The error-entropy lens (see docs/science.md §8)", "",
             f"CE = EE + SA − log C of every checkpoint on one fixed evaluation set: "
             f"{eval_set['n_tokens']:,} validation tokens in windows of {eval_set['context']} "
             f"(V = {eval_set['vocab_size']}). `error_entropy.py` computes it.", "",
             "| size | params | CE | EE | SA | −log C | EE / CE | t_d: loss / CE / EE (eval) | "
             "after 2 t_d: D(Δℓ) | share of Σ\\|Δℓ\\|: rank unchanged / improved / worsened |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for row, s in zip(rows, summaries):
        t_ds = [s["t_d"]] + [None if "error" in s["fits"][t] or not s["fits"][t]["supported"]
                             else s["fits"][t]["t_d"] for t in ("CE", "EE")]
        after = (s["zero_sum"] or {}).get("after")
        shares = " / ".join(_percent(after[f"by_move:{m}:abs_share"]) for m in ("unchanged", "improved", "worsened")) \
            if after else "n/a"
        lines.append(f"| {row['name']} | {row['params']:,} | {row['CE']:.3f} | {row['EE']:.3f} | {row['SA']:.3f} | "
                     f"{row['neg_log_C']:.3f} | {row['EE_share']:.2f} | "
                     f"{' / '.join(_number(t, 0) for t in t_ds)} | {_number(after and after['D'], 2)} | {shares} |")
    lines += ["", "Power law in model size over the last checkpoints, term = a·N^(−α) (α < 0: rises with size):", "",
              "| term | α | R² |", "|---|---|---|"]
    for term in TERMS:
        fit = size_fits[term]
        lines.append(f"| {TERM_LABELS[term]} | " + (f"{fit['alpha']:.4f} | {_number(fit['r2'])} |"
                                                  if "error" not in fit else f"— | {fit['error']} |"))
    lines += ["", "![the terms against model size](error_entropy_sizes.png)", ""]
    lines += [f"![{name}: the terms against step](error_entropy_{name}.png)\n" for name in names]
    data = {"eval_set": eval_set, "sizes": rows, "power_laws": size_fits,
            "runs": [{k: s[k] for k in ("run_dir", "t_d", "fits", "bends_at_deceleration", "zero_sum")}
                     for s in summaries]}
    return "\n".join(lines), data


def headline(summary):
    last = summary["checkpoints"][-1]
    ee, ce = summary["fits"]["EE"], summary["fits"]["CE"]
    fit_text = lambda f: "no fit" if "error" in f else f"t_d {f['t_d']:.0f}{'' if f['supported'] else ' (unsupported)'}"
    text = (f"step {last['step']}: CE {last['CE']:.4f} = EE {last['EE']:.4f} + SA {last['SA']:.4f} "
            f"- log C {last['log_C']:.4f}; EE/CE {last['EE_share']:.2f}; CE curve {fit_text(ce)}, "
            f"EE curve {fit_text(ee)}")
    after = (summary["zero_sum"] or {}).get("after")
    if after:
        text += ("; after 2 t_d, share of sum|dl| with the rank unchanged/improved/worsened: "
                 + "/".join(_percent(after[f"by_move:{m}:abs_share"]) for m in ("unchanged", "improved", "worsened")))
    return text


def parse_args(argv):
    p = OneLineParser(prog="error_entropy.py", command="experiments/error_entropy.py", allow_abbrev=False,
                      description="Decompose the loss of every checkpoint: "
                                  "CE = EE + SA - log C (error-entropy, self-alignment, confidence).")
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="train.py --out_dir(s)")
    p.add_argument("--tokens", type=int, default=DEFAULT_TOKENS,
                   help="size of the fixed evaluation set (default %(default)s; keep it fixed to compare)")
    p.add_argument("--context", type=int, default=DEFAULT_CONTEXT,
                   help="tokens per evaluation window, at most the models' block_size (default %(default)s)")
    p.add_argument("--transient", type=int, default=bnsl.DEFAULT_TRANSIENT,
                   help="bnsl.py fits of the terms drop checkpoints <= this step (default %(default)s)")
    p.add_argument("--max_checkpoints", type=int, default=None, help="at most this many, spread over the run")
    p.add_argument("--fig_dir", default=None, help="where the multi-run figure goes (default: the runs' common parent)")
    p.add_argument("--threads", type=threads_flag, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an earlier error_entropy.json even if it analysed more checkpoints or other tokens")
    p.add_argument("--json", action="store_true", help="print the per-checkpoint terms as JSON")
    p.add_argument("--no_progress", action="store_true", help="no progress bar")
    args = p.parse_args(argv)
    for name in ("tokens", "context", "max_checkpoints"):
        value = getattr(args, name)
        if value is not None and value < 1:
            p.error(f"--{name} must be >= 1, got {value}")
    if args.transient < 0:
        p.error(f"--transient must be >= 0, got {args.transient}")
    if args.tokens < args.context:
        p.error(f"--tokens={args.tokens} is less than one window of --context={args.context}; give at least that")
    if args.fig_dir is not None and len(args.run_dirs) < 2:
        p.error("--fig_dir is for the figure of several runs; one run's figure goes into its directory")
    return args


def main(argv=None):
    """The command line; returns the exit status (support/cli.py). The runs already finished keep their
    error_entropy.json when a later one fails or is interrupted."""
    return guarded("error_entropy.py", run_command, sys.argv[1:] if argv is None else argv)


def check_outputs(args):
    """Everything that could stop the command after its work, checked before it: each run's files, its
    evaluation set and model, the earlier analysis it would replace, where the files go. Returns the
    figure directory of several runs (or None) and {run_dir: a note for the user}."""
    notes, token_sets = {}, {}
    for run_dir in args.run_dirs:
        config = runfiles.load_config(run_dir)
        paths = chosen_checkpoints(run_dir, args.max_checkpoints)
        _, _, eval_set = evaluation_set(run_dir, args.tokens, args.context)
        block_size = config["model"].get("block_size", args.context)
        if args.context > block_size:
            raise UsageError(f"--context={args.context} is longer than {run_dir}'s model can read (its "
                             f"block_size is {block_size}); use --context={block_size} or less")
        token_sets.setdefault(eval_set["sha1"], run_dir)
        if len(token_sets) > 1:   # (size_table would refuse it after all the work)
            raise UsageError(f"{run_dir} and {next(iter(token_sets.values()))} have different datasets, so their "
                             f"evaluation sets differ and their terms cannot be compared; give runs of one "
                             f"dataset, or analyse them one at a time")
        if config["model"].get("vocab_size", eval_set["vocab_size"]) != eval_set["vocab_size"]:
            raise UsageError(f"{run_dir}: the model has {config['model']['vocab_size']} classes but its dataset "
                             f"{eval_set['dataset']} has {eval_set['vocab_size']}; re-run train.py on that dataset")
        for name in ("error_entropy.json", "error_entropy.png"):
            _check_writable(os.path.join(run_dir, name))
        if not args.overwrite:
            notes[run_dir] = check_earlier_analysis(run_dir, eval_set, [runfiles.step_of(p) for p in paths],
                                                    args.transient)
    if len(args.run_dirs) < 2:
        return None, notes
    fig_dir = args.fig_dir or os.path.commonpath([os.path.abspath(r) for r in args.run_dirs])
    if os.path.exists(fig_dir) and not os.path.isdir(fig_dir):
        raise UsageError(f"--fig_dir={fig_dir} is a file, not a directory; give a directory")
    check_out_dir(fig_dir, flag="--fig_dir")
    _check_writable(os.path.join(fig_dir, "error_entropy_sizes.png"))
    return fig_dir, notes


def _check_writable(path):
    if os.path.lexists(path) and not os.path.isfile(path):
        raise UsageError(f"{path} is in the way: error_entropy.py writes a file there, and it is not one "
                         f"(a directory?); move it away")


def run_command(argv):
    args = parse_args(argv)
    set_threads(args.threads)
    with contextlib.ExitStack() as locks:
        for run_dir in {os.path.realpath(r): r for r in args.run_dirs}.values():  # (a directory given twice: once)
            if os.path.isdir(run_dir):  # (a missing one: load_config says so)
                locks.enter_context(lock_run_dir(run_dir, tool="error_entropy.py", create=False,
                                                 fix="analyse a copy of the run"))
        fig_dir, notes = check_outputs(args)   # fail before any long computation
        summaries = [analyse_and_write(run_dir, args, notes.get(run_dir)) for run_dir in args.run_dirs]
    if len(summaries) > 1:
        rows, fits = size_table(summaries)
        os.makedirs(fig_dir, exist_ok=True)
        path = os.path.join(fig_dir, "error_entropy_sizes.png")
        write_figure(path, lambda target: plot_sizes(summaries, rows, fits, target))
        if not args.json:
            print(f"across {len(rows)} runs (last checkpoints) -> {path}")
            for term in TERMS:
                fit = fits[term]
                print(f"  {TERM_LABELS[term]:22s} " + (f"~ N^{-fit['alpha']:.4f}, R^2 = {_number(fit['r2'])}"
                                                      if "error" not in fit else fit["error"]))
    if args.json:
        print(json.dumps(json_safe([{"run_dir": s["run_dir"], "checkpoints": [
            {k: c[k] for k in ("step", "CE", "EE", "SA", "log_C", "neg_log_C", "EE_share")}
            for c in s["checkpoints"]]} for s in summaries]), indent=1))


def analyse_and_write(run_dir, args, note):
    """One run: analysed, error_entropy.json and error_entropy.png written, its lines printed."""
    summary = analyse_run(run_dir, args.tokens, args.context, transient=args.transient,
                          max_checkpoints=args.max_checkpoints, progress=not args.no_progress)
    figure = os.path.join(run_dir, "error_entropy.png")
    write_together([(figure, render_figure(figure, lambda path: plot_run(summary, path))),   # never one
                    (os.path.join(run_dir, "error_entropy.json"), json_bytes(summary))])  # without the other
    notes = [note] if note else []
    if summary["nonfinite_checkpoints"]:
        notes.append(f"left out checkpoint(s) {', '.join(map(str, summary['nonfinite_checkpoints']))}: nan or inf "
                     f"weights (the run diverged)")
    if not args.json:
        print(f"{run_dir}: {len(summary['checkpoints'])} checkpoints on {summary['eval_set']['n_tokens']:,} "
              f"tokens -> error_entropy.json, error_entropy.png\n  {headline(summary)}"
              + "".join(f"\n  {n}" for n in notes))
    else:
        for n in notes:
            print(f"error_entropy.py: {run_dir}: {n}", file=sys.stderr)
    return summary


if __name__ == "__main__":
    sys.exit(main())
