"""AdaptFormer, VPT-deep, SET and FADA: their equations on small tensors, against hand computations."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from spectralmoe_cli.config import PluginConfig, load_config
from spectralmoe_cli.nn.backbones import FrozenViT, get_spec
from spectralmoe_cli.nn.fada import FADA, haar_merge, haar_split
from spectralmoe_cli.nn.segmentor import Segmentor
from spectralmoe_cli.nn.spectral_set import SET
from spectralmoe_cli.nn.token_branch import TokenBranch

NEW = ("adaptformer", "vpt", "set", "fada")


def _tiny(method: str, bands: int = 3) -> Segmentor:
    torch.manual_seed(0)
    names = ["red", "green", "blue", "nir"][:bands]
    return Segmentor(load_config(f"{method}_tiny").with_data(names, 4))


def _frozen_twin(model: Segmentor) -> Segmentor:
    """The ``frozen`` method with exactly the same backbone and head weights as ``model``."""
    frozen = Segmentor(load_config("frozen_tiny").with_data(list(model.cfg.data.bands), 4))
    state = {k: v for k, v in model.state_dict().items() if not k.startswith("plugin.")}
    frozen.load_state_dict(state, strict=True)
    return frozen


def _branch_np(branch: TokenBranch, layer: int, x: np.ndarray) -> np.ndarray:
    """REIN's refinement, by hand: W_f(softmax(x Tᵀ/√d)[:, 1:] (W_t T[1:] + b_t) + x) + b_f."""
    tokens = (branch.tokens_a[layer] @ branch.tokens_b[layer]).detach().numpy()
    wt, bt = (t.detach().numpy() for t in (branch.mlp_token2feat.weight, branch.mlp_token2feat.bias))
    wf, bf = (t.detach().numpy() for t in (branch.mlp_delta_f.weight, branch.mlp_delta_f.bias))
    logits = x @ tokens.T / math.sqrt(x.shape[-1])
    attn = np.exp(logits - logits.max(-1, keepdims=True))
    attn /= attn.sum(-1, keepdims=True)
    delta = attn[:, 1:] @ (tokens[1:] @ wt.T + bt)
    return (delta + x) @ wf.T + bf


# --- AdaptFormer -------------------------------------------------------------------------------

def test_adaptformer_starts_at_the_frozen_models_output():
    model = _tiny("adaptformer").eval()
    x = torch.randn(2, 3, 48, 32)
    with torch.no_grad():
        assert torch.equal(model(x)[0], _frozen_twin(model).eval()(x)[0])


def test_adaptformer_adds_the_bottleneck_beside_the_mlp():
    model = _tiny("adaptformer").double().eval()
    adapter = model.plugin.adapters[1]
    torch.nn.init.normal_(adapter.up.weight)
    torch.nn.init.normal_(adapter.up.bias)
    torch.nn.init.normal_(adapter.norm.weight)
    vit = model.backbone
    tokens, rope = vit.prepare(torch.randn(1, 3, 32, 48, dtype=torch.float64))
    block = vit.vit.blocks[1]
    with torch.no_grad():
        out = vit.block(1, tokens, rope)
        mid = tokens + block.gamma_1 * block.attn(block.norm1(tokens), rope=rope)
        x = mid.numpy()
        norm = (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + 1e-5)
        norm = norm * adapter.norm.weight.numpy() + adapter.norm.bias.numpy()
        hidden = np.maximum(norm @ adapter.down.weight.numpy().T + adapter.down.bias.numpy(), 0)
        update = float(model.plugin.scale[1]) * (hidden @ adapter.up.weight.numpy().T + adapter.up.bias.numpy())
        expected = (mid + block.gamma_2 * block.mlp(block.norm2(mid))).numpy() + update
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-10, atol=1e-12)
    assert float(model.plugin.scale[1]) == pytest.approx(0.1)


def test_adaptformer_scale_is_fixed_or_learnable():
    fixed = Segmentor(load_config("adaptformer_tiny")).plugin
    assert "scale" not in dict(fixed.named_parameters())
    cfg = load_config("adaptformer_tiny")
    cfg = cfg.model_copy(update={"plugin": cfg.plugin.model_copy(update={"adapter_learnable_scale": True})})
    learnable = Segmentor(cfg).plugin
    assert learnable.scale.requires_grad and learnable.scale.shape == (4,)
    assert torch.all(learnable.scale == 0.1)


# --- VPT-deep ----------------------------------------------------------------------------------

