"""A decoder-only transformer in plain PyTorch, readable top to bottom (after nanoGPT's model.py).

Pre-norm blocks, causal self-attention through torch's scaled_dot_product_attention (flash / memory-efficient
kernels on CUDA), a GELU MLP, learned positions, an untied output head. No biases. Its parameter and FLOP
counts are in scalepredict/flops.py, and a test holds the two together.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..flops import Shape


class SelfAttention(nn.Module):
    def __init__(self, s: Shape):
        super().__init__()
        self.n_head = s.n_head
        self.qkv = nn.Linear(s.d_model, 3 * s.d_model, bias=False)
        self.proj = nn.Linear(s.d_model, s.d_model, bias=False)

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=2)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.proj(y.transpose(1, 2).contiguous().view(B, T, C))


class MLP(nn.Module):
    def __init__(self, s: Shape):
        super().__init__()
        self.up = nn.Linear(s.d_model, s.mlp_ratio * s.d_model, bias=False)
        self.down = nn.Linear(s.mlp_ratio * s.d_model, s.d_model, bias=False)

    def forward(self, x):
        return self.down(F.gelu(self.up(x)))


class Block(nn.Module):
    def __init__(self, s: Shape):
        super().__init__()
        self.ln1 = nn.LayerNorm(s.d_model, bias=False)
        self.attn = SelfAttention(s)
        self.ln2 = nn.LayerNorm(s.d_model, bias=False)
        self.mlp = MLP(s)

    def forward(self, x):
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class GPT(nn.Module):
    def __init__(self, s: Shape):
        super().__init__()
        self.shape = s
        self.tok = nn.Embedding(s.vocab_size, s.d_model)
        self.pos = nn.Embedding(s.seq_len, s.d_model)
        self.blocks = nn.ModuleList(Block(s) for _ in range(s.n_layer))
        self.ln_f = nn.LayerNorm(s.d_model, bias=False)
        self.head = nn.Linear(s.d_model, s.vocab_size, bias=False)
        self.apply(self._init)
        # residual projections scaled by 1/sqrt(2 * n_layer) (GPT-2 paper, section 2.3)
        for name, p in self.named_parameters():
            if name.endswith(("proj.weight", "down.weight")):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * s.n_layer))

    @staticmethod
    def _init(m):
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, mean=0.0, std=0.02)

    def forward(self, idx, targets=None):
        T = idx.shape[1]
        x = self.tok(idx) + self.pos(torch.arange(T, device=idx.device))
        for block in self.blocks:
            x = block(x)
        logits = self.head(self.ln_f(x))
        if targets is None:
            return logits
        return F.cross_entropy(logits.float().view(-1, logits.size(-1)), targets.reshape(-1))
