"""AdaptFormer (NeurIPS 2022): a bottleneck adapter parallel to every frozen block's MLP.

x_out = x + MLP(LN₂ x) + s·up(ReLU(down(LN x))), where x is the residual stream entering the MLP
branch (after attention) and LN is the adapter's own LayerNorm (AdaptFormer's ``"in"`` option).
The up-projection starts at zero, so training starts from the frozen model's exact output. The
update is added outside the block's layer scale, as AdaptFormer adds it beside the MLP branch.
With ViT-L (d 1024, 24 blocks) and bottleneck 64: 24·(2·1024 + 1024·64 + 64 + 64·1024 + 1024) =
3,220,992 parameters, the paper's 3.22 M.
"""

from __future__ import annotations

import torch
from torch import nn

from ..config import PluginConfig
from .plugin import Plugin, register_plugin


class Bottleneck(nn.Module):
    """LN, down-projection to the bottleneck, ReLU, up-projection (zero at start)."""

    def __init__(self, dim: int, width: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.down = nn.Linear(dim, width)
        self.up = nn.Linear(width, dim)
        nn.init.zeros_(self.down.bias)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.up(torch.relu(self.down(self.norm(x))))


@register_plugin("adaptformer")
class AdaptFormer(Plugin):
    @classmethod
    def summary(cls, cfg: PluginConfig) -> str:
        scale = "learnable from " if cfg.adapter_learnable_scale else ""
        return f"bottleneck={cfg.adapter_dim} scale={scale}{cfg.adapter_scale:g} beside every MLP"

    def __init__(self, cfg: PluginConfig, num_layers: int, dim: int) -> None:
        super().__init__()
        self.adapters = nn.ModuleList(Bottleneck(dim, cfg.adapter_dim) for _ in range(num_layers))
        scale = torch.full((num_layers,), cfg.adapter_scale)
        if cfg.adapter_learnable_scale:
            self.scale = nn.Parameter(scale)
        else:
            self.register_buffer("scale", scale, persistent=False)
        self._handles: list = []
        self._pending: dict[int, torch.Tensor] = {}

    def attach(self, vit: nn.Module) -> None:
        """Read each block's MLP-branch input at its ``norm2`` and add the update to its output."""
        for handle in self._handles:
            handle.remove()
        self._handles = []
        for index, block in enumerate(vit.vit.blocks):
            self._handles.append(block.norm2.register_forward_hook(self._capture(index)))
            self._handles.append(block.register_forward_hook(self._add(index)))

    def _capture(self, index: int):
        def capture(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
            x = inputs[0]
            update = self.adapters[index](x)
            self._pending[index] = self.scale[index].to(update.dtype) * update
        return capture

    def _add(self, index: int):
        def add(module: nn.Module, inputs: tuple, output: torch.Tensor) -> torch.Tensor:
            return output + self._pending.pop(index)
        return add

    def no_weight_decay(self) -> set[str]:
        return {"scale"} if isinstance(self.scale, nn.Parameter) else set()
