"""SET (ACM MM 2024): spectral-decomposed tokens; amplitude and phase refined apart.

After every frozen block l, the patch feature map f [B, H, W, d] goes to the frequency domain
(2-D FFT over the token grid, per channel, orthonormal). Its amplitude |F| (mostly style) and
phase ∠F (mostly content) are each refined by their own REIN-style low-rank tokens and Linear
layers (``TokenBranch``); the refined amplitude and phase are recombined, ΔA·e^{iΔφ}, and the
inverse FFT gives the residual update: f' = f + s·IFFT(ΔA·e^{iΔφ}), s learnable from 1e-3 (the
authors' own code, released inside BiQiWHU/FADA's Rein fork, composes the two branch outputs
the same way). Query linking uses the phase (content) tokens, as REIN's. Parameters on ViT-L:
2 × (24·(100·16 + 16·1024) + 2·(1024² + 1024)) + 1 + 262,400 + 196,864 = 5,520,897.
"""

from __future__ import annotations

import torch

from ..config import PluginConfig
from .plugin import Plugin, QueryLinker, register_plugin
from .token_branch import TokenBranch


@register_plugin("set", has_tokens=True)
class SET(Plugin):
    @classmethod
    def summary(cls, cfg: PluginConfig) -> str:
        return (f"amplitude and phase tokens={cfg.num_tokens} rank={cfg.rank} each "
                f"query_linking={cfg.link_queries}")

    def __init__(self, cfg: PluginConfig, num_layers: int, dim: int) -> None:
        super().__init__()
        self.amplitude = TokenBranch(num_layers, cfg.num_tokens, cfg.rank, dim)
        self.phase = TokenBranch(num_layers, cfg.num_tokens, cfg.rank, dim)
        self.scale = torch.nn.Parameter(torch.tensor(cfg.scale_init))
        self.linker = QueryLinker(dim, cfg.query_dim) if cfg.link_queries else None

    def forward(self, layer: int, patches: torch.Tensor, depth: torch.Tensor | None,
                grid: tuple[int, int] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        assert grid is not None, "SET needs the patch grid"
        batch, count, dim = patches.shape
        rows, cols = grid
        # FFT in at least fp32 whatever the autocast dtype (half-precision FFTs need power-of-2 sizes)
        wide = torch.promote_types(patches.dtype, torch.float32)
        feature_map = patches.to(wide).view(batch, rows, cols, dim)
        spectrum = torch.fft.rfft2(feature_map, dim=(1, 2), norm="ortho")  # [B, H, W//2+1, d]
        amplitude, phase = (part.reshape(batch, -1, dim).to(patches.dtype)
                            for part in (spectrum.abs(), spectrum.angle()))
        new_amplitude = self.amplitude(layer, amplitude).to(wide)
        new_phase = self.phase(layer, phase).to(wide)
        recombined = torch.complex(new_amplitude * torch.cos(new_phase),
                                   new_amplitude * torch.sin(new_phase))
        update = torch.fft.irfft2(recombined.view(spectrum.shape), s=(rows, cols), dim=(1, 2),
                                  norm="ortho")
        out = patches + self.scale * update.reshape(batch, count, dim).to(patches.dtype)
        return out, patches.new_zeros((), dtype=torch.float32)

    def layer_tokens(self) -> torch.Tensor:
        return self.phase.layer_tokens()

    def no_weight_decay(self) -> set[str]:
        return (TokenBranch.no_weight_decay("amplitude") | TokenBranch.no_weight_decay("phase")
                | {"scale"})
