"""
Exact per-token gradient statistics: the engine behind zsl.py's D(∇θℓ).

For N tokens and P parameter elements, g_ij = ∂ℓ_i/∂θ_j. zsl.py needs, per element j, sums over
tokens i of g_ij, |g_ij|, g_ij² and ε_ki g_ij for a few random sign patterns ε_k (the last two for
the random-sign null, docs/science.md §6), and, given a direction δ, the per-token first-order change
Σ_j g_ij δ_j. All but the first need every per-token gradient, one at a time. Two ways:

    naive_per_token_grad_stats   one backward per token: slow, obviously right (the tests' reference)
    per_token_grad_stats         one backward per position for all sequences at once, per-sequence
                                 weight gradients rebuilt from layer inputs and output gradients

Both return the same dict (docs/science.md §3). Then: the sign patterns and the nested subsets of
tokens (for D against N) the sums are taken over, and sharded_grad_stats, the same sums from
several processes (torchrun) added up by one all-reduce.
"""
import sys

import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F
from tqdm import tqdm


def _progress(total, desc, unit, enable):
    """A tqdm bar on stderr (progress bars never mix with --json output)."""
    return tqdm(total=total, desc=desc, unit=unit, leave=False, disable=not enable, file=sys.stderr)


# ---------------------------------------------------------------------------------------------
# What we stream
#
# For N tokens and P parameter elements we want, per element j,
#     S_j = Σ_i g_ij          A_j = Σ_i |g_ij|          Q_j = Σ_i g_ij²          (g_ij = ∂ℓ_i/∂θ_j)
#     M_kj = Σ_i ε_ki g_ij    for K fixed random sign patterns ε_k ∈ {−1, +1}^N (a Monte Carlo null)
# and, given a direction δ (an optimizer update), the per-token first-order change
#     Δ̃ℓ_i = Σ_j g_ij δ_j.
# A_j needs every per-token gradient; we stream them and never hold all N at once.
# Tokens may carry a subset id (segment[b, t]); every subset gets its own S, A, Q, M, so nested
# subsets of the tokens are unions of consecutive subsets (zsl.py uses this for D against N).
# The statistics are returned as a plain dict:
#     {"sum_grad": {name: S}, "sum_abs_grad": {name: A}, "sum_sq_grad": {name: Q},
#      "sum_signed_grad": {name: M [K, *shape]}, "n_tokens": N,
#      "predicted_change": Δ̃ℓ [B, n_positions] or None,
#      "subsets": [the same four sums and n_tokens, one per subset id] (only if segment is given)}
# Memory: (3 + K) × (number of subsets) × P accumulators.
# ---------------------------------------------------------------------------------------------

SUMS = ("sum_grad", "sum_abs_grad", "sum_sq_grad", "sum_signed_grad")


def _zero_sums(model, n_signs):
    params = dict(model.named_parameters())  # the tied lm_head weight is listed once, as wte.weight
    sums = {key: {n: torch.zeros_like(p, requires_grad=False) for n, p in params.items()} for key in SUMS[:3]}
    sums["sum_signed_grad"] = {n: p.new_zeros(n_signs, *p.shape) for n, p in params.items()}
    return {**sums, "n_tokens": 0}


def add_sums(blocks):
    """Element-wise total of several blocks of sums (e.g. consecutive subsets of the tokens)."""
    total = {key: {n: sum(b[key][n] for b in blocks) for n in blocks[0][key]} for key in SUMS}
    return {**total, "n_tokens": sum(b["n_tokens"] for b in blocks)}


