"""VPT-deep (ECCV 2022): learnable prompt tokens that every frozen block attends with.

Block l sees [cls, registers, P_l, patches]; its P_l outputs are dropped, and block l+1 gets its
own P_{l+1}. Prompts carry no position (identity rotation under RoPE, no absolute embedding), as
the prefix tokens. 150 prompts per block on ViT-L: 24·150·1024 = 3,686,400 parameters, the
paper's 3.69 M. VPT's init: U(±sqrt(6 / (3·16·16 + d))) for 16 px patches.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..config import PluginConfig
from .plugin import Plugin, register_plugin


@register_plugin("vpt")
class VPT(Plugin):
    @classmethod
    def summary(cls, cfg: PluginConfig) -> str:
        return f"{cfg.num_prompts} prompt tokens per block (deep)"

    def __init__(self, cfg: PluginConfig, num_layers: int, dim: int) -> None:
        super().__init__()
        bound = math.sqrt(6.0 / (3 * 16 * 16 + dim))
        self.prompt_tokens = nn.Parameter(
            torch.empty(num_layers, cfg.num_prompts, dim).uniform_(-bound, bound))

    def prompts(self, layer: int, batch: int) -> torch.Tensor:
        return self.prompt_tokens[layer].unsqueeze(0).expand(batch, -1, -1)

    def no_weight_decay(self) -> set[str]:
        return {"prompt_tokens"}
