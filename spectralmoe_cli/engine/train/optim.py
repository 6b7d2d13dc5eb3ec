"""The reference optimiser and schedule (architecture.md §1.5): AdamW and PolyLR without warm-up.

Weight decay follows the reference's ``decay_mult=0`` keys: normalisation layers, query and
level embeddings, and whatever the plugin names in ``no_weight_decay()`` (tokens, experts,
gates, the scale α) train without decay; Linear and conv weights and biases keep it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

if TYPE_CHECKING:
    from ...nn.segmentor import Segmentor

WEIGHT_DECAY = 0.05
BETAS = (0.9, 0.999)
EPS = 1e-8
POLY_POWER = 0.9
NO_DECAY_KEYS = ("norm", "query_embed", "level_embed")
NORM_LAYERS = (nn.LayerNorm, nn.GroupNorm, nn.modules.batchnorm._BatchNorm)


def no_decay_names(model: Segmentor) -> set[str]:
    """Trainable parameters trained without weight decay."""
    names = {f"plugin.{n}" for n in model.plugin.no_weight_decay()}
    for module_name, module in model.named_modules():
        if isinstance(module, NORM_LAYERS):
            names |= {f"{module_name}.{n}" for n, _ in module.named_parameters(recurse=False)}
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    names |= {n for n in trainable if any(key in n for key in NO_DECAY_KEYS)}
    return names & trainable


def build_optimizer(model: Segmentor, lr: float, weight_decay: float = WEIGHT_DECAY) -> torch.optim.AdamW:
    """AdamW over the trainable parameters only, in two groups: with and without decay."""
    skip = no_decay_names(model)
    decay, plain = [], []
    for name, param in model.named_parameters():
        if param.requires_grad:
            (plain if name in skip else decay).append(param)
    return torch.optim.AdamW(
        [{"params": decay, "weight_decay": weight_decay}, {"params": plain, "weight_decay": 0.0}],
        lr=lr, betas=BETAS, eps=EPS)


def poly_lr(base: float, step: int, total: int, power: float = POLY_POWER) -> float:
    """mmseg PolyLR with eta_min 0: base · (1 - step/total)^power, for optimiser step 0..total-1."""
    return base * (1.0 - step / total) ** power


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr
