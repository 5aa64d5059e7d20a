"""
Zero-sum learning: how much of what one token gains, another token loses.

    python zsl.py RUN_DIR [RUN_DIR ...]        # analyse train.py runs, write zsl.json + figures
    python zsl.py RUN_DIR --json --no_grad      # print the per-step summary, records only
    python zsl.py RUN_DIR --probe_tokens 16384  # a probe beyond the recorded one (from the validation split)
    torchrun --standalone --nproc_per_node=2 zsl.py RUN_DIR   # the probe shared by 2 processes

Read top to bottom (docs/science.md §2-4 and §6 define every quantity):

  1. interference of per-token loss changes, D(Δℓ)            -- from train.py's records
  2. reading a run directory                                  -- support/runfiles.py: the files, which
                                                                 checkpoints and probe tokens, t_d,
                                                                 zsl.json kept on a rerun, the checks
  3. per-token gradients g_ij = ∂ℓ_i/∂θ_j, exactly            -- token_grads.py: a plain reference
                                                                 loop and a fast per-example method
  4. gradient interference D(∇θℓ), its random-sign null, D against N
  5. the update link: one AdamW step δ, predicted Δ̃ℓ_i = Σ_j g_ij δ_j
  6. a run measured over its checkpoints (several processes), before and after t_d
     (figures: plots.py, drawn from the summaries this file makes; the command line: support/zsl_cli.py)

Python API (stable names, used by the report script):
    interference(delta) -> (D, M, abs_dL)
    loss_interference(run_dir) -> [per-record dict]
    naive_per_token_grad_stats(model, x, y, direction=None, n_positions=None, signs=None, segment=None)
    per_token_grad_stats(model, x, y, chunk=16, seq_chunk=32, direction=None, n_positions=None,
                         signs=None, segment=None)
        both return {"sum_grad", "sum_abs_grad", "sum_sq_grad", "sum_signed_grad": {param name: tensor},
                     "n_tokens", "predicted_change": [B, n_positions] or None, "subsets": [...]}
    adamw_update(model, ckpt, x, y) -> {param name: δ};  update_link(stats, δ, measured Δℓ) -> dict
    gradient_summary(stats) -> dict (D, the nulls, the excess alignment; per tensor);  by_n(stats) -> [dict]
    gradient_interference(run_dir, steps=None, max_checkpoints=None, probe_tokens=None, ...) -> [dict]
    around_deceleration(summary, t_d), excess_around_deceleration(summary, t_d) -> before/after means
    analyse_run(run_dir, ...) -> summary dict (what zsl.json holds)
  and in support/runfiles.py: load_config, record_paths, load_record, load_probe, checkpoint_paths,
    load_checkpoint, probe_tokens_for, deceleration_step

While it writes into a run directory, zsl.py holds the directory's lock (support/rundir.py), so a
train.py --overwrite cannot rebuild the run under it. A rerun adds to the gradient rows of an earlier
zsl.json made with the same settings, and refuses to mix them with rows made otherwise (--overwrite:
replace them).
"""
if __name__ == "__main__":  # Ctrl-C while torch loads (a second or more): one line, not a traceback
    from support.cli import quiet_ctrl_c_while_loading
    quiet_ctrl_c_while_loading("zsl.py")

import copy
import math
import os
import sys
import time

import numpy as np
import torch
import torch.distributed as dist
from tqdm import tqdm

from token_grads import (add_sums, default_subset_sizes, naive_per_token_grad_stats,  # noqa: F401 (API)
                         nested_subsets, per_token_grad_stats, sharded_grad_stats, sign_patterns)
from support.cli import UsageError
from support.runfiles import (check_run_dir, checkpoint_fingerprint, checkpoint_paths, deceleration,
                              earlier_gradient_rows,
                              finite_record, load_checkpoint, load_probe, load_record, merge_gradient_rows,
                              nonfinite_record_steps, pick_checkpoints, previous_gradient_rows, probe_tokens_for,
                              record_paths, step_of, step_rows)

EMBEDDING_PARAMS = ("wte.weight", "wpe.weight")  # wte is also the (tied) output head
HIST_BINS = 100
N_SIGNS = 8  # sign patterns of the Monte Carlo null (each costs about 2-3% of the gradient work, README)


def _progress_iter(items, desc, enable):
    """A tqdm bar on stderr (progress bars never mix with --json output)."""
    return tqdm(items, desc=desc, leave=False, disable=not enable, file=sys.stderr)