def _prepare(model, B, n_positions, direction, signs, segment, n_subsets):
    """Checked sign patterns [K, B, n_positions], subset ids [B, n_positions], empty statistics."""
    device, dtype = model.wte.weight.device, model.wte.weight.dtype
    if signs is None:
        signs = torch.zeros(0, B, n_positions)
    if segment is None:
        segment = torch.zeros(B, n_positions, dtype=torch.long)
    if signs.shape[1:] != (B, n_positions) or segment.shape != (B, n_positions):
        raise ValueError(f"signs {tuple(signs.shape)} / segment {tuple(segment.shape)} do not match "
                         f"{B} sequences x {n_positions} positions")
    n_subsets = n_subsets or int(segment.max()) + 1
    blocks = [_zero_sums(model, signs.shape[0]) for _ in range(n_subsets)]
    predicted = torch.zeros((B, n_positions), dtype=dtype, device=device) if direction is not None else None
    return signs.to(device=device, dtype=dtype), segment.to(device), blocks, predicted


def _finish(blocks, predicted, with_subsets):
    stats = {**add_sums(blocks), "predicted_change": predicted}
    if with_subsets:
        stats["subsets"] = blocks
    return stats


def naive_per_token_grad_stats(model, x, y, direction=None, n_positions=None, signs=None, segment=None,
                               n_subsets=None):
    """
    The reference: one forward per sequence, then one backward per token. Slow, obviously right.
    x, y: [B, T] token ids; n_positions: use only positions 0..n_positions-1 of each sequence;
    signs: [K, B, n_positions] of ±1 (or None: K = 0); segment: [B, n_positions] subset ids
    0 .. n_subsets-1 (default: the largest id + 1); with a segment, "subsets" holds one block each.
    """
    model.eval()
    B, T = x.shape
    n_positions = n_positions or T
    names, params = zip(*model.named_parameters())
    with_subsets = segment is not None
    signs, segment, blocks, predicted = _prepare(model, B, n_positions, direction, signs, segment, n_subsets)
    for b in range(B):
        xb, yb = x[b:b + 1, :n_positions].contiguous(), y[b:b + 1, :n_positions].contiguous()
        _, losses = model(xb, yb, per_token=True)
        for t in range(n_positions):
            grads = torch.autograd.grad(losses[0, t], params, retain_graph=True)  # g_i, one token
            block = blocks[int(segment[b, t])]
            for name, g in zip(names, grads):
                block["sum_grad"][name] += g                # S_j += g_ij
                block["sum_abs_grad"][name] += g.abs()      # A_j += |g_ij|
                block["sum_sq_grad"][name] += g * g         # Q_j += g_ij²
                for k in range(signs.shape[0]):             # M_kj += ε_ki g_ij
                    block["sum_signed_grad"][name][k] += signs[k, b, t] * g
                if direction is not None:                   # Δ̃ℓ_i += Σ_j g_ij δ_j
                    predicted[b, t] += torch.dot(g.flatten(), direction[name].flatten()).item()
            block["n_tokens"] += 1
    return _finish(blocks, predicted, with_subsets)


# The fast method is the per-example-gradient idea the paper used ("custom autograd layers"),
# done with hooks instead:
#   * Token (b, t)'s loss depends only on sequence b and positions s <= t. So ONE backward of
#     Σ_b ℓ_{b,t} gives every sequence's own gradient at once, as long as we never sum over b:
#     we ask autograd only for the gradients at the OUTPUT of every layer, e_{b,s} = ∂ℓ_{b,t}/∂z_{b,s},
#     and build each sequence's weight gradient ourselves from the layer's input a_{b,s}:
#         Linear     W: g_b = Σ_{s<=t} e_{b,s} a_{b,s}ᵀ        bias: Σ_{s<=t} e_{b,s}
#         LayerNorm  γ: g_b = Σ_{s<=t} e_{b,s} ⊙ â_{b,s}       β:    Σ_{s<=t} e_{b,s}   (â = normalised a)
#         Embedding  E: row v of g_b = Σ_{s<=t, a_{b,s}=v} e_{b,s}
#     (positions s > t have e = 0 by causality, so the sums stop at t.)
#   * Layers used only after the last attention (the last block's attn.proj, ln_2, mlp, then ln_f
#     and the head) act on position t alone: their per-token gradient is the rank-1 e_{b,t} a_{b,t}ᵀ.
#   * Causality again: ℓ_{b,t} needs only the prefix x[:, :t+1], so positions are processed in
#     chunks, each with a forward on the prefix up to the chunk's end (less work for early tokens).
# Memory: seq_chunk sequences × number of parameters.

