"""Official weight layouts load strictly into the timm modules; every bad key is named."""

from __future__ import annotations

import pickle

import official
import pytest
import torch
from safetensors.torch import save_file

from spectralmoe_cli.config import BackboneConfig, load_config
from spectralmoe_cli.engine.runtime.models import build_model
from spectralmoe_cli.errors import WeightsError
from spectralmoe_cli.nn.backbones import DepthEncoder, FrozenViT, get_spec, load_weights
from spectralmoe_cli.engine.runtime.weights import locate, read_state_dict

D, L, H = official.DIM, official.DEPTH, official.HEADS


def _vit(name: str, in_chans: int = 3) -> FrozenViT:
    return FrozenViT(get_spec(name), in_chans=in_chans, embed_dim=D, depth=L, num_heads=H)


def test_dinov2_official_layout_loads_with_kernel_and_grid_resampled():
    state = official.dinov2_state()
    vit = _vit("dinov2_vitl14")
    load_weights(vit, state, "dinov2")
    sd = vit.vit.state_dict()
    assert torch.equal(sd["blocks.1.attn.qkv.weight"], state["blocks.1.attn.qkv.weight"])
    assert torch.equal(sd["blocks.0.ls2.gamma"], state["blocks.0.ls2.gamma"])
    assert sd["patch_embed.proj.weight"].shape == (D, 3, 16, 16)
    assert sd["pos_embed"].shape == (1, 1 + 32 * 32, D)
    assert torch.equal(sd["pos_embed"][:, 0], state["pos_embed"][:, 0])  # cls position kept
    # the pseudo-inverse resize keeps a patch's response: a constant patch gives the same token
    x14 = torch.ones(1, 3, 14, 14)
    x16 = torch.ones(1, 3, 16, 16)
    w14, w16 = state["patch_embed.proj.weight"], sd["patch_embed.proj.weight"]
    torch.testing.assert_close((w16 * x16).sum((1, 2, 3)), (w14 * x14).sum((1, 2, 3)),
                               rtol=1e-3, atol=1e-3)


def test_dinov2_registers_layout_loads():
    state = official.dinov2_state(registers=4)
    vit = _vit("dinov2_vitl14_reg4")
    load_weights(vit, state, "dinov2")
    sd = vit.vit.state_dict()
    assert torch.equal(sd["reg_token"], state["register_tokens"])
    # timm keeps no position for prefix tokens: the cls position is folded into the cls token
    torch.testing.assert_close(sd["cls_token"], state["cls_token"] + state["pos_embed"][:, 0])
    with pytest.raises(WeightsError, match="unexpected key.*reg_token"):
        load_weights(_vit("dinov2_vitl14"), state, "dinov2")


def test_dinov3_official_layout_loads():
    state = official.dinov3_state()
    vit = _vit("dinov3_vitl16")
    load_weights(vit, state, "dinov3")
    sd = vit.vit.state_dict()
    assert torch.equal(sd["reg_token"], state["storage_tokens"])
    assert torch.equal(sd["blocks.1.gamma_1"], state["blocks.1.ls1.gamma"])
    assert torch.equal(sd["blocks.0.mlp.fc2.weight"], state["blocks.0.mlp.fc2.weight"])


def test_dinov3_qkv_biases_go_to_the_qkvb_variant():
    state = official.dinov3_state(zero_qkv_bias=False)
    with pytest.raises(WeightsError, match=r"blocks\.0\.attn\.qkv\.bias.*_qkvb"):
        load_weights(_vit("dinov3_vitl16"), state, "dinov3")
    vit = _vit("dinov3_vitl16_qkvb")
    load_weights(vit, state, "dinov3")
    q, _, v = state["blocks.0.attn.qkv.bias"].chunk(3)
    assert torch.equal(vit.vit.blocks[0].attn.q_bias, q)
    assert torch.equal(vit.vit.blocks[0].attn.v_bias, v)


def test_depth_anything_v2_encoder_under_pretrained_loads():
    state = official.depth_anything_v2_state()
    enc = DepthEncoder(get_spec("depth_anything_v2_vitl"), embed_dim=D, depth=L, num_heads=H)
    load_weights(enc.encoder, state, "depth_anything_v2")
    assert torch.equal(enc.encoder.vit.state_dict()["norm.weight"], state["pretrained.norm.weight"])


def test_promptda_lightning_checkpoint_loads(tmp_path):
    path = tmp_path / "model.ckpt"
    torch.save(official.promptda_checkpoint(), path)
    enc = DepthEncoder(get_spec("promptda_vitl"), embed_dim=D, depth=L, num_heads=H)
    load_weights(enc.encoder, read_state_dict(path), "promptda")
    expected = official.promptda_checkpoint()["state_dict"]["pipeline.pretrained.blocks.1.mlp.fc1.bias"]
    assert torch.equal(enc.encoder.vit.blocks[1].mlp.fc1.bias, expected)


def test_timm_safetensors_loads(tmp_path):
    source = _vit("dinov3_vitl16")
    path = tmp_path / "model.safetensors"
    save_file({k: v.contiguous() for k, v in source.vit.state_dict().items()}, str(path))
    vit = _vit("dinov3_vitl16")
    load_weights(vit, read_state_dict(path), "timm")
    for key, value in source.vit.state_dict().items():
        assert torch.equal(vit.vit.state_dict()[key], value), key


