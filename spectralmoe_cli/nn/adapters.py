"""The comparison methods, behind the same plugin interface as SpectralMoE.

``frozen``: head only. ``rein``: REIN's low-rank learnable tokens (LoRAReins). ``depthforge``:
REIN tokens attended by visual and depth features together. ``lora``: low-rank updates of every
frozen block's qkv projection.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..config import PluginConfig
from .plugin import Plugin, QueryLinker, kaiming_uniform_, register_plugin, token_refine


@register_plugin("frozen")
class Frozen(Plugin):
    def __init__(self, cfg: PluginConfig, num_layers: int, dim: int) -> None:
        super().__init__()

    @classmethod
    def summary(cls, cfg: PluginConfig) -> str:
        return "no plugin: head only"


@register_plugin("rein", has_tokens=True)
class Rein(Plugin):
    """f' = f + s·W_f(softmax(f Tᵀ/√d)[:, 1:] (W_t T[1:] + b_t) + f), T = A B per layer."""

    uses_depth_keys = False

    @classmethod
    def summary(cls, cfg: PluginConfig) -> str:
        return f"tokens={cfg.num_tokens} rank={cfg.rank} query_linking={cfg.link_queries}"

    def __init__(self, cfg: PluginConfig, num_layers: int, dim: int) -> None:
        super().__init__()
        self.cfg = cfg
        # REIN's init: U(±sqrt(6 / (3·16·16 + sqrt(d·r)))), written for its 16 px patches
        bound = math.sqrt(6.0 / (3 * 16 * 16 + math.sqrt(dim * cfg.rank)))
        self.tokens_a = nn.Parameter(torch.empty(num_layers, cfg.num_tokens, cfg.rank).uniform_(-bound, bound))
        self.tokens_b = nn.Parameter(torch.empty(num_layers, cfg.rank, dim).uniform_(-bound, bound))
        self.mlp_token2feat = nn.Linear(dim, dim)
        self.mlp_delta_f = nn.Linear(dim, dim)
        self.scale = nn.Parameter(torch.tensor(cfg.scale_init))
        self.linker = QueryLinker(dim, cfg.query_dim) if cfg.link_queries else None

    def forward(self, layer: int, patches: torch.Tensor,
                depth: torch.Tensor | None,
                grid: tuple[int, int] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        tokens = (self.tokens_a[layer] @ self.tokens_b[layer]).to(patches.dtype)
        keys = patches + depth if self.uses_depth_keys else patches
        delta = token_refine(patches, keys, tokens, self.mlp_token2feat)
        out = patches + self.scale * self.mlp_delta_f(delta + patches)
        return out, patches.new_zeros((), dtype=torch.float32)

    def layer_tokens(self) -> torch.Tensor:
        return self.tokens_a @ self.tokens_b

    def no_weight_decay(self) -> set[str]:
        return {"tokens_a", "tokens_b", "scale"}


@register_plugin("depthforge", needs_depth=True, has_tokens=True)
class DepthForge(Rein):
    """REIN whose token similarities are f·Tᵀ + d·Tᵀ: depth-aware tokens (DepthForge, ICCV 2025)."""

    uses_depth_keys = True


@register_plugin("lora")
class LoRA(Plugin):
    """qkv(x) + (α/r)·B A x in every frozen block; B starts at zero, so training starts frozen."""

    def __init__(self, cfg: PluginConfig, num_layers: int, dim: int) -> None:
        super().__init__()
        self.scaling = cfg.lora_alpha / cfg.rank
        self.lora_a = nn.Parameter(kaiming_uniform_(torch.empty(num_layers, cfg.rank, dim)))
        self.lora_b = nn.Parameter(torch.zeros(num_layers, 3 * dim, cfg.rank))
        self._handles: list = []

    @classmethod
    def summary(cls, cfg: PluginConfig) -> str:
        return f"rank={cfg.rank} alpha={cfg.lora_alpha:g} on every qkv"

    def attach(self, vit: nn.Module) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []
        for index, block in enumerate(vit.vit.blocks):
            attn = block.attn
            if getattr(attn, "q_bias", None) is not None:
                attn.qkv_bias_separate = True  # route the qkv matmul through the hooked module
            self._handles.append(attn.qkv.register_forward_hook(self._hook(index)))

    def _hook(self, index: int):
        def add_update(module: nn.Module, inputs: tuple, output: torch.Tensor) -> torch.Tensor:
            x = inputs[0]
            update = (x @ self.lora_a[index].t().to(x.dtype)) @ self.lora_b[index].t().to(x.dtype)
            return output + self.scaling * update
        return add_update