def _after_last_mixing(model, module_name):
    """True for layers that only ever see one position after the last attention mixes positions."""
    last = f"blocks.{len(model.blocks) - 1}."
    return module_name.startswith((last + "attn.proj", last + "ln_2", last + "mlp", "ln_f", "lm_head"))


def _forward_with_layer_io(model, x, y):
    """Per-token losses [B, T] plus every parametrised layer's (input, output) from the same pass."""
    layer_io = {}
    hooks = [module.register_forward_hook(
                 lambda module, inputs, output, name=name: layer_io.__setitem__(name, (inputs[0], output)))
             for name, module in model.named_modules()
             if isinstance(module, (nn.Linear, nn.LayerNorm, nn.Embedding))]
    try:
        _, losses = model(x, y, per_token=True)
    finally:
        for hook in hooks:
            hook.remove()
    return losses, layer_io


def _per_sequence_grads(model, layer_io, normalised, out_grads, t):
    """
    Token t's gradient for every sequence of the batch: {parameter name: [batch, *shape]},
    built from each layer's input a and output gradient e (the rules in the comment above).
    """
    modules = dict(model.named_modules())
    param_name = {id(p): n for n, p in model.named_parameters()}
    per_seq = {}

    def add(param, g):  # tied weights (wte = lm_head) collect both contributions
        name = param_name[id(param)]
        per_seq[name] = per_seq[name] + g if name in per_seq else g

    for name, e in out_grads.items():
        module = modules[name]
        # rank 1 after the last mixing (only position t); otherwise causality (positions s <= t)
        positions = slice(t, t + 1) if _after_last_mixing(model, name) else slice(0, t + 1)
        e, a = e[:, positions], layer_io[name][0][:, positions]
        if isinstance(module, nn.Linear):
            add(module.weight, torch.bmm(e.transpose(1, 2), a))          # Σ_s e_s a_sᵀ
            if module.bias is not None:
                add(module.bias, e.sum(1))                                # Σ_s e_s
        elif isinstance(module, nn.LayerNorm):
            a_hat = normalised[name][:, positions]
            add(module.weight, (e * a_hat).sum(1))                        # Σ_s e_s ⊙ â_s
            if module.bias is not None:
                add(module.bias, e.sum(1))                                # Σ_s e_s
        else:  # the token embedding: a holds token ids
            g = e.new_zeros(e.shape[0], *module.weight.shape)
            g.scatter_add_(1, a.unsqueeze(-1).expand_as(e), e)           # row a_s += e_s
            add(module.weight, g)
            # x = wte(idx) + wpe(pos) (model.py): the position embedding gets the same e
            g_pos = e.new_zeros(e.shape[0], *model.wpe.weight.shape)
            g_pos[:, :t + 1] = e                                          # row s += e_s
            add(model.wpe.weight, g_pos)
    return per_seq


def _accumulate(block, name, g, signs):
    """Add a batch of per-token gradients g [b, *shape] (sign patterns signs [K, b]) to one block."""
    block["sum_grad"][name] += g.sum(0)                                                  # S_j += Σ_b g_bj
    if signs.shape[0]:                                                                   # M_kj += Σ_b ε_kb g_bj
        block["sum_signed_grad"][name] += (signs @ g.flatten(1)).view(-1, *g.shape[1:])
    block["sum_sq_grad"][name] += (g * g).sum(0)                                         # Q_j += Σ_b g_bj²
    block["sum_abs_grad"][name] += g.abs().sum(0)                                        # A_j += Σ_b |g_bj|


