"""Hugging Face *transformers* checkpoints load strictly and give the tokens transformers gives.

The checkpoints are written by transformers itself (tiny random models, ``save_pretrained``), so
the key names are the library's, not ours; the reference output is transformers' forward pass.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from spectralmoe_cli.errors import WeightsError
from spectralmoe_cli.nn.backbones import FrozenViT, get_spec, load_weights
from spectralmoe_cli.engine.runtime.weights import locate, read_state_dict

transformers = pytest.importorskip("transformers", minversion="4.56")

DIM, DEPTH, HEADS = 32, 2, 2


def _randomised(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Far from the init values, so that a misplaced tensor shows in the output."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.2)
    return model.eval()


def _saved(model: torch.nn.Module, folder: Path) -> Path:
    model.save_pretrained(folder)
    return folder / "model.safetensors"


def _load(name: str, path: Path, patch: int, size: int) -> FrozenViT:
    vit = FrozenViT(get_spec(name), patch_size=patch, img_size=size, embed_dim=DIM, depth=DEPTH,
                    num_heads=HEADS)
    found, fmt = locate(get_spec(name), str(path))
    assert fmt == "transformers"
    load_weights(vit, read_state_dict(found), fmt)
    return vit


def _assert_same_tokens(reference: torch.nn.Module, vit: FrozenViT, x: torch.Tensor) -> None:
    with torch.no_grad():
        want = reference(pixel_values=x, output_hidden_states=True).hidden_states[1:]
        got = vit.forward_all(x)
    assert len(got) == len(want) == DEPTH
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("registers", [0, 4])
def test_dinov2_transformers_checkpoint_gives_transformers_tokens(tmp_path, registers):
    size = 8 * 14
    common = dict(hidden_size=DIM, num_hidden_layers=DEPTH, num_attention_heads=HEADS,
                  image_size=size, patch_size=14)
    if registers:
        ref = transformers.Dinov2WithRegistersModel(transformers.Dinov2WithRegistersConfig(
            num_register_tokens=registers, **common))
    else:
        ref = transformers.Dinov2Model(transformers.Dinov2Config(**common))
    path = _saved(_randomised(ref), tmp_path / "hf")
    vit = _load("dinov2_vitl14_reg4" if registers else "dinov2_vitl14", path, 14, size)
    _assert_same_tokens(ref, vit, torch.randn(2, 3, size, size))


@pytest.mark.parametrize("name,gated", [("dinov3_vitl16_qkvb", False), ("dinov3_vith16plus", True)])
def test_dinov3_transformers_checkpoint_gives_transformers_tokens(tmp_path, name, gated):
    ref = _randomised(transformers.DINOv3ViTModel(transformers.DINOv3ViTConfig(
        hidden_size=DIM, num_hidden_layers=DEPTH, num_attention_heads=HEADS,
        intermediate_size=4 * DIM, num_register_tokens=4, image_size=128,
        use_gated_mlp=gated, hidden_act="silu" if gated else "gelu")))
    if gated:  # ViT-H+ has no q/v biases: the checkpoint's are zero
        with torch.no_grad():
            for name_, p in ref.named_parameters():
                if name_.endswith(("q_proj.bias", "v_proj.bias")):
                    p.zero_()
    vit = _load(name, _saved(ref, tmp_path / "hf"), 16, 128)
    _assert_same_tokens(ref, vit, torch.randn(1, 3, 128, 96))  # RoPE on a non-square grid


def test_depth_anything_transformers_checkpoint_loads_its_backbone(tmp_path):
    size = 8 * 14
    backbone = transformers.Dinov2Config(hidden_size=DIM, num_hidden_layers=DEPTH,
                                         num_attention_heads=HEADS, image_size=size,
                                         patch_size=14, out_indices=[1, 2])
    full = _randomised(transformers.DepthAnythingForDepthEstimation(transformers.DepthAnythingConfig(
        backbone_config=backbone, reassemble_hidden_size=DIM, neck_hidden_sizes=[16, 32],
        fusion_hidden_size=16, head_hidden_size=8)))
    vit = _load("depth_anything_v2_vitl", _saved(full, tmp_path / "hf"), 14, size)  # no neck/head
    _assert_same_tokens(full.backbone, vit, torch.randn(1, 3, size, size))


def test_a_transformers_checkpoint_missing_a_projection_is_named(tmp_path):
    ref = _randomised(transformers.Dinov2Model(transformers.Dinov2Config(
        hidden_size=DIM, num_hidden_layers=DEPTH, num_attention_heads=HEADS, image_size=112,
        patch_size=14)))
    state = read_state_dict(_saved(ref, tmp_path / "hf"))
    vit = FrozenViT(get_spec("dinov2_vitl14"), patch_size=14, img_size=112, embed_dim=DIM,
                    depth=DEPTH, num_heads=HEADS)
    broken = {k: v for k, v in state.items() if k != "encoder.layer.1.attention.attention.key.weight"}
    with pytest.raises(WeightsError, match=r"layer\.1\.attention\.attention\.key\.weight"):
        load_weights(vit, broken, "transformers")
    extra = {**state, "pooler.dense.weight": torch.zeros(DIM, DIM)}
    with pytest.raises(WeightsError, match=r"unexpected key\(s\) pooler\.dense\.weight"):
        load_weights(vit, extra, "transformers")


def test_a_cached_transformers_copy_is_found(tmp_path, monkeypatch):
    import huggingface_hub.constants as constants
    hub = tmp_path / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(hub))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(hub))
    monkeypatch.setenv("SPECTRALMOE_WEIGHTS", str(tmp_path / "empty"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    spec = get_spec("dinov2_vitl14")
    assert spec.transformers_repo == "facebook/dinov2-large"
    repo = hub / ("models--" + spec.transformers_repo.replace("/", "--"))
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("0123abcd")
    ref = transformers.Dinov2Model(transformers.Dinov2Config(
        hidden_size=DIM, num_hidden_layers=DEPTH, num_attention_heads=HEADS, image_size=112,
        patch_size=14))
    path = _saved(_randomised(ref), repo / "snapshots" / "0123abcd")
    assert locate(spec) == (path, "transformers")
