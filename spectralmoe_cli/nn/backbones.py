"""Frozen foundation models built with timm, and strict mapping of their official weights.

Every ViT here runs at one patch size (16 by default): DINOv2-family weights (patch 14) get their
patch kernel resampled 14->16 (timm's pseudo-inverse resize, which keeps each token's response to
a resized patch unchanged) and their position grid resampled, exactly once, when weights load.
The depth model is built with the visual model's patch size, so both token grids are identical for
any input size; this is the clean form of the reference converter's bicubic 14->16 hack.

Pure torch: state dicts in, modules out. Files are read by ``spectralmoe_cli.engine.runtime.weights``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace

import timm
import torch
from timm.layers import resample_abs_pos_embed, resample_patch_embed
from torch import nn

from ..errors import ConfigError, WeightsError
from .registry import Registry
from .transformers_layout import from_transformers

_DINOV2_URL = "https://dl.fbaipublicfiles.com/dinov2/{arch}/{arch}_pretrain.pth"
_DINOV3_URL = "https://ai.meta.com/resources/models-and-libraries/dinov3-downloads/"


@dataclass(frozen=True)
class BackboneSpec:
    """A named backbone: how to build it with timm and where its official weights come from."""

    name: str
    family: str  # "dinov2" (absolute position embedding) or "dinov3" (RoPE, storage tokens)
    timm_name: str
    embed_dim: int
    depth: int
    num_heads: int
    weight_format: str  # dinov2 | dinov3 | depth_anything_v2 | promptda
    filename: str  # the official file name users download
    url: str  # where to get it
    hf_repo: str | None = None  # Hugging Face repo holding a copy (timm or official layout)
    hf_filename: str | None = None
    hf_format: str | None = None  # layout of the HF copy: "timm" or the official one
    transformers_repo: str | None = None  # the transformers copy, used when already cached


BACKBONES: Registry[BackboneSpec] = Registry("backbone")


def register_backbone(family: Callable[[], Iterable[BackboneSpec]]) -> Callable[[], Iterable[BackboneSpec]]:
    """Register a function yielding a family's specs; it runs on the first backbone lookup."""
    BACKBONES.add_source(lambda: ((spec.name, spec) for spec in family()))
    return family


def get_spec(name: str) -> BackboneSpec:
    return BACKBONES.get(name)


@register_backbone
def dinov2_family() -> Iterator[BackboneSpec]:
    """DINOv2 (with and without registers) and the depth models built on its encoder."""
    sizes = {"s": (384, 12, 6, "small"), "b": (768, 12, 12, "base"),
             "l": (1024, 24, 16, "large"), "g": (1536, 40, 24, "giant")}
    for key, (dim, depth, heads, word) in sizes.items():
        arch = f"dinov2_vit{key}14"
        timm_name = f"vit_{word}_patch14_dinov2"
        yield BackboneSpec(
            name=arch, family="dinov2", timm_name=timm_name, embed_dim=dim, depth=depth,
            num_heads=heads, weight_format="dinov2", filename=f"{arch}_pretrain.pth",
            url=_DINOV2_URL.format(arch=arch), hf_repo=f"timm/{timm_name}.lvd142m",
            hf_filename="model.safetensors", hf_format="timm",
            transformers_repo=f"facebook/dinov2-{word}",
        )
        yield BackboneSpec(
            name=f"{arch}_reg4", family="dinov2", timm_name=f"vit_{word}_patch14_reg4_dinov2",
            embed_dim=dim, depth=depth, num_heads=heads, weight_format="dinov2",
            filename=f"{arch}_reg4_pretrain.pth",
            url=_DINOV2_URL.format(arch=arch).replace("_pretrain", "_reg4_pretrain"),
            hf_repo=f"timm/vit_{word}_patch14_reg4_dinov2.lvd142m",
            hf_filename="model.safetensors", hf_format="timm",
            transformers_repo=f"facebook/dinov2-with-registers-{word}",
        )
    for key, (dim, depth, heads, word) in list(sizes.items())[:3]:
        size = {"s": "Small", "b": "Base", "l": "Large"}[key]
        yield BackboneSpec(
            name=f"depth_anything_v2_vit{key}", family="dinov2",
            timm_name=f"vit_{word}_patch14_dinov2", embed_dim=dim, depth=depth, num_heads=heads,
            weight_format="depth_anything_v2", filename=f"depth_anything_v2_vit{key}.pth",
            url=f"https://huggingface.co/depth-anything/Depth-Anything-V2-{size}",
            hf_repo=f"depth-anything/Depth-Anything-V2-{size}",
            hf_filename=f"depth_anything_v2_vit{key}.pth", hf_format="depth_anything_v2",
            transformers_repo=f"depth-anything/Depth-Anything-V2-{size}-hf",
        )
        yield BackboneSpec(
            name=f"promptda_vit{key}", family="dinov2", timm_name=f"vit_{word}_patch14_dinov2",
            embed_dim=dim, depth=depth, num_heads=heads, weight_format="promptda",
            filename=f"promptda_vit{key}.ckpt",
            url=f"https://huggingface.co/depth-anything/prompt-depth-anything-vit{key}",
            hf_repo=f"depth-anything/prompt-depth-anything-vit{key}",
            hf_filename="model.ckpt", hf_format="promptda",
        )


