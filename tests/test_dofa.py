"""DOFA: our wavelength-conditioned encoder against torchgeo's independent implementation.

A tiny torchgeo DOFA with random weights is saved in the official key layout (torch.save of its
state dict, final norm and head included), loaded through our strict loader, and every block's
tokens are compared for 3, 4, 13 and 32 bands.
"""

from __future__ import annotations

import pytest
import torch
from torchgeo.models.dofa import DOFA

from spectralmoe_cli.errors import WeightsError
from spectralmoe_cli.nn.backbones import get_spec
from spectralmoe_cli.nn.dofa import DOFAViT, load_dofa_weights, map_dofa_state_dict
from spectralmoe_cli.engine.runtime.weights import read_state_dict

SIZE, DIM, DEPTH, HEADS = 64, 64, 2, 4
WAVELENGTHS = {
    3: [0.665, 0.56, 0.49],
    4: [0.842, 0.665, 0.56, 0.49],
    13: [0.443, 0.49, 0.56, 0.665, 0.705, 0.74, 0.783, 0.842, 0.865, 0.945, 1.375, 1.61, 2.19],
    32: [round(0.466 + i * (0.940 - 0.466) / 31, 4) for i in range(32)],
}


def _reference(seed: int = 0) -> DOFA:
    torch.manual_seed(seed)
    ref = DOFA(img_size=SIZE, patch_size=16, embed_dim=DIM, depth=DEPTH, num_heads=HEADS, num_classes=5)
    with torch.no_grad():  # zero-initialised in the release; random here so they count
        ref.cls_token.normal_()
        ref.pos_embed.normal_()
    return ref.eval()


def _ours(wavelengths: list[float]) -> DOFAViT:
    return DOFAViT(get_spec("dofa_vitb16"), wavelengths, patch_size=16, embed_dim=DIM, depth=DEPTH,
                   num_heads=HEADS, img_size=SIZE)


def _reference_tokens(ref: DOFA, x: torch.Tensor, wavelengths: list[float]) -> list[torch.Tensor]:
    """torchgeo's forward_features up to (not including) its pooling, block by block."""
    tokens, _ = ref.patch_embed(x, torch.tensor(wavelengths).float())
    tokens = tokens + ref.pos_embed[:, 1:, :]
    cls = (ref.cls_token + ref.pos_embed[:, :1, :]).expand(x.shape[0], -1, -1)
    tokens = torch.cat((cls, tokens), dim=1)
    outs = []
    for block in ref.blocks:
        tokens = block(tokens)
        outs.append(tokens)
    return outs


@pytest.fixture(scope="module")
def official_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("dofa") / "DOFA_ViT_tiny.pth"
    torch.save(_reference().state_dict(), path)
    return path


@pytest.mark.parametrize("bands", [3, 4, 13, 32])
def test_every_block_equals_torchgeo(official_file, bands):
    wavelengths = WAVELENGTHS[bands]
    ours = _ours(wavelengths)
    load_dofa_weights(ours, read_state_dict(official_file))
    x = torch.randn(2, bands, SIZE, SIZE, generator=torch.Generator().manual_seed(bands))
    with torch.no_grad():
        expected = _reference_tokens(_reference(), x, wavelengths)
        got = ours.forward_all(x)
    assert len(got) == len(expected) == DEPTH
    for block, (a, b) in enumerate(zip(got, expected)):
        assert a.shape == b.shape == (2, 1 + (SIZE // 16) ** 2, DIM)
        assert (a - b).abs().max().item() <= 1e-5, f"block {block}"


def test_skipped_keys_are_named_and_the_rest_is_strict(official_file):
    state = read_state_dict(official_file)
    _, skipped = map_dofa_state_dict(_ours(WAVELENGTHS[4]), state)
    assert skipped == ["fc_norm.bias", "fc_norm.weight", "head.bias", "head.weight"]

    missing = {k: v for k, v in state.items() if k != "blocks.1.attn.qkv.weight"}
    with pytest.raises(WeightsError, match=r"missing key\(s\) blocks\.1\.attn\.qkv\.weight"):
        map_dofa_state_dict(_ours(WAVELENGTHS[4]), missing)
    extra = {**state, "blocks.2.attn.qkv.weight": state["blocks.1.attn.qkv.weight"]}
    with pytest.raises(WeightsError, match=r"unexpected key\(s\) blocks\.2\.attn\.qkv\.weight"):
        map_dofa_state_dict(_ours(WAVELENGTHS[4]), extra)
    wrong = {**state, "patch_embed.fclayer.w1.weight": torch.zeros(64, 128)}
    with pytest.raises(WeightsError, match=r"patch_embed\.fclayer\.w1\.weight has shape \(64, 128\)"):
        map_dofa_state_dict(_ours(WAVELENGTHS[4]), wrong)


def test_an_official_checkpoint_at_224_fits_a_512_model_by_resampling_its_position_grid(official_file):
    model = DOFAViT(get_spec("dofa_vitb16"), WAVELENGTHS[3], embed_dim=DIM, depth=DEPTH,
                    num_heads=HEADS, img_size=128)
    load_dofa_weights(model, read_state_dict(official_file))
    assert model.vit.pos_embed.shape == (1, 1 + 8 * 8, DIM)
    with torch.no_grad():
        assert model.forward_all(torch.randn(1, 3, 128, 128))[-1].shape == (1, 65, DIM)