# ---------------------------------------------------------------------------------------------
# 1. Interference of per-token loss changes
# ---------------------------------------------------------------------------------------------

def interference(delta):
    """
    delta: per-token loss changes Δℓ_i (any shape). Returns (D, M, |ΔL|):
        D(Δℓ) = 1 − |Σ_i Δℓ_i| / Σ_i |Δℓ_i|   in [0, 1]; 0 = all tokens move together,
                                              1 = improvements exactly cancel degradations
        M(Δℓ) = mean_i |Δℓ_i|
        |ΔL|  = |mean_i Δℓ_i| = M · (1 − D)
    If nothing changed at all (Σ|Δℓ_i| = 0), D is undefined and returned as nan.
    """
    delta = np.asarray(delta, dtype=np.float64).ravel()
    total_abs = np.abs(delta).sum()                       # Σ_i |Δℓ_i|
    D = 1.0 - abs(delta.sum()) / total_abs if total_abs > 0 else float("nan")
    M = float(np.abs(delta).mean())                       # mean_i |Δℓ_i|
    abs_dL = float(abs(delta.mean()))                     # |mean_i Δℓ_i|
    return float(D), M, abs_dL


def _interference_dict(delta):
    D, M, abs_dL = interference(delta)
    return {"D": D, "M": M, "abs_dL": abs_dL}


# From the records (no model needed)

def loss_interference(run_dir):
    """
    For every record step s, D/M/|ΔL| of three kinds of per-token loss change:
      train:    one optimizer step on the batch it trained on   Δℓ = train_after − train_before
      probe:    the same step, on the held-out probe set        Δℓ = probe_after − probe_before
      interval: from this record to the next one, on the probe  Δℓ = probe_before(s') − probe_before(s)
                (None at the last record)
    Records holding nan or inf (a run that diverged) are left out; nonfinite_record_steps names them.
    """
    records = [record for record in map(load_record, record_paths(run_dir)) if finite_record(record)]
    for rec, nxt in zip(records, records[1:]):
        if rec["probe_before"].shape != nxt["probe_before"].shape:
            raise UsageError(f"{run_dir}: the probe of step {int(rec['step'])} is {rec['probe_before'].shape}, "
                           f"that of step {int(nxt['step'])} {nxt['probe_before'].shape}: records of two "
                           "runs are mixed in one directory; re-run train.py into a fresh --out_dir")
    rows = []
    for k, rec in enumerate(records):
        row = {
            "step": int(rec["step"]),
            "lr": float(rec["lr"]),
            "train": _interference_dict(rec["train_after"] - rec["train_before"]),
            "probe": _interference_dict(rec["probe_after"] - rec["probe_before"]),
            "interval": None,
        }
        if k + 1 < len(records):
            nxt = records[k + 1]
            row["interval"] = _interference_dict(nxt["probe_before"] - rec["probe_before"])
            row["interval"]["to_step"] = int(nxt["step"])
        rows.append(row)
    return rows


# 2. Reading a run directory: support/runfiles.py.  3. Per-token gradients, exactly: token_grads.py
#    (a naive reference loop and a fast path), imported above.


# ---------------------------------------------------------------------------------------------
# 4. Gradient interference: C_j = |S_j| / A_j,  D_j = 1 − C_j
# ---------------------------------------------------------------------------------------------