@pytest.mark.parametrize("backbone", ["dinov3_vits16", "dinov2_vits14"])
def test_prompts_join_a_block_as_unrotated_prefix_tokens_and_leave(backbone):
    torch.manual_seed(0)
    vit = FrozenViT(get_spec(backbone), embed_dim=48, depth=2, num_heads=2).double()
    tokens, rope = vit.prepare(torch.randn(2, 3, 48, 32, dtype=torch.float64))
    prompts = torch.randn(2, 3, 48, dtype=torch.float64)
    prefix = vit.num_prefix_tokens
    block = vit.vit.blocks[0]
    with torch.no_grad():
        out = vit.block(0, tokens, rope, prompts)
        # the reference: timm's own block, told that the 3 prompts are 3 more prefix tokens
        joined = torch.cat([tokens[:, :prefix], prompts, tokens[:, prefix:]], dim=1)
        if rope is not None:
            block.attn.num_prefix_tokens = prefix + 3
            try:
                reference = block(joined, rope=rope)
            finally:
                block.attn.num_prefix_tokens = prefix
        else:
            reference = block(joined)
        plain = vit.block(0, tokens, rope)
    assert out.shape == tokens.shape
    expected = torch.cat([reference[:, :prefix], reference[:, prefix + 3:]], dim=1)
    torch.testing.assert_close(out, expected, rtol=1e-12, atol=1e-12)
    assert not torch.allclose(out, plain)  # the prompts were really attended


def test_vpt_gives_every_block_its_own_prompts():
    model = _tiny("vpt")
    plugin = model.plugin
    assert plugin.prompt_tokens.shape == (4, 4, 48)
    assert torch.equal(plugin.prompts(2, 3), plugin.prompt_tokens[2].expand(3, -1, -1))
    bound = math.sqrt(6.0 / (3 * 16 * 16 + 48))
    assert plugin.prompt_tokens.abs().max() <= bound
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        before, _ = model.eval()(x)
        plugin.prompt_tokens[3].zero_()
        after, _ = model(x)
    assert not torch.equal(before, after)  # the last block's prompts reach the output


# --- SET ---------------------------------------------------------------------------------------

def _set(**kw) -> SET:
    torch.manual_seed(0)
    return SET(PluginConfig(method="set", num_tokens=5, rank=2, **kw), num_layers=2, dim=8).double()


def test_set_refines_amplitude_and_phase_and_inverts_the_fft():
    plugin = _set()
    with torch.no_grad():
        plugin.scale.fill_(0.3)
    f = torch.randn(2, 12, 8, dtype=torch.float64)
    out, loss = plugin(1, f, None, (3, 4))
    expected = []
    for image in f.numpy():
        spectrum = np.fft.rfft2(image.reshape(3, 4, 8), axes=(0, 1), norm="ortho")
        amp = _branch_np(plugin.amplitude, 1, np.abs(spectrum).reshape(-1, 8))
        phase = _branch_np(plugin.phase, 1, np.angle(spectrum).reshape(-1, 8))
        update = np.fft.irfft2((amp * np.exp(1j * phase)).reshape(spectrum.shape), s=(3, 4),
                               axes=(0, 1), norm="ortho")
        expected.append(image + 0.3 * update.reshape(12, 8))
    np.testing.assert_allclose(out.detach().numpy(), np.stack(expected), rtol=1e-9, atol=1e-12)
    assert float(loss) == 0.0


def test_set_links_its_phase_tokens():
    plugin = _set(query_dim=4)
    tokens = plugin.phase.tokens_a @ plugin.phase.tokens_b
    torch.testing.assert_close(plugin.queries(), plugin.linker(tokens))


# --- FADA --------------------------------------------------------------------------------------

def test_haar_bands_by_hand_and_perfect_reconstruction():
    x = torch.randn(2, 3, 4, 6, dtype=torch.float64)
    ll, lh, hl, hh = haar_split(x)
    a, b, c, d = x[..., 0, 0], x[..., 0, 1], x[..., 1, 0], x[..., 1, 1]
    torch.testing.assert_close(ll[..., 0, 0], (a + b + c + d) / 2)
    torch.testing.assert_close(lh[..., 0, 0], (b - a + d - c) / 2)
    torch.testing.assert_close(hl[..., 0, 0], (c + d - a - b) / 2)
    torch.testing.assert_close(hh[..., 0, 0], (a + d - b - c) / 2)
    torch.testing.assert_close(haar_merge(ll, lh, hl, hh), x, rtol=0, atol=1e-14)
    energy = sum(band.pow(2).sum() for band in (ll, lh, hl, hh))
    torch.testing.assert_close(energy, x.pow(2).sum())  # orthonormal


