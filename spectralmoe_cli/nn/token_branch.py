"""One REIN-style refinement branch with its own per-layer low-rank tokens (used by SET and FADA).

Both methods split the frozen feature map into components (amplitude/phase; wavelet bands) and
refine each component as REIN refines the whole map: Δ = W_f(softmax(x Tᵀ/√d)[:, 1:] (W_t T[1:]
+ b_t) + x), T = A B per layer, each branch with its own tokens and its own two Linear layers.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .plugin import token_refine


class TokenBranch(nn.Module):
    """REIN's per-layer low-rank tokens and its two shared Linear(d, d) layers, for one component."""

    def __init__(self, num_layers: int, num_tokens: int, rank: int, dim: int) -> None:
        super().__init__()
        # REIN's init: U(±sqrt(6 / (3·16·16 + sqrt(d·r)))), written for its 16 px patches
        bound = math.sqrt(6.0 / (3 * 16 * 16 + math.sqrt(dim * rank)))
        self.tokens_a = nn.Parameter(torch.empty(num_layers, num_tokens, rank).uniform_(-bound, bound))
        self.tokens_b = nn.Parameter(torch.empty(num_layers, rank, dim).uniform_(-bound, bound))
        self.mlp_token2feat = nn.Linear(dim, dim)
        self.mlp_delta_f = nn.Linear(dim, dim)

    def layer_tokens(self) -> torch.Tensor:
        """Every layer's tokens T_l = A_l B_l, [L, m, d]."""
        return self.tokens_a @ self.tokens_b

    def forward(self, layer: int, x: torch.Tensor) -> torch.Tensor:
        """The branch's update of component ``x`` [B, K, d] at ``layer``."""
        tokens = (self.tokens_a[layer] @ self.tokens_b[layer]).to(x.dtype)
        return self.mlp_delta_f(token_refine(x, x, tokens, self.mlp_token2feat) + x)

    @staticmethod
    def no_weight_decay(prefix: str) -> set[str]:
        return {f"{prefix}.tokens_a", f"{prefix}.tokens_b"}