def gradient_summary(stats, bins=HIST_BINS):
    """
    From the streamed sums S_j = Σ_i g_ij, A_j = Σ_i |g_ij|, Q_j = Σ_i g_ij², M_kj = Σ_i ε_ki g_ij
    (token_grads.py), over non-embedding elements j:

    D_grad         the paper's D(∇θℓ) = mean_j (1 − C_j),  C_j = |S_j| / A_j
    D_grad_global  1 − Σ_j |S_j| / Σ_j A_j

    The null: what D would be if the same per-token gradients had random signs (docs/science.md §6).
    D grows with the number N of pooled tokens even then, so D alone cannot say "systematic".
    D_null_sign    mean_j (1 − C_j^0),  C_j^0 = sqrt(2/π) · sqrt(Q_j) / A_j: for fair random signs
                   ε_i, Σ_i ε_i g_ij has variance Q_j and, by the central limit theorem,
                   E|Σ_i ε_i g_ij| ≈ sqrt(2/π) · sqrt(Q_j); free, but an approximation at small N
    D_null_mc      mean_j (1 − C_j^mc),  C_j^mc = mean_k |M_kj| / A_j: K fixed random sign patterns
                   ε_k, no approximation beyond the Monte Carlo error
    D_null_mc_se   that Monte Carlo error: std_k(D^(k)) / sqrt(K), D^(k) = mean_j (1 − |M_kj| / A_j)
    excess_sign, excess_mc   the excess alignment D_null − D_grad: > 0 when the per-token gradients
                   agree in sign more than chance would have them, 0 when they look like coin flips
    per_tensor     D_mean (mean_j 1 − C_j), D_global, D_null_sign, D_null_mc, excess_sign, excess_mc
                   for every tensor (embeddings included, marked)
    hist_counts    100-bin histogram of C_j on [0, 1]; hist_counts_null_sign of C_j^0;
                   hist_counts_null_mc of |M_kj| / A_j over every pattern k (K times as many counts)
    The nulls are left out (None) when the sums they need were not streamed.
    0/0: an element no token's loss depends on (A_j = 0) has no C_j; it is left out of means and
    histograms and counted in n_zero. "Zero" means up to float rounding, A_j <= 1e-6 · max A in its
    tensor: e.g. the attention key bias, whose gradient is exactly 0 (softmax ignores a shift of all
    scores) but comes out as ~1e-9 noise, whose C_j would be noise too.
    """
    has_sign = "sum_sq_grad" in stats
    n_signs = next(iter(stats["sum_signed_grad"].values())).shape[0] if "sum_signed_grad" in stats else 0
    per_tensor, all_C, all_C0, all_Cmc = [], [], [], []
    total_abs_sum, total_abs = 0.0, 0.0
    for name, S in stats["sum_grad"].items():
        A = stats["sum_abs_grad"][name]
        row, C, C0, Cmc = tensor_alignment(name, S, A, stats.get("sum_sq_grad", {}).get(name),
                                           stats["sum_signed_grad"][name] if n_signs else None)
        per_tensor.append(row)
        if not row["embedding"]:
            all_C.append(C)
            all_C0.append(C0 if has_sign else C[:0])
            all_Cmc.append(Cmc if n_signs else C.new_zeros(0, C.numel()))
            total_abs_sum += float(S.abs().sum())                       # Σ_j |Σ_i g_ij|
            total_abs += float(A.sum())                                 # Σ_j Σ_i |g_ij|
    all_C = torch.cat(all_C).double().cpu().numpy()
    counts, _ = np.histogram(all_C, bins=bins, range=(0.0, 1.0))
    summary = {
        "D_grad": float(np.mean(1 - all_C)),
        "D_grad_global": 1 - total_abs_sum / total_abs,
        "D_null_sign": None, "D_null_mc": None, "D_null_mc_se": None, "excess_sign": None, "excess_mc": None,
        "n_signs": n_signs,
        "n_elements": int(all_C.size),
        "n_zero": sum(r["n_zero"] for r in per_tensor if not r["embedding"]),
        "n_tokens": stats["n_tokens"],
        "hist_counts": counts.tolist(),
        "hist_counts_null_sign": None, "hist_counts_null_mc": None,
    }
    if has_sign:
        all_C0 = torch.cat(all_C0).double().cpu().numpy()
        summary["D_null_sign"] = float(np.mean(1 - all_C0))
        summary["excess_sign"] = summary["D_null_sign"] - summary["D_grad"]
        summary["hist_counts_null_sign"] = np.histogram(all_C0, bins=bins, range=(0.0, 1.0))[0].tolist()
    if n_signs:
        all_Cmc = torch.cat(all_Cmc, dim=1).double().cpu().numpy()     # [K, elements]
        D_k = np.mean(1 - all_Cmc, axis=1)                              # D^(k), one per sign pattern
        summary["D_null_mc"] = float(np.mean(D_k))
        summary["D_null_mc_se"] = float(np.std(D_k, ddof=1) / math.sqrt(n_signs)) if n_signs > 1 else None
        summary["excess_mc"] = summary["D_null_mc"] - summary["D_grad"]
        summary["hist_counts_null_mc"] = np.histogram(all_Cmc, bins=bins, range=(0.0, 1.0))[0].tolist()
    summary["per_tensor"] = per_tensor
    return summary