@register_backbone
def dinov3_family() -> Iterator[BackboneSpec]:
    """The DINOv3 ViTs that the installed timm provides (the '_qkvb' variants keep q/v biases)."""
    sizes = {
        "vits16": ("small", 384, 12, 6, "dinov3_vits16_pretrain_lvd1689m-08c60483.pth"),
        "vits16plus": ("small_plus", 384, 12, 6, "dinov3_vits16plus_pretrain_lvd1689m-4057cbaa.pth"),
        "vitb16": ("base", 768, 12, 12, "dinov3_vitb16_pretrain_lvd1689m-73cec8be.pth"),
        "vitl16": ("large", 1024, 24, 16, "dinov3_vitl16_pretrain_lvd1689m-8aa4cbdd.pth"),
        "vith16plus": ("huge_plus", 1280, 32, 20, "dinov3_vith16plus_pretrain_lvd1689m-7c1da9a5.pth"),
        "vit7b16": ("7b", 4096, 40, 32, "dinov3_vit7b16_pretrain_lvd1689m-a955f4ea.pth"),
    }
    available = set(timm.list_models("*dinov3*"))
    for key, (word, dim, depth, heads, filename) in sizes.items():
        for suffix in ("", "_qkvb"):
            timm_name = f"vit_{word}_patch16_dinov3{suffix}"
            if timm_name not in available:
                continue
            yield BackboneSpec(
                name=f"dinov3_{key}{suffix}", family="dinov3", timm_name=timm_name,
                embed_dim=dim, depth=depth, num_heads=heads, weight_format="dinov3",
                filename=filename, url=_DINOV3_URL, hf_repo=f"timm/{timm_name}.lvd1689m",
                hf_filename="model.safetensors", hf_format="timm",
                transformers_repo=f"facebook/dinov3-{key}-pretrain-lvd1689m",
            )


