"""
Exact per-token gradient statistics: the engine behind zsl.py's D(∇θℓ).

For N tokens and P parameter elements, g_ij = ∂ℓ_i/∂θ_j. zsl.py needs, per element j, sums over
tokens i of g_ij and |g_ij| (and, given a direction δ, the per-token first-order change
Σ_j g_ij δ_j). The sum of |g_ij| needs every per-token gradient, one at a time. Two ways:

    naive_per_token_grad_stats   one backward per token: slow, obviously right (the tests' reference)
    per_token_grad_stats         one backward per position for all sequences at once, per-sequence
                                 weight gradients rebuilt from layer inputs and output gradients

Both return the same dict (design.md section 3).
"""
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm import tqdm


def _progress(total, desc, unit, enable):
    """A tqdm bar on stderr (progress bars never mix with --json output)."""
    return tqdm(total=total, desc=desc, unit=unit, leave=False, disable=not enable, file=sys.stderr)

# ---------------------------------------------------------------------------------------------
# 3. Per-token gradients, exactly
#
# For N tokens and P parameter elements we want, per element j,
#     S_j = Σ_i g_ij          A_j = Σ_i |g_ij|          (g_ij = ∂ℓ_i/∂θ_j)
# and, given a direction δ (an optimizer update), the per-token first-order change
#     Δ̃ℓ_i = Σ_j g_ij δ_j.
# A_j needs every per-token gradient; we stream them and never hold all N at once.
# The statistics are returned as a plain dict:
#     {"sum_grad": {name: S}, "sum_abs_grad": {name: A}, "n_tokens": N,
#      "predicted_change": Δ̃ℓ [B, n_positions] or None}
# ---------------------------------------------------------------------------------------------

def _empty_stats(model, direction, shape):
    params = dict(model.named_parameters())  # the tied lm_head weight is listed once, as wte.weight
    return {
        "sum_grad": {n: torch.zeros_like(p, requires_grad=False) for n, p in params.items()},
        "sum_abs_grad": {n: torch.zeros_like(p, requires_grad=False) for n, p in params.items()},
        "n_tokens": 0,
        "predicted_change": torch.zeros(shape, dtype=model.wte.weight.dtype) if direction is not None else None,
    }


def naive_per_token_grad_stats(model, x, y, direction=None, n_positions=None):
    """
    The reference: one forward per sequence, then one backward per token. Slow, obviously right.
    x, y: [B, T] token ids; n_positions: use only positions 0..n_positions-1 of each sequence.
    """
    model.eval()
    B, T = x.shape
    n_positions = n_positions or T
    names, params = zip(*model.named_parameters())
    stats = _empty_stats(model, direction, (B, n_positions))
    for b in range(B):
        xb, yb = x[b:b + 1, :n_positions].contiguous(), y[b:b + 1, :n_positions].contiguous()
        _, losses = model(xb, yb, per_token=True)
        for t in range(n_positions):
            grads = torch.autograd.grad(losses[0, t], params, retain_graph=True)  # g_i, one token
            for name, g in zip(names, grads):
                stats["sum_grad"][name] += g                # S_j += g_ij
                stats["sum_abs_grad"][name] += g.abs()      # A_j += |g_ij|
                if direction is not None:                   # Δ̃ℓ_i += Σ_j g_ij δ_j
                    stats["predicted_change"][b, t] += torch.dot(g.flatten(), direction[name].flatten()).item()
            stats["n_tokens"] += 1
    return stats


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


def per_token_grad_stats(model, x, y, chunk=16, seq_chunk=32, direction=None, n_positions=None,
                         progress=False):
    """Same result as naive_per_token_grad_stats, much less work (see the comment above)."""
    model.eval()
    B, T = x.shape
    n_positions = n_positions or T
    modules = dict(model.named_modules())
    stats = _empty_stats(model, direction, (B, n_positions))
    # every layer with parameters; wpe's output is shared by the whole batch, so its per-sequence
    # gradient is taken from the token embedding's output gradient instead (same tensor: x = wte + wpe)
    layer_names = [n for n, m in modules.items()
                   if isinstance(m, (nn.Linear, nn.LayerNorm, nn.Embedding)) and n != "wpe"]
    bar = _progress(total=B * n_positions, desc="per-token grads", unit="tok", enable=progress)
    for b0 in range(0, B, seq_chunk):
        for start in range(0, n_positions, chunk):
            end = min(start + chunk, n_positions)
            xb = x[b0:b0 + seq_chunk, :end].contiguous()   # the prefix up to the chunk's end is enough
            yb = y[b0:b0 + seq_chunk, :end].contiguous()
            losses, layer_io = _forward_with_layer_io(model, xb, yb)
            with torch.no_grad():  # normalised LayerNorm inputs â, once per forward
                normalised = {n: F.layer_norm(layer_io[n][0], modules[n].normalized_shape, eps=modules[n].eps)
                              for n in layer_names if isinstance(modules[n], nn.LayerNorm)}
            for t in range(start, end):
                # e_{b,s} = ∂ℓ_{b,t}/∂z_{b,s} for every layer output z, all sequences b in one backward
                grads = torch.autograd.grad(losses[:, t].sum(), [layer_io[n][1] for n in layer_names],
                                            retain_graph=t < end - 1)
                with torch.no_grad():
                    per_seq = _per_sequence_grads(model, layer_io, normalised, dict(zip(layer_names, grads)), t)
                    for name, g in per_seq.items():
                        stats["sum_grad"][name] += g.sum(0)                            # S_j += Σ_b g_bj
                        if direction is not None:                                     # Δ̃ℓ_b += Σ_j g_bj δ_j
                            stats["predicted_change"][b0:b0 + len(g), t] += g.flatten(1) @ direction[name].flatten()
                        stats["sum_abs_grad"][name] += g.abs_().sum(0)                 # A_j += Σ_b |g_bj|
                stats["n_tokens"] += xb.shape[0]
                bar.update(xb.shape[0])
    bar.close()
    return stats
