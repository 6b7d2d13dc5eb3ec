"""DOFA: a ViT whose patch embedding is generated from each band's wavelength.

DOFA (Xiong et al. 2024, "Neural plasticity-inspired multimodal foundation model for Earth
observation") turns every band's centre wavelength into that band's patch kernel: a sin-cos
embedding of λ (nm) -> a residual FC layer -> a one-layer transformer over 128 weight tokens, the
band embeddings and a bias token -> a kernel per band, scaled by 0.01. Any band count and any
band set is accepted, without the cyclic RGB-kernel copies a plain ViT needs. SpectralMoE uses
DOFA ViT-L as its remote-sensing foundation model for the 32-band WHU-OHS benchmark.

Module names follow the official release (``zhu-xlab/DOFA``), so its checkpoints
``DOFA_ViT_base_e100.pth`` / ``DOFA_ViT_large_e100.pth`` load strictly: every key used or named
in ``SKIPPED`` (pre-training leftovers), every shape right. Pure torch: state dicts in.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from functools import partial

import torch
import torch.nn.functional as F
from timm.layers import resample_abs_pos_embed
from timm.models.vision_transformer import Block
from torch import nn

from ..errors import ConfigError, WeightsError
from .backbones import BackboneSpec, register_backbone

log = logging.getLogger(__name__)

WAVE_DIM = 128  # the wavelength embedding width of every released DOFA
WEIGHT_TOKENS = 128
KERNEL_SCALE = 0.01
# keys of the released checkpoints that the encoder does not use: the MAE mask token, the
# pre-training projector and the final norms/heads (the plugin reads pre-norm block outputs)
SKIPPED = ("mask_token", "norm.", "fc_norm.", "projector.", "head.")


@register_backbone
def dofa_family() -> Iterator[BackboneSpec]:
    """DOFA ViT-B/16 and ViT-L/16: any band set, patch kernels generated from wavelengths."""
    for key, word, dim, depth, heads in (("b", "base", 768, 12, 12), ("l", "large", 1024, 24, 16)):
        filename = f"DOFA_ViT_{word}_e100.pth"
        yield BackboneSpec(
            name=f"dofa_vit{key}16", family="dofa", timm_name="(DOFA: timm Blocks, dynamic patch embed)",
            embed_dim=dim, depth=depth, num_heads=heads, weight_format="dofa", filename=filename,
            url="https://huggingface.co/earthflow/DOFA", hf_repo="earthflow/DOFA",
            hf_filename=filename, hf_format="dofa")


def wavelength_embedding(dim: int, nanometres: torch.Tensor) -> torch.Tensor:
    """1-D sin-cos embedding [M, dim] of positions ``nanometres`` [M] (DOFA's)."""
    omega = torch.arange(dim // 2, dtype=torch.float32, device=nanometres.device) / (dim / 2.0)
    omega = 1.0 / 10000 ** omega
    angles = torch.outer(nanometres.reshape(-1).float(), omega)
    return torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)


class TransformerWeightGenerator(nn.Module):
    """Band embeddings -> per-band kernels and one bias, through a small transformer."""

    def __init__(self, input_dim: int, output_dim: int, embed_dim: int, num_heads: int = 4) -> None:
        super().__init__()
        layer = nn.TransformerEncoderLayer(d_model=input_dim, nhead=num_heads, activation="gelu",
                                           norm_first=False, batch_first=False, dropout=0.0)
        self.transformer_encoder = nn.TransformerEncoder(layer, num_layers=1, enable_nested_tensor=False)
        self.fc_weight = nn.Linear(input_dim, output_dim)
        self.fc_bias = nn.Linear(input_dim, embed_dim)
        self.weight_tokens = nn.Parameter(torch.zeros(WEIGHT_TOKENS, input_dim))
        self.bias_token = nn.Parameter(torch.zeros(1, input_dim))

    def forward(self, waves: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.cat([self.weight_tokens, waves, self.bias_token], dim=0)
        out = self.transformer_encoder(x)
        return self.fc_weight(out[WEIGHT_TOKENS:-1] + waves), self.fc_bias(out[-1])


class FCResLayer(nn.Module):
    def __init__(self, size: int) -> None:
        super().__init__()
        self.w1 = nn.Linear(size, size)
        self.w2 = nn.Linear(size, size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + F.relu(self.w2(F.relu(self.w1(x))))


class DynamicPatchEmbed(nn.Module):
    """Patch embedding whose kernel is generated from the bands' wavelengths (µm)."""

    def __init__(self, embed_dim: int, patch_size: int) -> None:
        super().__init__()
        self.embed_dim = embed_dim
        self.kernel_size = patch_size
        self.weight_generator = TransformerWeightGenerator(WAVE_DIM, patch_size * patch_size * embed_dim,
                                                           embed_dim)
        self.fclayer = FCResLayer(WAVE_DIM)

    def forward(self, x: torch.Tensor, wavelengths_um: torch.Tensor) -> torch.Tensor:
        k = self.kernel_size
        waves = self.fclayer(wavelength_embedding(WAVE_DIM, wavelengths_um * 1000.0))
        weight, bias = self.weight_generator(waves)
        kernel = weight.view(len(wavelengths_um), k, k, self.embed_dim).permute(3, 0, 1, 2)
        # the release convolves with padding 1: each patch is shifted by one pixel; kept as it is
        out = F.conv2d(x, kernel * KERNEL_SCALE, bias=bias.view(-1) * KERNEL_SCALE, stride=k, padding=1)
        return out.flatten(2).transpose(1, 2)


class DOFANet(nn.Module):
    """The encoder with the official key layout (no final norm, no head)."""

    def __init__(self, embed_dim: int, depth: int, num_heads: int, patch_size: int, grid: int) -> None:
        super().__init__()
        self.patch_embed = DynamicPatchEmbed(embed_dim, patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, grid * grid + 1, embed_dim), requires_grad=False)
        self.blocks = nn.ModuleList([
            Block(embed_dim, num_heads, 4.0, qkv_bias=True, norm_layer=partial(nn.LayerNorm, eps=1e-6))
            for _ in range(depth)])


class DOFAViT(nn.Module):
    """A frozen DOFA encoder with FrozenViT's interface: tokens refined between blocks."""

    is_rope = False
    num_prefix_tokens = 1

    def __init__(self, spec: BackboneSpec, wavelengths_um: Sequence[float | None], patch_size: int = 16,
                 embed_dim: int | None = None, depth: int | None = None, num_heads: int | None = None,
                 img_size: int = 512) -> None:
        super().__init__()
        if any(w is None for w in wavelengths_um):
            raise ConfigError(f"{spec.name} generates each band's kernel from its wavelength; every "
                              f"band needs one (bands with none: not optical)")
        self.spec = spec
        self.patch_size = patch_size
        self.in_chans = len(wavelengths_um)
        self.embed_dim = embed_dim or spec.embed_dim
        self.depth = depth or spec.depth
        self.vit = DOFANet(self.embed_dim, self.depth, num_heads or spec.num_heads, patch_size,
                           img_size // patch_size)
        self.register_buffer("wavelengths", torch.tensor([float(w) for w in wavelengths_um]), persistent=False)
        self.vit.requires_grad_(False)
        self.vit.eval()

    def train(self, mode: bool = True) -> "DOFAViT":
        return super().train(False)

    def grid(self, height: int, width: int) -> tuple[int, int]:
        return height // self.patch_size, width // self.patch_size

    def prepare(self, x: torch.Tensor) -> tuple[torch.Tensor, None]:
        vit = self.vit
        tokens = vit.patch_embed(x, self.wavelengths)
        grid = self.grid(*x.shape[-2:])
        pos = vit.pos_embed
        if pos.shape[1] - 1 != grid[0] * grid[1]:
            pos = resample_abs_pos_embed(pos, new_size=list(grid), num_prefix_tokens=1)
        cls = (vit.cls_token + pos[:, :1]).expand(x.shape[0], -1, -1)
        return torch.cat([cls, tokens + pos[:, 1:]], dim=1), None

    def block(self, index: int, tokens: torch.Tensor, rope: None = None,
              prompts: torch.Tensor | None = None) -> torch.Tensor:
        """Run block ``index``; ``prompts`` [B, P, d] join it after the cls token, then leave
        (as in ``FrozenViT.block``; DOFA's positions were added once, before the first block)."""
        blk = self.vit.blocks[index]
        if prompts is None:
            return blk(tokens)
        count = prompts.shape[1]
        out = blk(torch.cat([tokens[:, :1], prompts.to(tokens.dtype), tokens[:, 1:]], dim=1))
        return torch.cat([out[:, :1], out[:, 1 + count:]], dim=1)

    def forward_all(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Every block's output, cls token included."""
        tokens, _ = self.prepare(x)
        outs = []
        for i in range(self.depth):
            tokens = self.block(i, tokens)
            outs.append(tokens)
        return outs


def map_dofa_state_dict(model: DOFAViT, state: dict) -> tuple[dict[str, torch.Tensor], list[str]]:
    """The official state dict on ``model.vit``'s keys and the skipped keys; WeightsError naming
    a missing, unexpected or mis-shaped key."""
    for wrapper in ("model", "state_dict"):
        if wrapper in state and isinstance(state[wrapper], dict):
            state = state[wrapper]
    target = model.vit.state_dict()
    skipped = sorted(k for k in state if k.startswith(SKIPPED))
    used = {k: v for k, v in state.items() if not k.startswith(SKIPPED)}
    missing = sorted(set(target) - set(used))
    unexpected = sorted(set(used) - set(target))
    name = model.spec.name
    if missing or unexpected:
        parts = ([f"missing key(s) {', '.join(missing[:5])}"] if missing else []) + \
            ([f"unexpected key(s) {', '.join(unexpected[:5])}"] if unexpected else [])
        raise WeightsError(f"dofa weights do not fit {name}: {'; '.join(parts)}")
    out = {}
    for key, value in used.items():
        want = target[key].shape
        if key == "pos_embed" and value.shape != want and value.ndim == 3 and value.shape[-1] == want[-1]:
            side = int(round((value.shape[1] - 1) ** 0.5))
            new = int(round((want[1] - 1) ** 0.5))
            if side * side == value.shape[1] - 1:
                value = resample_abs_pos_embed(value.float(), new_size=[new, new], old_size=[side, side],
                                               num_prefix_tokens=1)
        if value.shape != want:
            raise WeightsError(f"dofa weights do not fit {name}: key {key} has shape "
                               f"{tuple(value.shape)}, the model expects {tuple(want)}")
        out[key] = value.to(target[key].dtype)
    return out, skipped


def load_dofa_weights(model: DOFAViT, state: dict) -> None:
    """Load an official DOFA checkpoint strictly; the skipped pre-training keys are logged."""
    mapped, skipped = map_dofa_state_dict(model, state)
    model.vit.load_state_dict(mapped, strict=True)
    if skipped:
        log.info("%s: skipped %d pre-training key(s) the encoder does not use: %s", model.spec.name,
                 len(skipped), ", ".join(sorted({k.split(".")[0] for k in skipped})))
