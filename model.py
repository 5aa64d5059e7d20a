"""
A compact GPT that can return per-token losses.

Read top to bottom: config -> attention -> MLP -> block -> GPT.
The model is a standard pre-norm decoder-only transformer (nanoGPT style) with
learned position embeddings and an output head tied to the input embedding.

Two things are specific to this project:
  * forward(idx, targets, per_token=True) returns the loss of every token
    prediction, shape [batch, time], from the same forward pass that gives the mean.
  * attention has two paths that compute the same numbers:
      - "sdpa":     torch's fused scaled_dot_product_attention (fast, for training);
      - "explicit": softmax(q k^T / sqrt(d) + causal mask) v written out, which
                    works under torch.func.vmap / batched gradients (zsl.py needs
                    per-token gradients, and SDPA's CPU backward cannot be vmapped).
    Switch with model.set_attention("explicit") or GPTConfig(attention=...).
"""
import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

ATTENTION_PATHS = ("sdpa", "explicit")


@dataclass
class GPTConfig:
    vocab_size: int = 256     # byte-level by default
    block_size: int = 64      # longest context the position embedding covers
    n_layer: int = 2
    n_head: int = 4
    n_embd: int = 64
    dropout: float = 0.0
    bias: bool = True         # biases in Linear and LayerNorm layers
    attention: str = "sdpa"   # "sdpa" or "explicit" (see module docstring)


class CausalSelfAttention(nn.Module):
    def __init__(self, config):
        super().__init__()
        assert config.n_embd % config.n_head == 0, "n_embd must be divisible by n_head"
        self.n_head = config.n_head
        self.qkv = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)
        self.proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.dropout = config.dropout
        self.attention = config.attention
        # lower-triangular mask for the explicit path: position t sees positions s <= t
        mask = torch.tril(torch.ones(config.block_size, config.block_size, dtype=torch.bool))
        self.register_buffer("causal_mask", mask, persistent=False)

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=2)
        # [B, T, C] -> [B, n_head, T, head_size]
        q = q.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        k = k.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        v = v.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        dropout_p = self.dropout if self.training else 0.0
        if self.attention == "sdpa":
            y = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p, is_causal=True)
        else:
            # att[t, s] = q_t . k_s / sqrt(head_size), only for s <= t
            att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))
            att = att.masked_fill(~self.causal_mask[:T, :T], float("-inf"))
            att = F.dropout(F.softmax(att, dim=-1), p=dropout_p, training=self.training)
            y = att @ v
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # re-assemble the heads
        return F.dropout(self.proj(y), p=self.dropout, training=self.training)


class MLP(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)
        self.proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x):
        return self.dropout(self.proj(F.gelu(self.fc(x))))


class Block(nn.Module):
    """Pre-norm residual block: x + attn(ln(x)), then x + mlp(ln(x))."""

    def __init__(self, config):
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.mlp = MLP(config)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    def __init__(self, config):
        super().__init__()
        if config.attention not in ATTENTION_PATHS:
            raise ValueError(f"attention must be one of {ATTENTION_PATHS}, got {config.attention!r}")
        self.config = config
        self.wte = nn.Embedding(config.vocab_size, config.n_embd)  # token embedding
        self.wpe = nn.Embedding(config.block_size, config.n_embd)  # position embedding
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList([Block(config) for _ in range(config.n_layer)])
        self.ln_f = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.lm_head.weight = self.wte.weight  # tied input/output embedding

        # GPT-2 init: N(0, 0.02); residual projections scaled by 1/sqrt(2 * n_layer)
        self.apply(self._init_weights)
        for name, p in self.named_parameters():
            if name.endswith("proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))

    @staticmethod
    def _init_weights(module):
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def set_attention(self, path):
        """Switch every layer between the "sdpa" and "explicit" attention paths."""
        if path not in ATTENTION_PATHS:
            raise ValueError(f"attention must be one of {ATTENTION_PATHS}, got {path!r}")
        self.config.attention = path
        for block in self.blocks:
            block.attn.attention = path

    def num_params(self, non_embedding=True):
        """Parameter count; by default without the (tied) token and the position embeddings."""
        n = sum(p.numel() for p in self.parameters())
        if non_embedding:
            n -= self.wte.weight.numel() + self.wpe.weight.numel()
        return n

    def forward(self, idx, targets=None, per_token=False):
        """
        idx, targets: LongTensor [B, T].
        Returns (logits [B, T, vocab], loss) where loss is
          None                  if targets is None,
          the mean over tokens  if per_token is False,
          a [B, T] tensor       if per_token is True: loss[b, t] = -log p(targets[b, t] | idx[b, :t+1]).
        """
        B, T = idx.shape
        if T > self.config.block_size:
            raise ValueError(f"sequence length {T} exceeds block_size {self.config.block_size}")
        pos = torch.arange(T, device=idx.device)
        x = self.drop(self.wte(idx) + self.wpe(pos))
        for block in self.blocks:
            x = block(x)
        logits = self.lm_head(self.ln_f(x))
        if targets is None:
            return logits, None
        # l_bt = -log softmax(logits_bt)[target_bt], computed in fp32 even under autocast
        token_losses = F.cross_entropy(
            logits.float().view(-1, logits.size(-1)), targets.view(-1), reduction="none"
        ).view(B, T)
        return logits, (token_losses if per_token else token_losses.mean())

    def configure_optimizer(self, learning_rate, weight_decay, betas, eps):
        """AdamW; weight decay on matrices only (not on embeddings, biases or LayerNorm gains)."""
        decay, no_decay = [], []
        for name, p in self.named_parameters():  # the tied wte/lm_head weight is listed once, as wte
            is_embedding = name in ("wte.weight", "wpe.weight")
            (decay if p.dim() >= 2 and not is_embedding else no_decay).append(p)
        groups = [
            {"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ]
        return torch.optim.AdamW(groups, lr=learning_rate, betas=betas, eps=eps)