def per_token_grad_stats(model, x, y, chunk=16, seq_chunk=32, direction=None, n_positions=None,
                         progress=False, signs=None, segment=None, n_subsets=None):
    """Same result as naive_per_token_grad_stats, much less work (see the comment above)."""
    model.eval()
    B, T = x.shape
    n_positions = n_positions or T
    modules = dict(model.named_modules())
    with_subsets, device = segment is not None, model.wte.weight.device
    signs, segment, blocks, predicted = _prepare(model, B, n_positions, direction, signs, segment, n_subsets)
    # every layer with parameters; wpe's output is shared by the whole batch, so its per-sequence
    # gradient is taken from the token embedding's output gradient instead (same tensor: x = wte + wpe)
    layer_names = [n for n, m in modules.items()
                   if isinstance(m, (nn.Linear, nn.LayerNorm, nn.Embedding)) and n != "wpe"]
    bar = _progress(total=B * n_positions, desc="per-token grads", unit="tok", enable=progress)
    for b0 in range(0, B, seq_chunk):
        for start in range(0, n_positions, chunk):
            end = min(start + chunk, n_positions)
            xb = x[b0:b0 + seq_chunk, :end].to(device).contiguous()  # the prefix up to the chunk's end is enough
            yb = y[b0:b0 + seq_chunk, :end].to(device).contiguous()
            rows = slice(b0, b0 + xb.shape[0])
            losses, layer_io = _forward_with_layer_io(model, xb, yb)
            with torch.no_grad():  # normalised LayerNorm inputs â, once per forward
                normalised = {n: F.layer_norm(layer_io[n][0], modules[n].normalized_shape, eps=modules[n].eps)
                              for n in layer_names if isinstance(modules[n], nn.LayerNorm)}
            for t in range(start, end):
                # e_{b,s} = ∂ℓ_{b,t}/∂z_{b,s} for every layer output z, all sequences b in one backward
                grads = torch.autograd.grad(losses[:, t].sum(), [layer_io[n][1] for n in layer_names],
                                            retain_graph=t < end - 1)
                # the sequences of this chunk, grouped by the subset their token t belongs to
                ids = segment[rows, t]
                groups = ([(int(ids[0]), None)] if bool((ids == ids[0]).all()) else
                          [(int(s), (ids == s).nonzero().squeeze(1)) for s in ids.unique()])
                with torch.no_grad():
                    per_seq = _per_sequence_grads(model, layer_io, normalised, dict(zip(layer_names, grads)), t)
                    for name, g in per_seq.items():
                        if direction is not None:                                     # Δ̃ℓ_b += Σ_j g_bj δ_j
                            predicted[rows, t] += g.flatten(1) @ direction[name].flatten()
                        for s, members in groups:
                            if members is None:
                                _accumulate(blocks[s], name, g, signs[:, rows, t])
                            else:
                                _accumulate(blocks[s], name, g[members], signs[:, rows, t][:, members])
                for s, members in groups:
                    blocks[s]["n_tokens"] += xb.shape[0] if members is None else len(members)
                bar.update(xb.shape[0])
    bar.close()
    return _finish(blocks, predicted, with_subsets)


# ---------------------------------------------------------------------------------------------
# What the tokens carry: sign patterns for the Monte Carlo null, subset ids for D against N
# ---------------------------------------------------------------------------------------------

SIGN_SEED, SUBSET_SEED = 0, 1


def sign_patterns(n_signs, B, n_positions, seed=SIGN_SEED):
    """
    ε_ki = ±1, fair and independent, for K = n_signs patterns and every token i = (b, t): [K, B, n_positions].
    Fixed by the seed and indexed by the token, so a token gets the same signs however the tokens are
    split into chunks or across processes.
    """
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 2, (n_signs, B, n_positions), generator=generator).float() * 2 - 1


