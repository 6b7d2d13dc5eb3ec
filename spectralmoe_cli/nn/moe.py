"""SpectralMoE: dual-gated mixture of low-rank token experts (DESIGN §3, architecture.md §1.3).

Per layer l: E experts T_e = A_e B_e (m tokens, rank r, B zero at start) shared by the visual and
the depth stream; one router per stream with logits -||f - w_gate[:, e]||_p (plus softplus(f
w_noise)·N(0,1) while training) and top-k selection; each routed expert refines a token by REIN's
token attention; the two refinements are fused and added back: f' = f + α·W_f(Δf + f).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.distributions.normal import Normal

from ..config import PluginConfig
from .fusion import FUSIONS
from .plugin import Plugin, QueryLinker, kaiming_uniform_, register_plugin


def cv_squared(x: torch.Tensor) -> torch.Tensor:
    """Squared coefficient of variation, var/mean² (unbiased var, as the reference)."""
    x = x.to(torch.promote_types(x.dtype, torch.float32))
    if x.numel() <= 1:
        return x.new_zeros(())
    return x.var() / (x.mean() ** 2 + 1e-10)


def gate_logits(x: torch.Tensor, w_gate: torch.Tensor, gating: str, norm: float) -> torch.Tensor:
    """Clean router logits [n, E] for tokens x [n, d] and prototypes w_gate [d, E]."""
    if gating == "softmax":
        return x @ w_gate
    wide = torch.promote_types(x.dtype, torch.float32)  # cdist in at least fp32 under autocast
    dist = torch.cdist(x.to(wide), w_gate.t().to(wide), p=norm).to(x.dtype)
    return -dist.pow(2) if gating == "gaussian" else -dist


def _prob_in_top_k(clean: torch.Tensor, noisy: torch.Tensor, noise_std: torch.Tensor,
                   top_values: torch.Tensor, k: int) -> torch.Tensor:
    """P(expert e stays in the top k under fresh noise), differentiable (Shazeer et al. 2017)."""
    threshold_in = top_values[:, k:k + 1]  # the (k+1)-th largest noisy logit
    threshold_out = top_values[:, k - 1:k]  # the k-th largest
    normal = Normal(torch.zeros((), device=clean.device), torch.ones((), device=clean.device))
    prob_in = normal.cdf((clean - threshold_in) / noise_std)
    prob_out = normal.cdf((clean - threshold_out) / noise_std)
    return torch.where(noisy > threshold_in, prob_in, prob_out)


def route(x: torch.Tensor, w_gate: torch.Tensor, w_noise: torch.Tensor, k: int, gating: str,
          norm: float, noisy: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Noisy top-k gating: dense gates [n, E] (zero off the top k) and the expert load [E]."""
    num_experts = w_gate.shape[-1]
    clean = gate_logits(x, w_gate, gating, norm)
    if noisy:
        noise_std = nn.functional.softplus(x @ w_noise) + 1e-2
        logits = clean + torch.randn_like(clean) * noise_std
    else:
        logits = clean
    top_values, top_index = logits.topk(min(k + 1, num_experts), dim=-1)
    wide = torch.promote_types(x.dtype, torch.float32)
    weights = torch.softmax(top_values[:, :k].to(wide), dim=-1).to(x.dtype)
    gates = torch.zeros_like(logits).scatter(1, top_index[:, :k], weights)
    if noisy and k < num_experts:
        load = _prob_in_top_k(clean, logits, noise_std, top_values, k).sum(0)
    else:
        load = (gates > 0).sum(0).to(x.dtype)
    return gates, load


def mix_experts(x: torch.Tensor, tokens: torch.Tensor, projected: torch.Tensor,
                gates: torch.Tensor) -> torch.Tensor:
    """Σ_e g_e Σ_{t≥2} softmax(x T_eᵀ/√d)_t (W_t T_e[t] + b_t) for every token at once.

    tokens [E, m, d], projected = W_t T_e[1:] + b_t [E, m-1, d], gates [n, E]; returns [n, d].
    Folding the gates into the attention weights makes it one matmul whatever k is.
    """
    n, dim = x.shape
    attn = torch.softmax(torch.einsum("nd,emd->nem", x, tokens) / math.sqrt(dim), dim=-1)
    weights = attn[..., 1:] * gates.unsqueeze(-1)
    return weights.reshape(n, -1) @ projected.reshape(-1, dim)


@register_plugin("spectralmoe", needs_depth=True, has_tokens=True)
class SpectralMoE(Plugin):

    def __init__(self, cfg: PluginConfig, num_layers: int, dim: int) -> None:
        super().__init__()
        self.cfg = cfg
        experts, tokens, rank = cfg.num_experts, cfg.num_tokens, cfg.rank
        self.experts_a = nn.Parameter(kaiming_uniform_(torch.empty(num_layers, experts, tokens, rank)))
        self.experts_b = nn.Parameter(torch.zeros(num_layers, experts, rank, dim))
        self.w_gate = nn.Parameter(torch.zeros(num_layers, 2, dim, experts))
        self.w_noise = nn.Parameter(torch.zeros(num_layers, 2, dim, experts))
        self.mlp_token2feat = nn.Linear(dim, dim)
        self.mlp_delta_f = nn.Linear(dim, dim)
        self.scale = nn.Parameter(torch.tensor(cfg.scale_init))
        self.linker = QueryLinker(dim, cfg.query_dim) if cfg.link_queries else None
        self.fuse = FUSIONS[cfg.fusion]

    @classmethod
    def summary(cls, cfg: PluginConfig) -> str:
        return (f"experts={cfg.num_experts} top_k={cfg.top_k} rank={cfg.rank} "
                f"tokens={cfg.num_tokens} fusion={cfg.fusion} "
                f"gating={cfg.gating}(p={cfg.gating_norm:g}) query_linking={cfg.link_queries}")

    def experts(self, layer: int) -> torch.Tensor:
        """The layer's expert token sets T_e = A_e B_e, [E, m, d]."""
        return self.experts_a[layer] @ self.experts_b[layer]

    def forward(self, layer: int, patches: torch.Tensor,
                depth: torch.Tensor | None,
                grid: tuple[int, int] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        assert depth is not None, "SpectralMoE needs the depth model's tokens"
        cfg = self.cfg
        batch, count, dim = patches.shape
        tokens = self.experts(layer).to(patches.dtype)
        projected = self.mlp_token2feat(tokens[:, 1:])
        noisy = self.training and cfg.noisy_gating
        refined, loss = [], patches.new_zeros((), dtype=torch.float32)
        for stream, feats in enumerate((patches, depth)):
            x = feats.reshape(-1, dim)
            gates, load = route(x, self.w_gate[layer, stream].to(x.dtype),
                                self.w_noise[layer, stream].to(x.dtype), cfg.top_k, cfg.gating,
                                cfg.gating_norm, noisy)
            loss = loss + cv_squared(gates.sum(0)) + cv_squared(load)
            refined.append(mix_experts(x, tokens, projected, gates).view(batch, count, dim))
        delta = self.fuse(refined[0], refined[1])
        out = patches + self.scale * self.mlp_delta_f(delta + patches)
        return out, cfg.balance_weight * loss

    def layer_tokens(self) -> torch.Tensor:
        return (self.experts_a @ self.experts_b).mean(dim=1)  # mean over experts: [L, m, d]

    def no_weight_decay(self) -> set[str]:
        return {"experts_a", "experts_b", "w_gate", "w_noise", "scale"}