def _haar_np(x: np.ndarray) -> list[np.ndarray]:
    """[H, W, d] (even sides) -> LL, LH, HL, HH, [H/2·W/2, d] each."""
    a, b, c, d = x[0::2, 0::2], x[0::2, 1::2], x[1::2, 0::2], x[1::2, 1::2]
    return [v.reshape(-1, x.shape[-1]) for v in
            ((a + b + c + d) / 2, (b - a + d - c) / 2, (c + d - a - b) / 2, (a + d - b - c) / 2)]


@pytest.mark.parametrize("grid", [(4, 2), (3, 5)])
def test_fada_refines_low_and_normalised_high_bands_and_merges_them(grid):
    torch.manual_seed(0)
    plugin = FADA(PluginConfig(method="fada", num_tokens=5, rank=2), num_layers=2, dim=8).double()
    with torch.no_grad():
        plugin.scale.fill_(0.5)
    rows, cols = grid
    f = torch.randn(2, rows * cols, 8, dtype=torch.float64)
    out, _ = plugin(0, f, None, grid)
    expected = []
    for image in f.numpy():
        padded = np.pad(image.reshape(rows, cols, 8), ((0, rows % 2), (0, cols % 2), (0, 0)), mode="edge")
        bands = _haar_np(padded)
        refined = [_branch_np(plugin.low, 0, bands[0])]
        for band in bands[1:]:
            normed = (band - band.mean(0)) / np.sqrt(band.var(0) + 1e-5)
            refined.append(_branch_np(plugin.high, 0, normed))
        ll, lh, hl, hh = (r.reshape(padded.shape[0] // 2, padded.shape[1] // 2, 8) for r in refined)
        update = np.empty_like(padded)
        update[0::2, 0::2] = (ll - lh - hl + hh) / 2
        update[0::2, 1::2] = (ll + lh - hl - hh) / 2
        update[1::2, 0::2] = (ll - lh + hl - hh) / 2
        update[1::2, 1::2] = (ll + lh + hl + hh) / 2
        expected.append(image + 0.5 * update[:rows, :cols].reshape(-1, 8))
    np.testing.assert_allclose(out.detach().numpy(), np.stack(expected), rtol=1e-9, atol=1e-12)


def test_fada_links_its_low_frequency_tokens():
    torch.manual_seed(0)
    plugin = FADA(PluginConfig(method="fada", num_tokens=5, rank=2, query_dim=4), 2, 8)
    torch.testing.assert_close(plugin.queries(), plugin.linker(plugin.low.tokens_a @ plugin.low.tokens_b))


# --- all four: the training contract -----------------------------------------------------------

@pytest.mark.parametrize("method", ["set", "fada"])
def test_token_methods_with_zero_scale_give_the_frozen_models_output(method):
    model = _tiny(method).eval()
    with torch.no_grad():
        model.plugin.scale.zero_()
        x = torch.randn(1, 3, 48, 32)
        assert torch.equal(model(x)[0], _frozen_twin(model).eval()(x)[0])


@pytest.mark.parametrize("method", NEW)
def test_gradients_reach_only_the_method_and_frozen_weights_stay_bit_identical(method):
    model = _tiny(method, bands=4).train()
    frozen = {k: v.clone() for k, v in model.state_dict().items() if k.startswith("backbone.")}
    assert all(not p.requires_grad for p in model.backbone.parameters())
    x, labels = torch.randn(2, 4, 48, 32), torch.randint(0, 4, (2, 48, 32))
    for step in range(2):  # the second step reaches what the zero up-projection hid at the first
        sum(model.loss(x, labels).values()).backward()
        if step == 0:
            trainable = [n for n, p in model.named_parameters() if p.requires_grad]
            assert trainable and all(n.startswith(("plugin.", "head.")) for n in trainable)
            assert all(p.grad is None for p in model.backbone.parameters())
            opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=0.1,
                                    weight_decay=0.05)
            opt.step()
            opt.zero_grad()
    reached = {n for n, p in model.plugin.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    assert reached == {n for n, _ in model.plugin.named_parameters()}, method
    after = model.state_dict()
    for key, value in frozen.items():
        assert torch.equal(value, after[key]), key


@pytest.mark.parametrize("method", NEW)
def test_eval_is_deterministic(method):
    model = _tiny(method).eval()
    x = torch.randn(1, 3, 48, 48)
    with torch.no_grad():
        a, _ = model(x)
        b, _ = model(x)
    assert torch.equal(a, b)
