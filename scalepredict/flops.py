"""Exact parameter and FLOP accounting for the model family in scalepredict/train/model.py.

Conventions (docs/recipe.md; Kaplan et al. 2020 table 1, Hoffmann et al. 2022 appendix F):
- `params` is the non-embedding parameter count: every weight except the token and position embeddings; the
  output head (d_model x vocab, untied) IS counted, as Porian et al. 2024 found it must be for small models.
- forward FLOPs per token = 2 * (matmul weights of the blocks) + 2 * d_model * vocab (head)
  + 4 * n_layer * seq_len * d_model (attention scores QK^T and the weighted sum of V, full T x T, no causal
  halving; the causal kernel skips about half of it, which we do not credit).
  Norms, softmax, GELU and the residual adds are left out (under 1% at these widths).
- training FLOPs per token = 3 x forward (backward = 2 x forward).
- 6ND (6 * params * tokens) is kept alongside for comparison with published work.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Shape:
    n_layer: int
    d_model: int
    n_head: int
    vocab_size: int
    seq_len: int
    mlp_ratio: int = 4  # hidden width of the MLP = mlp_ratio * d_model (GPT-2)

    def __post_init__(self):
        if self.d_model % self.n_head:
            raise ValueError(f"d_model {self.d_model} is not a multiple of n_head {self.n_head}")

    # -- parameters --------------------------------------------------------------------------------------------
    @property
    def block_matmul_params(self) -> int:
        """Per layer: Q, K, V and output projections (4 d^2) and the MLP (2 * mlp_ratio * d^2); no biases."""
        d = self.d_model
        return self.n_layer * (4 * d * d + 2 * self.mlp_ratio * d * d)

    @property
    def norm_params(self) -> int:
        """Two LayerNorm weights per layer (no biases) and the final norm."""
        return (2 * self.n_layer + 1) * self.d_model

    @property
    def head_params(self) -> int:
        return self.d_model * self.vocab_size

    @property
    def embedding_params(self) -> int:
        return self.vocab_size * self.d_model + self.seq_len * self.d_model  # tokens + learned positions

    @property
    def params(self) -> int:
        """Non-embedding parameters (blocks, norms, head): the N of the scaling laws."""
        return self.block_matmul_params + self.norm_params + self.head_params

    @property
    def params_total(self) -> int:
        return self.params + self.embedding_params

    # -- FLOPs -------------------------------------------------------------------------------------------------
    @property
    def forward_flops_per_token(self) -> int:
        return (2 * self.block_matmul_params + 2 * self.head_params
                + 4 * self.n_layer * self.seq_len * self.d_model)

    @property
    def train_flops_per_token(self) -> int:
        return 3 * self.forward_flops_per_token

    def train_flops(self, tokens: float) -> float:
        return float(self.train_flops_per_token) * tokens

    def flops_6nd(self, tokens: float) -> float:
        return 6.0 * self.params * tokens

    def as_dict(self) -> dict:
        return {"n_layer": self.n_layer, "d_model": self.d_model, "n_head": self.n_head,
                "vocab_size": self.vocab_size, "seq_len": self.seq_len, "mlp_ratio": self.mlp_ratio,
                "params": self.params, "params_total": self.params_total,
                "train_flops_per_token": self.train_flops_per_token}
