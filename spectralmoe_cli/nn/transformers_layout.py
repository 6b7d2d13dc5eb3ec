"""Hugging Face *transformers* checkpoints renamed to the official DINOv2/DINOv3 layouts.

``facebook/dinov2-*``, ``facebook/dinov3-*-pretrain-*`` and the ``*-hf`` depth models store the
same tensors as Meta's files under other names, with q, k and v as separate projections. Renaming
them to the official layout lets one strict loader (``backbones.map_state_dict``) serve both.
Keys this table does not know pass through unchanged, so the strict check still names them.
"""

from __future__ import annotations

import re

import torch

from ..errors import WeightsError

# DINOv2 (transformers ``Dinov2Model``, ``Dinov2WithRegistersModel``, the depth models' backbone)
_DINOV2_KEYS = {
    "embeddings.cls_token": "cls_token",
    "embeddings.mask_token": "mask_token",
    "embeddings.position_embeddings": "pos_embed",
    "embeddings.register_tokens": "register_tokens",
    "embeddings.patch_embeddings.projection.weight": "patch_embed.proj.weight",
    "embeddings.patch_embeddings.projection.bias": "patch_embed.proj.bias",
    "layernorm.weight": "norm.weight",
    "layernorm.bias": "norm.bias",
}
_DINOV2_BLOCK = {
    "attention.output.dense.": "attn.proj.",
    "layer_scale1.lambda1": "ls1.gamma",
    "layer_scale2.lambda1": "ls2.gamma",
    "mlp.weights_in.": "mlp.w12.",  # ViT-g's SwiGLU
    "mlp.weights_out.": "mlp.w3.",
}
_DINOV2_QKV = ("attention.attention.query.", "attention.attention.key.", "attention.attention.value.")

# DINOv3 (transformers ``DINOv3ViTModel``)
_DINOV3_KEYS = {
    "embeddings.cls_token": "cls_token",
    "embeddings.mask_token": "mask_token",
    "embeddings.register_tokens": "storage_tokens",
    "embeddings.patch_embeddings.weight": "patch_embed.proj.weight",
    "embeddings.patch_embeddings.bias": "patch_embed.proj.bias",
}
_DINOV3_BLOCK = {
    "attention.o_proj.": "attn.proj.",
    "layer_scale1.lambda1": "ls1.gamma",
    "layer_scale2.lambda1": "ls2.gamma",
    "mlp.gate_proj.": "mlp.w1.",  # SwiGLU: down(silu(gate(x)) * up(x)) = w3(silu(w1 x) * w2 x)
    "mlp.down_proj.": "mlp.fc2.",
}
_DINOV3_QKV = ("attention.q_proj.", "attention.k_proj.", "attention.v_proj.")

_BLOCK = re.compile(r"^(?:model\.)?(?:encoder\.)?layer\.(\d+)\.(.+)$")


def is_transformers_layout(keys: set[str]) -> bool:
    """A transformers checkpoint names its patch embedding under ``embeddings.``."""
    return any(re.match(r"^(?:\w+\.)?embeddings\.patch_embeddings\.", k) for k in keys)


def from_transformers(state: dict[str, torch.Tensor], family: str) -> dict[str, torch.Tensor]:
    """The same tensors under the official key names of ``family`` ('dinov2' or 'dinov3')."""
    state = _backbone_only(state)
    gated = any(k.endswith("mlp.gate_proj.weight") for k in state)
    top, block, qkv = ((_DINOV3_KEYS, _DINOV3_BLOCK, _DINOV3_QKV) if family == "dinov3"
                       else (_DINOV2_KEYS, _DINOV2_BLOCK, _DINOV2_QKV))
    out: dict[str, torch.Tensor] = {}
    parts: dict[tuple[str, str], dict[int, torch.Tensor]] = {}
    for key, value in state.items():
        if key in top:
            out[top[key]] = value
            continue
        match = _BLOCK.match(key)
        if match is None:
            out[key] = value
            continue
        index, rest = match.groups()
        slot = next((n for n, name in enumerate(qkv) if rest.startswith(name)), None)
        if slot is not None:
            parts.setdefault((index, rest[len(qkv[slot]):]), {})[slot] = value
            continue
        if family == "dinov3" and rest.startswith("mlp.up_proj."):
            rest = rest.replace("mlp.up_proj.", "mlp.w2." if gated else "mlp.fc1.")
        for old, new in block.items():
            rest = rest.replace(old, new)
        out[f"blocks.{index}.{rest}"] = value
    for (index, kind), pieces in parts.items():
        missing = [f"layer.{index}.{qkv[n]}{kind}" for n in range(3)
                   if n not in pieces and kind != "bias"]
        if missing:
            raise WeightsError(f"transformers weights lack {', '.join(missing)}")
        out[f"blocks.{index}.attn.qkv.{kind}"] = _fuse(pieces, kind)
    return out


def _backbone_only(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The encoder's tensors of a classifier (``dinov2.``) or depth model (``backbone.``)."""
    for prefix in ("backbone.", "dinov2.", "dinov3."):
        if any(k.startswith(prefix + "embeddings.") for k in state):
            return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    return state


def _fuse(pieces: dict[int, torch.Tensor], kind: str) -> torch.Tensor:
    """q, k, v stacked as the fused ``qkv`` projection; a bias left out (DINOv3's key) is zero."""
    like = next(iter(pieces.values()))
    return torch.cat([pieces.get(n, torch.zeros_like(like)) for n in range(3)])