@pytest.mark.parametrize("fmt,make,name", [
    ("dinov2", official.dinov2_state, "dinov2_vitl14"),
    ("dinov3", official.dinov3_state, "dinov3_vitl16"),
    ("depth_anything_v2", official.depth_anything_v2_state, "depth_anything_v2_vitl"),
])
def test_missing_extra_and_misshaped_keys_are_named(fmt, make, name):
    prefix = "pretrained." if fmt == "depth_anything_v2" else ""
    state = make()
    del state[f"{prefix}blocks.1.norm2.bias"]
    with pytest.raises(WeightsError, match=r"missing key\(s\) blocks\.1\.norm2\.bias"):
        load_weights(_vit(name), state, fmt)
    state = make()
    state[f"{prefix}blocks.0.attn.extra_scale"] = torch.ones(1)
    with pytest.raises(WeightsError, match=r"unexpected key\(s\) blocks\.0\.attn\.extra_scale"):
        load_weights(_vit(name), state, fmt)
    state = make()
    state[f"{prefix}blocks.0.mlp.fc1.weight"] = torch.zeros(4 * D + 1, D)
    with pytest.raises(WeightsError, match=r"blocks\.0\.mlp\.fc1\.weight has shape \(129, 32\)"):
        load_weights(_vit(name), state, fmt)


def test_a_checkpoint_of_another_size_fails_naming_a_key():
    state = official.dinov2_state(dim=64)
    with pytest.raises(WeightsError, match="cls_token has shape"):
        load_weights(_vit("dinov2_vitl14"), state, "dinov2")


def test_n_band_input_copies_rgb_kernels_cyclically():
    state = official.dinov3_state()
    vit = _vit("dinov3_vitl16", in_chans=5)
    load_weights(vit, state, "dinov3")
    w = vit.vit.patch_embed.proj.weight
    rgb = state["patch_embed.proj.weight"]
    for band in range(5):
        assert torch.equal(w[:, band], rgb[:, band % 3]), band
    assert not w.requires_grad


def test_a_kernel_with_other_band_count_does_not_fit():
    state = official.dinov3_state()
    state["patch_embed.proj.weight"] = torch.randn(D, 4, 16, 16)
    with pytest.raises(WeightsError, match=r"patch_embed\.proj\.weight has shape \(32, 4, 16, 16\)"):
        load_weights(_vit("dinov3_vitl16", in_chans=3), state, "dinov3")


def test_depth_grid_equals_visual_grid_for_any_input():
    vit = _vit("dinov3_vitl16", in_chans=4)
    enc = DepthEncoder(get_spec("promptda_vitl"), embed_dim=D, depth=L, num_heads=H)
    for h, w in ((64, 64), (96, 48), (512, 512)):
        tokens, _ = vit.prepare(torch.randn(1, 4, h, w))
        depth = enc(torch.randn(1, 3, h, w))
        assert len(depth) == L
        assert tokens.shape[1] - vit.num_prefix_tokens == depth[0].shape[1] - 1 == (h // 16) * (w // 16)


def test_depth_model_reads_rgb_chosen_by_band_name():
    cfg = load_config("spectralmoe_tiny").with_data(["nir", "blue", "green", "red"], 3)
    torch.manual_seed(0)
    model = build_model(cfg, pretrained=False).eval()
    x = torch.randn(1, 4, 32, 32)
    got = model._depth_tokens(x)
    want = model.depth_model(x[:, [3, 2, 1]])
    for a, b in zip(got, want):
        assert torch.equal(a, b)


def test_pretrained_weights_found_in_the_weights_dir(tmp_path, monkeypatch):
    wdir = tmp_path / "w"
    wdir.mkdir()
    monkeypatch.setenv("SPECTRALMOE_WEIGHTS", str(wdir))
    spec = get_spec("dinov3_vitl16")
    torch.save(official.dinov3_state(), wdir / spec.filename)
    path, fmt = locate(spec)
    assert path == wdir / spec.filename and fmt == "dinov3"
    cfg = load_config("spectralmoe_tiny").model_copy(update={
        "backbone": BackboneConfig(name="dinov3_vitl16", weights="pretrained", embed_dim=D, depth=L,
                                   num_heads=H),
        "depth": BackboneConfig(name="promptda_vitl", weights=str(tmp_path / "model.ckpt"),
                                embed_dim=D, depth=L, num_heads=H),
    })
    torch.save(official.promptda_checkpoint(), tmp_path / "model.ckpt")
    model = build_model(cfg)
    assert torch.equal(model.backbone.vit.reg_token, official.dinov3_state()["storage_tokens"])


def test_pretrained_weights_found_in_the_hugging_face_cache(tmp_path, monkeypatch):
    hub = tmp_path / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(hub))
    import huggingface_hub.constants as constants
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(hub))
    spec = get_spec("dinov3_vitl16")
    repo = hub / ("models--" + spec.hf_repo.replace("/", "--"))
    snapshot = repo / "snapshots" / "0123abcd"
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0123abcd")
    save_file({k: v.contiguous() for k, v in _vit("dinov3_vitl16").vit.state_dict().items()},
              str(snapshot / "model.safetensors"))
    path, fmt = locate(spec)
    assert path == snapshot / "model.safetensors" and fmt == "timm"


def test_offline_without_weights_says_which_file_and_where():
    with pytest.raises(WeightsError) as info:
        locate(get_spec("dinov3_vitl16"))
    message = str(info.value)
    assert "dinov3_vitl16_pretrain_lvd1689m-8aa4cbdd.pth" in message
    assert "\n" not in message and "weights" in message


class _Payload:
    def __reduce__(self):
        return (print, ("code ran",))


def test_a_pickled_object_is_refused_not_executed(tmp_path, capsys):
    path = tmp_path / "evil.pth"
    with open(path, "wb") as f:
        pickle.dump({"x": _Payload()}, f)
    with pytest.raises(WeightsError, match="cannot read weights"):
        read_state_dict(path)
    assert "code ran" not in capsys.readouterr().out