def default_subset_sizes(n_tokens):
    """64, 256, 1 024, ... (×4) below n_tokens, then n_tokens itself."""
    sizes = [64]
    while sizes[-1] * 4 < n_tokens:
        sizes.append(sizes[-1] * 4)
    return [s for s in sizes if s < n_tokens] + [n_tokens]


def nested_subsets(B, n_positions, sizes, seed=SUBSET_SEED):
    """
    Nested subsets of the B × n_positions tokens, for D against N. The tokens are put in one fixed
    random order (rank r_i, a permutation of 0 .. N_all−1, fixed by the seed); the subset of size N
    is the N tokens of lowest rank, so a smaller subset lies inside every larger one. Returns
    (segment [B, n_positions], sizes): segment_i = k for sizes[k−1] <= r_i < sizes[k], so the subset of
    size sizes[k] is the union of segments 0..k. sizes is sorted, deduplicated, cut to the token
    count, and always ends with the count itself (the subset of all tokens).
    """
    n_all = B * n_positions
    sizes = sorted({int(s) for s in sizes if 0 < s < n_all}) + [n_all]
    generator = torch.Generator().manual_seed(seed)
    rank = torch.empty(n_all, dtype=torch.long)
    rank[torch.randperm(n_all, generator=generator)] = torch.arange(n_all)
    segment = torch.bucketize(rank, torch.tensor(sizes), right=True)    # number of sizes <= r_i
    return segment.view(B, n_positions), sizes


# ---------------------------------------------------------------------------------------------
# Across processes (torchrun): each process streams its share of the probe sequences, then the
# sums are added up. Every sum above is a sum over tokens, so the total is exactly what one process
# would have streamed (up to the order of float additions, ~1e-7 relative).
# ---------------------------------------------------------------------------------------------

def sharded_grad_stats(model, x, y, rank=0, world=1, n_positions=None, direction=None, signs=None,
                       segment=None, n_subsets=None, **options):
    """
    per_token_grad_stats on this process's contiguous share of the B sequences, then an all-reduce
    (sum) of every accumulator and of the first-order predictions, so every process returns the
    statistics of all B sequences. world = 1: just per_token_grad_stats.
    """
    if world == 1:
        return per_token_grad_stats(model, x, y, n_positions=n_positions, direction=direction, signs=signs,
                                    segment=segment, n_subsets=n_subsets, **options)
    B, n_positions = x.shape[0], n_positions or x.shape[1]
    mine = torch.tensor_split(torch.arange(B), world)[rank]            # this process's sequences
    with_subsets = segment is not None
    if segment is None:
        segment, n_subsets = torch.zeros(B, n_positions, dtype=torch.long), 1
    n_subsets = n_subsets or int(segment.max()) + 1                    # the same on every process
    stats = per_token_grad_stats(model, x[mine], y[mine], n_positions=n_positions, direction=direction,
                                 signs=None if signs is None else signs[:, mine], segment=segment[mine],
                                 n_subsets=n_subsets, **options)
    blocks = stats["subsets"]
    tensors = [block[key][name] for block in blocks for key in SUMS for name in block[key]]
    counts = torch.tensor([float(block["n_tokens"]) for block in blocks], dtype=torch.float64)
    predicted = None
    if direction is not None:  # each process fills its own rows; the sum fills them all
        predicted = stats["predicted_change"].new_zeros(B, n_positions)
        predicted[mine.to(predicted.device)] = stats["predicted_change"]
        tensors.append(predicted)
    flat = torch.cat([t.flatten() for t in tensors])                   # one all-reduce for everything
    dist.all_reduce(flat)
    offset = 0
    for t in tensors:
        t.copy_(flat[offset:offset + t.numel()].view_as(t))
        offset += t.numel()
    counts = counts.to(flat.device)
    dist.all_reduce(counts)
    for block, count in zip(blocks, counts.tolist()):
        block["n_tokens"] = int(round(count))
    return _finish(blocks, predicted, with_subsets)