def tensor_alignment(name, S, A, Q=None, M=None):
    """gradient_summary's numbers for one tensor, from its sums S_j, A_j (and Q_j, M_kj when streamed):
    (row, C_j, C_j^0, |M_kj| / A_j) over its used elements (A_j > 1e-6 max A: not zero up to rounding)."""
    mean = lambda v: float(v.mean()) if v.numel() else float("nan")  # noqa: E731
    used = A > 1e-6 * A.max()                                       # A_j = 0 up to rounding
    C = (S.abs()[used] / A[used])                                   # C_j = |Σ_i g_ij| / Σ_i |g_ij|
    C0 = Cmc = None
    row = {
        "name": name,
        "numel": S.numel(),
        "n_zero": int((~used).sum()),
        "D_mean": mean(1 - C),                                      # mean_j (1 − C_j)
        "D_global": float(1 - S.abs().sum() / A.sum()) if A.sum() > 0 else float("nan"),
        "embedding": name in EMBEDDING_PARAMS,
        "D_null_sign": None, "D_null_mc": None, "excess_sign": None, "excess_mc": None,
    }
    if Q is not None:                                               # C_j^0 = sqrt(2/π) sqrt(Q_j) / A_j
        C0 = math.sqrt(2 / math.pi) * Q[used].sqrt() / A[used]
        row["D_null_sign"] = mean(1 - C0)
        row["excess_sign"] = row["D_null_sign"] - row["D_mean"]
    if M is not None:                                               # |M_kj| / A_j, one row per pattern k
        Cmc = M[:, used].abs() / A[used]
        row["D_null_mc"] = mean(1 - Cmc)                            # mean_j (1 − mean_k |M_kj| / A_j)
        row["excess_mc"] = row["D_null_mc"] - row["D_mean"]
    return row, C, C0, Cmc


BY_N_KEYS = ("n_tokens", "D_grad", "D_grad_global", "D_null_sign", "D_null_mc", "D_null_mc_se",
             "excess_sign", "excess_mc")


def by_n(stats):
    """
    D against N: the summary of each nested subset of the tokens (token_grads.nested_subsets),
    smallest first; the last row is all the tokens, the same numbers as gradient_summary(stats).
    """
    rows, pooled = [], None
    for block in stats["subsets"]:
        pooled = block if pooled is None else add_sums([pooled, block])  # subsets 0..k
        summary = gradient_summary(pooled)
        rows.append({key: summary[key] for key in BY_N_KEYS})
    return rows


# ---------------------------------------------------------------------------------------------
# 5. The update link: one AdamW step from a checkpoint
# ---------------------------------------------------------------------------------------------

def adamw_update(model, ckpt, x, y):
    """
    δ = θ_after − θ_before for one AdamW step on (x, y), from the checkpoint's own optimizer
    moments and learning rate, without gradient clipping (docs/science.md §4). Weight decay is part
    of δ. Dropout off, so δ is deterministic. Returns {name: δ}.
    """
    train = ckpt["train_config"]
    stepped = copy.deepcopy(model)
    optimizer = stepped.configure_optimizer(train["learning_rate"], train["weight_decay"],
                                            (train["beta1"], train["beta2"]), train["adam_eps"])
    optimizer.load_state_dict(copy.deepcopy(ckpt["optimizer"]))  # step() updates the moments in place
    for group in optimizer.param_groups:
        group["lr"] = ckpt["lr"]                    # the LR the next update would have used
    stepped.eval()
    _, loss = stepped(x, y)
    loss.backward()
    optimizer.step()
    before = dict(model.named_parameters())
    return {n: (p - before[n]).detach() for n, p in stepped.named_parameters()}


@torch.no_grad()
def probe_losses(model, x, y, delta=None):
    """Per-token losses [B, T], at θ or at θ + δ."""
    if delta is None:
        return model(x, y, per_token=True)[1]
    moved = copy.deepcopy(model)
    for name, p in moved.named_parameters():
        p += delta[name]
    return moved(x, y, per_token=True)[1]