class FrozenViT(nn.Module):
    """A frozen timm ViT whose token sequence can be refined between blocks.

    It stays in eval mode whatever ``train()`` is called with (DINOv3's RoPE augmentation and
    any dropout must never switch on), and its parameters never require gradients; gradients
    still flow through its blocks to plugins placed before them.
    """

    def __init__(self, spec: BackboneSpec, in_chans: int = 3, patch_size: int = 16,
                 embed_dim: int | None = None, depth: int | None = None,
                 num_heads: int | None = None, img_size: int = 512) -> None:
        super().__init__()
        overrides = {k: v for k, v in
                     {"embed_dim": embed_dim, "depth": depth, "num_heads": num_heads}.items()
                     if v is not None}
        self.spec = replace(spec, **overrides)
        self.is_rope = spec.family in ("dinov3", "eva02")  # timm Eva models: RoPE tables
        self.vit = timm.create_model(
            spec.timm_name, pretrained=False, num_classes=0, in_chans=in_chans,
            patch_size=patch_size, img_size=img_size, dynamic_img_size=True, **overrides,
        )
        self.patch_size = patch_size
        self.in_chans = in_chans
        self.embed_dim = self.vit.embed_dim
        self.depth = len(self.vit.blocks)
        self.num_prefix_tokens = self.vit.num_prefix_tokens
        self.vit.requires_grad_(False)
        self.vit.eval()

    def train(self, mode: bool = True) -> "FrozenViT":
        return super().train(False)

    def prepare(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Patch-embed an image; return the tokens and the RoPE table (None for DINOv2)."""
        vit = self.vit
        x = vit.patch_embed(x)
        if self.is_rope:
            x, rope = vit._pos_embed(x)
        else:
            x, rope = vit._pos_embed(x), None
            x = vit.patch_drop(x)
        return vit.norm_pre(x), rope

    def block(self, index: int, tokens: torch.Tensor, rope: torch.Tensor | None,
              prompts: torch.Tensor | None = None) -> torch.Tensor:
        """Run block ``index``; ``prompts`` [B, P, d] join it as extra prefix tokens, then leave.

        Prompts sit after the cls/register tokens and, like them, carry no position: under RoPE
        they get the identity rotation (sin 0, cos 1), so every patch keeps its own rotation.
        """
        blk = self.vit.blocks[index]
        if prompts is None:
            return blk(tokens, rope=rope) if self.is_rope else blk(tokens)
        prefix, count = self.num_prefix_tokens, prompts.shape[1]
        joined = torch.cat([tokens[:, :prefix], prompts.to(tokens.dtype), tokens[:, prefix:]], dim=1)
        if self.is_rope:
            sin, cos = rope.chunk(2, dim=-1)
            identity = torch.cat([torch.zeros_like(sin[:1]), torch.ones_like(cos[:1])], dim=-1)
            rope = torch.cat([identity.expand(*rope.shape[:-2], count, rope.shape[-1]), rope], dim=-2)
            out = blk(joined, rope=rope)
        else:
            out = blk(joined)
        return torch.cat([out[:, :prefix], out[:, prefix + count:]], dim=1)

    def grid(self, height: int, width: int) -> tuple[int, int]:
        return height // self.patch_size, width // self.patch_size

    def forward_all(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Every block's output (before the final norm), prefix tokens included."""
        tokens, rope = self.prepare(x)
        outs = []
        for i in range(self.depth):
            tokens = self.block(i, tokens, rope)
            outs.append(tokens)
        return outs


class DepthEncoder(nn.Module):
    """The DINOv2 encoder of a depth foundation model, run once per image without gradients."""

    def __init__(self, spec: BackboneSpec, patch_size: int = 16, embed_dim: int | None = None,
                 depth: int | None = None, num_heads: int | None = None) -> None:
        super().__init__()
        if spec.family != "dinov2":
            raise ConfigError(f"depth model {spec.name!r} must be a DINOv2-family encoder")
        self.encoder = FrozenViT(spec, in_chans=3, patch_size=patch_size, embed_dim=embed_dim,
                                 depth=depth, num_heads=num_heads)

    @property
    def depth(self) -> int:
        return self.encoder.depth

    @property
    def embed_dim(self) -> int:
        return self.encoder.embed_dim

    def train(self, mode: bool = True) -> "DepthEncoder":
        return super().train(False)

    @torch.no_grad()
    def forward(self, rgb: torch.Tensor) -> list[torch.Tensor]:
        return self.encoder.forward_all(rgb)


# ---------------------------------------------------------------------------------------------
# Official weight layouts -> timm module keys, strictly.
# ---------------------------------------------------------------------------------------------

def _strip(state: dict[str, torch.Tensor], prefix: str) -> tuple[dict, list[str]]:
    """Keys under ``prefix`` (stripped) and the names of the keys outside it."""
    inside = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    outside = [k for k in state if not k.startswith(prefix)]
    return inside, outside


def _unwrap(state: dict, fmt: str) -> dict[str, torch.Tensor]:
    """The encoder's tensors from an official container, official key names kept."""
    if fmt == "promptda":
        if "state_dict" not in state:
            raise WeightsError("PromptDA checkpoint has no 'state_dict' (expected a Lightning model.ckpt)")
        state = state["state_dict"]
        if any(k.startswith("pipeline.") for k in state):
            state, _ = _strip(state, "pipeline.")
    if fmt in ("depth_anything_v2", "promptda"):
        encoder, decoder = _strip(state, "pretrained.")
        if not encoder:
            raise WeightsError(f"{fmt} checkpoint has no encoder keys under 'pretrained.'")
        return encoder
    for wrapper in ("model", "teacher", "state_dict"):
        if wrapper in state and isinstance(state[wrapper], dict):
            state = state[wrapper]
    if fmt == "dinov3" and any(k.startswith("backbone.") for k in state):
        state, _ = _strip(state, "backbone.")
    return state


_DINOV3_DROP = (".bias_mask", "mask_token")
_DINOV2_DROP = ("mask_token",)


def _rename_dinov3(state: dict[str, torch.Tensor], model_keys: set[str]) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if key.endswith(_DINOV3_DROP) or key.startswith("local_cls_norm"):
            continue
        if key == "rope_embed.periods":
            continue  # recomputed by timm from the architecture; shape-checked in map_state_dict
        if key.endswith("attn.qkv.bias"):
            q, _k, v = value.chunk(3, dim=-1)
            q_key = key.replace("qkv.bias", "q_bias")
            if q_key in model_keys:
                out[q_key] = q
                out[key.replace("qkv.bias", "v_bias")] = v
            elif q.abs().max() > 0 or v.abs().max() > 0:
                raise WeightsError(
                    f"{key} holds non-zero q/v biases but the model has none; use the '_qkvb' "
                    f"variant of this backbone"
                )
            continue
        key = key.replace("storage_tokens", "reg_token")
        key = re.sub(r"\.ls1\.gamma$", ".gamma_1", key)
        key = re.sub(r"\.ls2\.gamma$", ".gamma_2", key)
        key = key.replace("mlp.w1.", "mlp.fc1_g.").replace("mlp.w2.", "mlp.fc1_x.")
        key = key.replace("mlp.w3.", "mlp.fc2.")
        out[key] = value
    return out


def _rename_dinov2(state: dict[str, torch.Tensor], model_keys: set[str]) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    state = dict(state)
    if "register_tokens" in state:
        out["reg_token"] = state.pop("register_tokens")
        pos = state.pop("pos_embed")
        out["cls_token"] = state.pop("cls_token") + pos[:, 0]
        out["pos_embed"] = pos[:, 1:]
    for key, value in state.items():
        if key in _DINOV2_DROP:
            continue
        key = re.sub(r"^blocks\.\d+\.(\d+)\.", r"blocks.\1.", key)  # chunked blocks (BlockChunk)
        key = key.replace("mlp.w12.", "mlp.fc1.").replace("mlp.w3.", "mlp.fc2.")
        out[key] = value
    return out


def _adapt(key: str, value: torch.Tensor, target: torch.Size, num_prefix: int,
           grid: tuple[int, int]) -> torch.Tensor | None:
    """The two shape changes the design allows; None when the shapes simply do not fit."""
    if key == "patch_embed.proj.weight" and value.ndim == 4 and value.shape[0] == target[0]:
        if tuple(value.shape[-2:]) != tuple(target[-2:]):
            value = resample_patch_embed(value.float(), list(target[-2:])).to(value.dtype)
        if value.shape[1] == 3 and target[1] != 3:
            # N-band input on an RGB kernel: band i gets RGB kernel i mod 3, frozen, no rescale.
            value = value[:, [i % 3 for i in range(target[1])]].clone()
        return value if value.shape == target else None
    if key == "pos_embed" and value.ndim == 3 and value.shape[-1] == target[-1]:
        old = value.shape[1] - num_prefix
        side = int(round(old ** 0.5))
        if side * side != old:
            return None
        value = resample_abs_pos_embed(value.float(), new_size=list(grid), old_size=[side, side],
                                       num_prefix_tokens=num_prefix).to(value.dtype)
        return value if value.shape == target else None
    return None


def map_state_dict(vit: FrozenViT, state: dict, fmt: str) -> dict[str, torch.Tensor]:
    """Map an official or timm state dict onto ``vit``'s keys; fail naming any bad key."""
    model_state = vit.vit.state_dict()
    model_keys = set(model_state)
    layout = fmt
    if fmt == "transformers":
        state, layout = from_transformers(state, vit.spec.family), vit.spec.family
    elif fmt != "timm":
        state = _unwrap(state, fmt)
    if layout == "dinov3":
        periods = state.get("rope_embed.periods")
        rope = getattr(vit.vit, "rope", None)
        expected = getattr(rope, "periods", None) if rope is not None else None
        if periods is not None and expected is not None and periods.shape != expected.shape:
            raise WeightsError(
                f"rope_embed.periods has shape {tuple(periods.shape)}, the model expects "
                f"{tuple(expected.shape)} (a checkpoint of another size?)"
            )
        mapped = _rename_dinov3(state, model_keys)
    elif layout in ("dinov2", "depth_anything_v2", "promptda"):
        mapped = _rename_dinov2(state, model_keys)
    elif layout == "timm":  # a classifier/projection head (timm's CLIP copies) is not the encoder
        mapped = {k: v for k, v in state.items() if not (k.startswith("head.") and k not in model_keys)}
    else:
        raise ConfigError(f"unknown weight format {fmt!r}")

    missing = sorted(model_keys - set(mapped))
    unexpected = sorted(set(mapped) - model_keys)
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing key(s) {', '.join(missing[:5])}")
        if unexpected:
            parts.append(f"unexpected key(s) {', '.join(unexpected[:5])}")
        more = len(missing) + len(unexpected) - min(5, len(missing)) - min(5, len(unexpected))
        tail = f" (+{more} more)" if more > 0 else ""
        raise WeightsError(f"{fmt} weights do not fit {vit.spec.name}: {'; '.join(parts)}{tail}")

    grid = vit.vit.patch_embed.grid_size
    prefix = 0 if getattr(vit.vit, "no_embed_class", False) else vit.num_prefix_tokens
    out: dict[str, torch.Tensor] = {}
    for key, value in mapped.items():
        target = model_state[key].shape
        if value.shape != target:
            adapted = _adapt(key, value, target, prefix, grid)
            if adapted is None:
                raise WeightsError(
                    f"{fmt} weights do not fit {vit.spec.name}: key {key} has shape "
                    f"{tuple(value.shape)}, the model expects {tuple(target)}"
                )
            value = adapted
        out[key] = value.to(model_state[key].dtype)
    return out


def load_weights(vit: FrozenViT, state: dict, fmt: str) -> None:
    """Load a state dict strictly (every key accounted for, every shape right)."""
    vit.vit.load_state_dict(map_state_dict(vit, state, fmt), strict=True)
