"""The plugin interface every fine-tuning method implements, and their registry.

A plugin refines the frozen visual model's patch tokens after every block (optionally reading the
depth model's tokens of the same layer), may hook into the blocks themselves (LoRA, AdaptFormer),
may give a block extra tokens to attend with (VPT), adds an auxiliary loss, and may offer
learnable tokens as Mask2Former queries (query linking).

A method is one class decorated with ``@register_plugin(name, needs_depth=..., has_tokens=...)``;
the decorator records its metadata on the class, where config checks and the engine read it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import ClassVar, TypeVar

import torch
from torch import nn

from ..config import PluginConfig
from .registry import Registry


class Plugin(nn.Module):
    """Identity refinement; subclasses override what they change.

    Built as ``cls(cfg, num_layers, dim)``. The class attributes are set by ``register_plugin``.
    """

    method: ClassVar[str] = ""
    needs_depth: ClassVar[bool] = False  # reads the depth model's tokens: the config needs [depth]
    has_tokens: ClassVar[bool] = False  # learnable tokens that can be linked as Mask2Former queries

    @classmethod
    def summary(cls, cfg: PluginConfig) -> str:
        """The hyper-parameters this method uses, in one line (``spectralmoe info``)."""
        return ""

    def attach(self, vit: nn.Module) -> None:
        """Hook into the frozen blocks (only methods that modify them, such as LoRA)."""

    def prompts(self, layer: int, batch: int) -> torch.Tensor | None:
        """Extra tokens [B, P, d] that block ``layer`` attends with and drops after (VPT-deep)."""
        return None

    def forward(self, layer: int, patches: torch.Tensor,
                depth: torch.Tensor | None,
                grid: tuple[int, int] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Refined patch tokens [B, N, d] after block ``layer`` and this layer's auxiliary loss.

        ``grid`` is the (rows, columns) of the N patches, for methods that work on the feature map.
        """
        return patches, patches.new_zeros(())

    def layer_tokens(self) -> torch.Tensor | None:
        """Per-layer learnable tokens [L, m, d] for query linking; None if the method has none."""
        return None

    @property
    def links_queries(self) -> bool:
        """Whether ``queries()`` offers queries (a method with tokens and query linking on)."""
        return getattr(self, "linker", None) is not None

    def queries(self) -> torch.Tensor | None:
        """Mask2Former positional queries [m, query_dim] made from the tokens, or None."""
        if not self.links_queries:
            return None
        return self.linker(self.layer_tokens())

    def no_weight_decay(self) -> set[str]:
        """Parameter names trained without weight decay (tokens, gates, scale)."""
        return set()


PLUGINS: Registry[type[Plugin]] = Registry("method")
P = TypeVar("P", bound=type[Plugin])


def register_plugin(name: str, *, needs_depth: bool = False,
                    has_tokens: bool = False) -> Callable[[P], P]:
    """Register a Plugin subclass as ``plugin.method = name``, with its metadata."""
    def wrap(cls: P) -> P:
        if not issubclass(cls, Plugin):
            raise TypeError(f"{cls.__name__} is not a Plugin")
        cls.method, cls.needs_depth, cls.has_tokens = name, needs_depth, has_tokens
        return PLUGINS.add(name, cls)
    return wrap


class QueryLinker(nn.Module):
    """Tokens of every layer -> instance queries (REIN's ``return_auto``).

    Q_l = Linear(d, q)(T_l); Q = Linear(3q, q)(concat[max_l Q_l, mean_l Q_l, Q_last]).
    """

    def __init__(self, dim: int, query_dim: int) -> None:
        super().__init__()
        self.transform = nn.Linear(dim, query_dim)
        self.merge = nn.Linear(query_dim * 3, query_dim)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        q = self.transform(tokens)  # [L, m, q]
        pooled = torch.cat([q.max(dim=0).values, q.mean(dim=0), q[-1]], dim=-1)
        return self.merge(pooled)


def kaiming_uniform_(tensor: torch.Tensor) -> torch.Tensor:
    """kaiming_uniform(a=sqrt(5)) over the last dimension as fan-in, as nn.Linear does."""
    bound = 1.0 / math.sqrt(tensor.shape[-1])
    with torch.no_grad():
        return tensor.uniform_(-bound, bound)


def token_refine(feats: torch.Tensor, keys: torch.Tensor, tokens: torch.Tensor,
                 token2feat: nn.Linear) -> torch.Tensor:
    """REIN's token attention: softmax(keys·Tᵀ/√d) over m tokens, first dropped, times W_t T[1:].

    ``feats`` only fixes the output shape; ``keys`` is what attends (f for REIN, f + depth for
    DepthForge, whose summed similarities are (f + d)·Tᵀ).
    """
    dim = feats.shape[-1]
    attn = torch.softmax(keys @ tokens.transpose(0, 1) / math.sqrt(dim), dim=-1)
    return attn[..., 1:] @ token2feat(tokens[1:])