def update_link(stats, delta, measured):
    """
    stats: per-token gradient statistics computed with direction=δ; measured: Δℓ [B, T].
    predicted Δ̃ℓ_i = Σ_j g_ij δ_j (first order), and with p_ij = g_ij δ_j:
        C_g = Σ_j |Σ_i p_ij| / Σ_j Σ_i |p_ij| = Σ_j |δ_j| |S_j| / Σ_j |δ_j| A_j   (all elements)
    """
    predicted = stats["predicted_change"].numpy()
    measured = measured.double().numpy()
    numerator = sum(float((delta[n].double().abs() * stats["sum_grad"][n].abs()).sum()) for n in delta)
    denominator = sum(float((delta[n].double().abs() * stats["sum_abs_grad"][n]).sum()) for n in delta)
    D_meas, M_meas, dL_meas = interference(measured)
    D_pred, M_pred, dL_pred = interference(predicted)
    return {
        "D_measured": D_meas, "M_measured": M_meas, "abs_dL_measured": dL_meas,
        "D_predicted": D_pred, "M_predicted": M_pred, "abs_dL_predicted": dL_pred,
        "C_g": numerator / denominator if denominator > 0 else float("nan"),
        # how good the first-order prediction is, token by token
        "corr_predicted_measured": float(np.corrcoef(predicted.ravel(), measured.ravel())[0, 1]),
        "rel_err_predicted": float(np.linalg.norm(predicted - measured) / np.linalg.norm(measured)),
        "update_norm": math.sqrt(sum(float((d.double() ** 2).sum()) for d in delta.values())),
    }


# ---------------------------------------------------------------------------------------------
# 6. A run, over its checkpoints; before and after the deceleration
# ---------------------------------------------------------------------------------------------

def _to_cpu(obj):
    if isinstance(obj, torch.Tensor):
        return obj.cpu()
    if isinstance(obj, dict):
        return {k: _to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_to_cpu(v) for v in obj]
    return obj


def gradient_interference(run_dir, steps=None, max_checkpoints=None, probe_tokens=None,
                          chunk=16, update=True, progress=False, n_signs=N_SIGNS, subset_sizes=None,
                          rank=0, world=1, device="cpu", print_time=False):
    """
    Per checkpoint: gradient_summary(...) plus 'step', 'by_n' (D against N, by_n) and, with
    update=True, 'update' (update_link). n_signs: K sign patterns of the Monte Carlo null (0: none);
    subset_sizes: the N of D against N (default token_grads.default_subset_sizes). With world > 1
    (torchrun), this process streams its share of the probe and the sums are all-reduced: every
    process returns the same rows.
    """
    paths = checkpoint_paths(run_dir)
    if not paths:
        return []
    probe = load_probe(run_dir)
    x, y, n_positions = probe_tokens_for(run_dir, probe, probe_tokens)
    n_tokens = x.shape[0] * n_positions
    signs = sign_patterns(n_signs, x.shape[0], n_positions)
    segment, sizes = nested_subsets(x.shape[0], n_positions,
                                    default_subset_sizes(n_tokens) if subset_sizes is None else subset_sizes)
    rows = []
    chosen = pick_checkpoints(paths, steps, max_checkpoints)
    for step, path in _progress_iter(chosen, "checkpoints", progress):
        started = time.perf_counter()
        model, ckpt = load_checkpoint(path)
        model.to(device)
        delta = None
        if update:
            delta = adamw_update(model, ckpt, probe["update_x"].to(device), probe["update_y"].to(device))
            if world > 1:  # one δ for all: process 0's (GPU kernels need not be bit-reproducible)
                for d in delta.values():
                    dist.broadcast(d, src=0)
        stats = sharded_grad_stats(model, x, y, rank, world, n_positions=n_positions, direction=delta,
                                   signs=signs, segment=segment, n_subsets=len(sizes), chunk=chunk,
                                   progress=progress)
        stats = _to_cpu(stats)
        row = {"step": step, **gradient_summary(stats), "by_n": by_n(stats)}
        if update:
            xs, ys = (t[:, :n_positions].contiguous().to(device) for t in (x, y))
            measured = (probe_losses(model, xs, ys, delta) - probe_losses(model, xs, ys)).cpu()
            row["update"] = {"lr": float(ckpt["lr"]), **update_link(stats, _to_cpu(delta), measured)}
        rows.append(row)
        if print_time:
            tqdm.write(f"zsl.py: step {step}: {n_tokens} tokens, {n_signs} sign patterns, {len(sizes)} subsets "
                       f"in {time.perf_counter() - started:.1f} s on {world} process{'es' if world > 1 else ''}",
                       file=sys.stderr)
    return rows




def _mean(values):
    values = [v for v in values if v is not None and math.isfinite(v)]
    return float(np.mean(values)) if values else None


