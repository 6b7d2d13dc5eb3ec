"""The SpectralMoE equations on small tensors, against hand computations in numpy."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.stats import norm

from spectralmoe_cli.config import PluginConfig, load_config
from spectralmoe_cli.nn.fusion import fuse_code, fuse_paper
from spectralmoe_cli.nn.moe import SpectralMoE, cv_squared, route
from spectralmoe_cli.nn.segmentor import Segmentor


def _np_cv2(x: np.ndarray) -> float:
    return float(np.var(x, ddof=1) / (np.mean(x) ** 2 + 1e-10))


def test_routing_picks_top_k_of_negative_distances():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(7, 5, generator=g, dtype=torch.float64)
    w = torch.randn(5, 4, generator=g, dtype=torch.float64)
    gates, load = route(x, w, torch.zeros_like(w), k=2, gating="laplace", norm=2.0, noisy=False)
    xn, wn = x.numpy(), w.numpy()
    logits = -np.sqrt(((xn[:, :, None] - wn[None]) ** 2).sum(1))  # [n, E]
    for i in range(7):
        top = np.argsort(-logits[i])[:2]
        expected = np.zeros(4)
        e = np.exp(logits[i, top] - logits[i, top].max())
        expected[top] = e / e.sum()
        np.testing.assert_allclose(gates[i].numpy(), expected, rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(load.numpy(), (gates.numpy() > 0).sum(0))


def test_routing_l1_and_gaussian_distances():
    g = torch.Generator().manual_seed(2)
    x = torch.randn(6, 3, generator=g, dtype=torch.float64)
    w = torch.randn(3, 5, generator=g, dtype=torch.float64)
    l1 = -np.abs(x.numpy()[:, :, None] - w.numpy()[None]).sum(1)
    gates, _ = route(x, w, torch.zeros_like(w), 1, "laplace", 1.0, False)
    np.testing.assert_array_equal(gates.argmax(1).numpy(), l1.argmax(1))
    sq = -((x.numpy()[:, :, None] - w.numpy()[None]) ** 2).sum(1)
    gates, _ = route(x, w, torch.zeros_like(w), 1, "gaussian", 2.0, False)
    np.testing.assert_array_equal(gates.argmax(1).numpy(), sq.argmax(1))
    # top-1: the gate of the chosen expert is exactly 1
    assert torch.all(gates.sum(1) == 1)


def test_noisy_load_is_the_probability_of_staying_in_the_top_k():
    torch.manual_seed(3)
    x = torch.randn(9, 4, dtype=torch.float64)
    w_gate = torch.randn(4, 3, dtype=torch.float64)
    w_noise = torch.randn(4, 3, dtype=torch.float64) * 0.3
    torch.manual_seed(11)
    gates, load = route(x, w_gate, w_noise, 1, "laplace", 2.0, True)
    # replay the same noise draw by hand
    torch.manual_seed(11)
    clean = -torch.cdist(x, w_gate.t()).numpy()
    noise_std = torch.nn.functional.softplus(x @ w_noise).numpy() + 1e-2
    noisy = clean + torch.randn(9, 3, dtype=torch.float64).numpy() * noise_std
    top2 = -np.sort(-noisy, axis=1)[:, :2]
    th_in, th_out = top2[:, 1:2], top2[:, 0:1]
    prob = np.where(noisy > th_in, norm.cdf((clean - th_in) / noise_std),
                    norm.cdf((clean - th_out) / noise_std))
    np.testing.assert_allclose(load.numpy(), prob.sum(0), rtol=1e-9)
    np.testing.assert_array_equal(gates.argmax(1).numpy(), noisy.argmax(1))


def test_cv_squared_matches_numpy():
    x = torch.tensor([3.0, 1.0, 0.0, 4.0])
    assert float(cv_squared(x)) == pytest.approx(_np_cv2(x.numpy()), rel=1e-6)
    assert float(cv_squared(torch.tensor([2.0]))) == 0.0


def _plugin(**kw) -> SpectralMoE:
    cfg = PluginConfig(num_experts=3, num_tokens=5, rank=2, **kw)
    torch.manual_seed(0)
    return SpectralMoE(cfg, num_layers=2, dim=8).double()


@pytest.mark.parametrize("fusion", ["paper", "code"])
def test_zero_b_gives_the_residual_of_the_delta_mlp(fusion):
    plugin = _plugin(fusion=fusion).eval()
    torch.nn.init.zeros_(plugin.mlp_token2feat.bias)
    f = torch.randn(2, 6, 8, dtype=torch.float64)
    d = torch.randn(2, 6, 8, dtype=torch.float64)
    out, _ = plugin(0, f, d)
    w, b, alpha = plugin.mlp_delta_f.weight, plugin.mlp_delta_f.bias, plugin.scale
    expected = f + alpha * (f @ w.t() + b)
    torch.testing.assert_close(out, expected, rtol=1e-12, atol=1e-12)


def test_zero_b_with_token_bias_adds_the_hand_computed_constant():
    """T = 0: every token sees uniform attention over m tokens, so Δz = (m-1)/m · b_t."""
    plugin = _plugin(fusion="code").eval()
    f = torch.randn(1, 4, 8, dtype=torch.float64)
    out, _ = plugin(1, f, torch.randn(1, 4, 8, dtype=torch.float64))
    m, n = 5, 4
    dz = (m - 1) / m * plugin.mlp_token2feat.bias
    delta = dz / n  # code fusion: uniform softmax over n positions, diagonal entry 1/n
    w, b, alpha = plugin.mlp_delta_f.weight, plugin.mlp_delta_f.bias, plugin.scale
    torch.testing.assert_close(out, f + alpha * ((f + delta) @ w.t() + b), rtol=1e-12, atol=1e-12)


def test_expert_output_equals_the_papers_sum_for_the_routed_expert():
    plugin = _plugin(fusion="paper").eval()
    torch.nn.init.normal_(plugin.experts_b)
    torch.nn.init.normal_(plugin.w_gate)
    f = torch.randn(1, 3, 8, dtype=torch.float64)
    d = torch.randn(1, 3, 8, dtype=torch.float64)
    tokens = (plugin.experts_a[0] @ plugin.experts_b[0]).detach().numpy()  # [E, m, dim]
    wt, bt = plugin.mlp_token2feat.weight.detach().numpy(), plugin.mlp_token2feat.bias.detach().numpy()
    refined = []
    for stream, feats in enumerate((f, d)):
        x = feats[0].numpy()
        wg = plugin.w_gate[0, stream].detach().numpy()
        rows = []
        for i in range(3):
            e = int(np.argmax(-np.linalg.norm(x[i][:, None] - wg, axis=0)))
            a = np.exp(tokens[e] @ x[i] / math.sqrt(8))
            a /= a.sum()
            rows.append(sum(a[t] * (wt @ tokens[e][t] + bt) for t in range(1, 5)))
        refined.append(np.stack(rows))
    dv, dd = refined
    s = dv @ dd.T / math.sqrt(8)
    s = np.exp(s - s.max(1, keepdims=True))
    s /= s.sum(1, keepdims=True)
    delta = s @ dd
    wf, bf = plugin.mlp_delta_f.weight.detach().numpy(), plugin.mlp_delta_f.bias.detach().numpy()
    expected = f[0].numpy() + float(plugin.scale) * ((delta + f[0].numpy()) @ wf.T + bf)
    out, _ = plugin(0, f, d)
    np.testing.assert_allclose(out[0].detach().numpy(), expected, rtol=1e-10, atol=1e-12)


def test_fusions_against_explicit_softmax():
    dv = torch.randn(2, 5, 4, dtype=torch.float64)
    dd = torch.randn(2, 5, 4, dtype=torch.float64)
    attn = torch.softmax(dv @ dd.transpose(1, 2) / 2.0, dim=-1)
    torch.testing.assert_close(fuse_paper(dv, dd), attn @ dd)
    s = torch.softmax(dd @ dv.transpose(1, 2) / 2.0, dim=-1)  # rows depth, softmax over visual
    expected = torch.einsum("bnn,bnc->bnc", s, dv)  # the released code's einsum, verbatim
    torch.testing.assert_close(fuse_code(dv, dd), expected)


def test_balance_loss_is_1000_times_the_cv_squared_terms():
    plugin = _plugin().eval()
    torch.nn.init.normal_(plugin.w_gate)
    f = torch.randn(2, 6, 8, dtype=torch.float64)
    d = torch.randn(2, 6, 8, dtype=torch.float64)
    _, loss = plugin(1, f, d)
    total = 0.0
    for stream, feats in enumerate((f, d)):
        x = feats.reshape(-1, 8).numpy()
        wg = plugin.w_gate[1, stream].detach().numpy()
        choice = np.argmax(-np.linalg.norm(x[:, :, None] - wg[None], axis=1), axis=1)
        gates = np.eye(3)[choice]
        total += _np_cv2(gates.sum(0)) + _np_cv2((gates > 0).sum(0).astype(float))
    assert float(loss) == pytest.approx(1000.0 * total, rel=1e-6)


def test_query_linking_formula():
    plugin = _plugin(query_dim=4)
    torch.nn.init.normal_(plugin.experts_b)
    q = plugin.queries()
    mean_tokens = (plugin.experts_a @ plugin.experts_b).mean(1)  # [L, m, d]
    ql = plugin.linker.transform(mean_tokens)
    pooled = torch.cat([ql.max(0).values, ql.mean(0), ql[-1]], -1)
    torch.testing.assert_close(q, plugin.linker.merge(pooled))
    assert q.shape == (5, 4)


@pytest.fixture
def tiny_moe():
    torch.manual_seed(0)
    return Segmentor(load_config("spectralmoe_tiny").with_data(["red", "green", "blue", "nir"], 4))


def test_gradients_reach_experts_and_routers(tiny_moe):
    model = tiny_moe.train()
    x = torch.randn(2, 4, 32, 32)
    labels = torch.randint(0, 4, (2, 32, 32))
    losses = model.loss(x, labels)
    sum(losses.values()).backward()
    plugin = model.plugin
    for name in ("experts_b", "w_gate", "w_noise", "scale"):
        grad = getattr(plugin, name).grad
        assert grad is not None and grad.abs().sum() > 0, name
    # A gets gradient once B has moved off zero (T = A B)
    assert plugin.experts_a.grad.abs().sum() == 0
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    opt.step()
    opt.zero_grad()
    sum(model.loss(x, labels).values()).backward()
    assert plugin.experts_a.grad.abs().sum() > 0


def test_frozen_backbones_are_bit_identical_after_a_step(tiny_moe):
    model = tiny_moe.train()
    before = {k: v.clone() for k, v in model.state_dict().items()
              if k.startswith(("backbone.", "depth_model."))}
    assert all(not p.requires_grad for p in model.backbone.parameters())
    assert all(not p.requires_grad for p in model.depth_model.parameters())
    assert not model.backbone.training and not model.depth_model.training
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=0.1,
                            weight_decay=0.05)
    losses = model.loss(torch.randn(2, 4, 32, 32), torch.randint(0, 4, (2, 32, 32)))
    sum(losses.values()).backward()
    opt.step()
    after = model.state_dict()
    for key, value in before.items():
        assert torch.equal(value, after[key]), key
    assert not torch.equal(model.plugin.experts_b, torch.zeros_like(model.plugin.experts_b))


def test_eval_mode_is_deterministic(tiny_moe):
    model = tiny_moe.eval()
    x = torch.randn(1, 4, 48, 48)
    with torch.no_grad():
        a, _ = model(x)
        b, _ = model(x)
    assert torch.equal(a, b)
    model.train()
    torch.manual_seed(0)
    _, aux1 = model(x)
    torch.manual_seed(1)
    _, aux2 = model(x)
    assert float(aux1) != float(aux2)  # training-time router noise is really drawn