def around_deceleration(summary, t_d):
    """Mean D(Δℓ) (probe, one step) and mean D(∇θℓ) well before (step <= t_d/2) and well after
    (step >= 2 t_d) the deceleration: (D before, D after, D(∇θℓ) before, D(∇θℓ) after)."""
    records, checkpoints = summary["loss_interference"], summary["gradient_interference"]
    return (_mean([r["probe"]["D"] for r in records if r["step"] <= t_d / 2]),
            _mean([r["probe"]["D"] for r in records if r["step"] >= 2 * t_d]),
            _mean([g["D_grad"] for g in checkpoints if g["step"] <= t_d / 2]),
            _mean([g["D_grad"] for g in checkpoints if g["step"] >= 2 * t_d]))


def excess_around_deceleration(summary, t_d, key="excess_mc"):
    """Mean excess alignment D_null − D(∇θℓ) (key: excess_mc or excess_sign) at checkpoints well
    before (step <= t_d/2) and well after (step >= 2 t_d) the deceleration: (before, after)."""
    checkpoints = summary["gradient_interference"]
    return (_mean([g.get(key) for g in checkpoints if g["step"] <= t_d / 2]),
            _mean([g.get(key) for g in checkpoints if g["step"] >= 2 * t_d]))


def headline(summary):
    """One line for people: interference before and after t_d (when bnsl.py found t_d)."""
    if not summary["t_d"]:
        why = summary.get("t_d_note") or "bnsl.py found no deceleration"
        return f"no t_d, so no before/after summary: {why}"
    fmt = lambda v: "n/a" if v is None else f"{v:.2f}"
    fmt3 = lambda v: "n/a" if v is None else f"{v:.3f}"
    D_before, D_after, G_before, G_after = around_deceleration(summary, summary["t_d"])
    E_before, E_after = excess_around_deceleration(summary, summary["t_d"])
    return (f"t_d = {summary['t_d']:.0f}: D(Δℓ) one step on the probe {fmt(D_before)} before t_d/2 -> "
            f"{fmt(D_after)} after 2 t_d; D(∇θℓ) {fmt(G_before)} -> {fmt(G_after)}; "
            f"excess alignment over the random-sign null {fmt3(E_before)} -> {fmt3(E_after)}")


def analyse_run(run_dir, steps=None, max_checkpoints=None, probe_tokens=None, grad=True,
                update=True, chunk=16, progress=False, n_signs=N_SIGNS, subset_sizes=None,
                rank=0, world=1, device="cpu", print_time=None, overwrite=False):
    """Everything zsl.json holds, for one run directory (gradient_interference has the options),
    merged with the still valid gradient rows of an earlier zsl.json (runfiles.py, section 4):
    summary["kept_rows"] and ["stale_rows"] say which. overwrite: the earlier rows are not kept
    (they are all in stale_rows) and may have been made with other settings."""
    check_run_dir(run_dir, need_probe=grad, probe_tokens=probe_tokens, update=update, steps=steps,
                  max_checkpoints=max_checkpoints, n_signs=n_signs, subset_sizes=subset_sizes, overwrite=overwrite)
    kept, stale = previous_gradient_rows(run_dir) if not overwrite else ([], [])
    if overwrite:
        stale = sorted(row["step"] for row in earlier_gradient_rows(run_dir))
    new_rows = (gradient_interference(
        run_dir, steps, max_checkpoints, probe_tokens, chunk=chunk, update=update, progress=progress,
        n_signs=n_signs, subset_sizes=subset_sizes, rank=rank, world=world, device=device,
        print_time=progress if print_time is None else print_time) if grad else [])
    by_step = {step_of(p): p for p in checkpoint_paths(run_dir)}
    for row in new_rows:
        row["checkpoint_sha256"] = checkpoint_fingerprint(by_step[row["step"]])
    t_d, t_d_note = deceleration(run_dir)
    summary = {
        "run_dir": os.path.abspath(run_dir),
        "t_d": t_d,
        "t_d_note": t_d_note,
        "loss_interference": loss_interference(run_dir),
        "nonfinite_records": nonfinite_record_steps(run_dir),
        "gradient_interference": merge_gradient_rows(new_rows, kept),
        "kept_rows": sorted({row["step"] for row in kept} - {row["step"] for row in new_rows}),
        "stale_rows": stale,
        "zero_C_rule": "elements with sum_i |g_ij| = 0 are excluded from D_grad and the histogram",
    }
    summary["steps"] = step_rows(summary)
    return summary


if __name__ == "__main__":  # the command line (flags, checks, locks, torchrun, output): support/zsl_cli.py
    from support.zsl_cli import main
    sys.exit(main())
