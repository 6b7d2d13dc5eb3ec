"""The Mask2Former head: matching, deformable attention, query linking, training on real tiles."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import assert_one_line_error, run_cli
from PIL import Image

from spectralmoe_cli.checkpoint import BandInfo, CheckpointMeta, ClassInfo
from spectralmoe_cli.config import HeadConfig, load_config, parse_config, zoo_dir
from spectralmoe_cli.engine.info import describe
from spectralmoe_cli.engine.runtime.models import (
    build_model,
    load_model_config,
    model_from_checkpoint,
    save_model,
)
from spectralmoe_cli.errors import ConfigError
from spectralmoe_cli.nn.catalog import PLUGINS
from spectralmoe_cli.nn.deform_attn import MultiScaleDeformableAttention
from spectralmoe_cli.nn.mask2former import Mask2FormerHead
from spectralmoe_cli.nn.mask_loss import mask_losses
from spectralmoe_cli.nn.matching import hungarian, match, matching_cost

TINY = "spectralmoe_tiny_m2f"
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def test_hungarian_finds_the_least_total_cost_where_greedy_does_not():
    cost = torch.tensor([[1.0, 2.0, 8.0],
                         [2.0, 9.0, 9.0],
                         [9.0, 9.0, 3.0],
                         [5.0, 5.0, 5.0]])
    rows, cols = hungarian(cost)
    pairs = dict(zip(rows.tolist(), cols.tolist()))
    # Greedy takes the 1.0, then 3.0, then 5.0 (total 9); the optimum gives up the 1.0 (total 7).
    best = min(sum(float(cost[r, c]) for c, r in enumerate(chosen))
               for chosen in itertools.permutations(range(4), 3))
    assert best == 7.0
    assert pairs == {0: 1, 1: 0, 2: 2}


def _hand_made_labels() -> torch.Tensor:
    """32x32: class 0 on the left half, class 3 top right, class 5 bottom right, an ignored band."""
    labels = torch.zeros(32, 32, dtype=torch.long)
    labels[:16, 16:] = 3
    labels[16:, 16:] = 5
    labels[:, 14:16] = 255
    return labels


def _logits_for(mask: torch.Tensor) -> torch.Tensor:
    """Confident stride-4 mask logits drawing ``mask`` [32, 32]."""
    small = F.avg_pool2d(mask.float()[None, None], 4)[0, 0]
    return 10.0 * (2.0 * small - 1.0)


def test_matcher_pairs_each_class_mask_with_the_query_that_draws_it():
    torch.manual_seed(0)
    labels = _hand_made_labels()
    classes = torch.tensor([0, 3, 5])
    masks = torch.stack([
        _logits_for(labels == 5),                      # query 0 draws class 5
        torch.full((8, 8), 10.0),                      # query 1: everything
        torch.full((8, 8), -10.0),                     # query 2: nothing
        _logits_for(labels == 0),                      # query 3 draws class 0
        _logits_for(labels == 3),                      # query 4 draws class 3
    ])
    class_logits = torch.zeros(5, 7)  # no opinion on classes: the masks decide
    rows, cols = match(class_logits, masks, labels, classes, 512, (2.0, 5.0, 5.0))
    assert {int(r): int(classes[c]) for r, c in zip(rows, cols)} == {0: 5, 3: 0, 4: 3}


def test_class_scores_decide_between_identical_masks():
    labels = _hand_made_labels()
    classes = torch.tensor([0])
    masks = torch.stack([_logits_for(labels == 0)] * 2)
    class_logits = torch.zeros(2, 7)
    class_logits[1, 0] = 5.0
    rows, cols = match(class_logits, masks, labels, classes, 256, (2.0, 5.0, 5.0))
    assert rows.tolist() == [1] and cols.tolist() == [0]


def test_ignored_points_do_not_change_the_matching_cost():
    torch.manual_seed(0)
    point_labels = torch.tensor([0, 0, 3, 255, 255, 3, 0, 255])
    classes = torch.tensor([0, 3])
    logits = torch.randn(4, 8)
    other = logits.clone()
    other[:, point_labels == 255] = torch.randn(4, 3) * 50.0
    class_logits = torch.randn(4, 7)
    weights = (2.0, 5.0, 5.0)
    base = matching_cost(class_logits, logits, point_labels, classes, weights)
    torch.testing.assert_close(matching_cost(class_logits, other, point_labels, classes, weights), base)
    changed = logits.clone()
    changed[:, 0] += 5.0
    assert not torch.allclose(matching_cost(class_logits, changed, point_labels, classes, weights), base)


def test_ignored_pixels_take_no_part_in_the_mask_losses():
    torch.manual_seed(0)
    labels = torch.full((1, 32, 32), 255)
    labels[:, :, :16] = 2
    everywhere = torch.full((1, 8, 8), 20.0)  # right on the class, "wrong" only where ignored
    bce, dice = mask_losses(everywhere, labels, torch.tensor([2]), 256, 1.0)
    assert float(bce) < 1e-3 and float(dice) < 0.01
    labels[:, :, 16:] = 0  # now those pixels are another class: the same mask is half wrong
    bce, dice = mask_losses(everywhere, labels, torch.tensor([2]), 256, 1.0)
    assert float(bce) > 5.0 and float(dice) > 0.2


def _identity_attention(num_levels: int, offset: tuple[float, float]) -> MultiScaleDeformableAttention:
    attn = MultiScaleDeformableAttention(dim=2, num_heads=1, num_levels=num_levels, num_points=1)
    with torch.no_grad():
        for proj in (attn.value_proj, attn.output_proj):
            proj.weight.copy_(torch.eye(2))
            proj.bias.zero_()
        attn.sampling_offsets.bias.copy_(torch.tensor(offset).repeat(num_levels))
    return attn


def test_deformable_attention_reads_the_cell_it_points_at():
    value = torch.arange(2 * 4 * 6, dtype=torch.float32).view(1, 24, 2)  # a 4x6 grid, 2 channels
    reference = torch.tensor([[(2 + 0.5) / 6, (1 + 0.5) / 4]])  # the centre of cell (row 1, col 2)
    query = torch.zeros(1, 1, 2)
    at_centre = _identity_attention(1, (0.0, 0.0))(query, value, [(4, 6)], reference)
    torch.testing.assert_close(at_centre[0, 0], value[0, 1 * 6 + 2])
    one_right_one_down = _identity_attention(1, (1.0, 1.0))(query, value, [(4, 6)], reference)
    torch.testing.assert_close(one_right_one_down[0, 0], value[0, 2 * 6 + 3])


def test_deformable_attention_averages_levels_of_different_sizes():
    coarse = torch.tensor([[1.0, 10.0], [2.0, 20.0], [3.0, 30.0], [4.0, 40.0]])  # 2x2
    fine = torch.arange(32, dtype=torch.float32).view(16, 2) + 100.0             # 4x4
    value = torch.cat([coarse, fine]).unsqueeze(0)
    reference = torch.tensor([[0.25, 0.75]])  # centre of coarse cell (1, 0); a fine-cell corner
    attn = _identity_attention(2, (1.0, 0.0))  # one cell to the right, in each level's own cells
    out = attn(torch.zeros(1, 1, 2), value, [(2, 2), (4, 4)], reference)
    fine_at_point = fine.view(4, 4, 2)[2:4, 1:3].mean(dim=(0, 1))  # bilinear between four cells
    torch.testing.assert_close(out[0, 0], (coarse[3] + fine_at_point) / 2)


@pytest.fixture
def tiny_m2f():
    torch.manual_seed(0)
    return build_model(load_config(TINY))


def test_semantic_output_has_the_input_resolution(tiny_m2f):
    model = tiny_m2f.eval()
    x = torch.randn(2, 3, 70, 50)  # not a multiple of the patch (16)
    with torch.no_grad():
        logits, _ = model(x)
        output, _ = model.head_output(x)
    assert logits.shape == (2, 6, 70, 50)
    assert len(output.class_logits) == len(output.mask_logits) == 1 + 3
    assert output.mask_logits[-1].shape == (2, 16, 80 // 4, 64 // 4)
    scores = model.head.segmentation(output, (37, 53))
    assert scores.shape == (2, 6, 37, 53)
    assert float(scores.min()) >= 0.0


def _head_only_loss(model, x, labels) -> torch.Tensor:
    losses = model.loss(x, labels)
    return sum(v for k, v in losses.items() if k != "loss_aux")


def test_linked_queries_reach_the_decoder(tiny_m2f):
    model = tiny_m2f.train()
    assert model.head.query_embed is None and model.head.query_feat is not None
    torch.nn.init.normal_(model.plugin.experts_b)  # non-zero tokens, so transform sees input
    x = torch.randn(2, 3, 64, 64)
    labels = torch.randint(0, 6, (2, 64, 64))
    _head_only_loss(model, x, labels).backward()
    linker = model.plugin.linker
    for p in (linker.transform.weight, linker.transform.bias, linker.merge.weight):
        assert p.grad is not None and p.grad.abs().sum() > 0
    model.eval()
    with torch.no_grad():
        before, _ = model(x)
        linker.merge.bias.add_(1.0)
        after, _ = model(x)
    assert not torch.allclose(before, after)


@pytest.mark.parametrize("method", PLUGINS.names())
def test_every_method_trains_the_mask2former_head(method):
    base = load_config(f"{method}_tiny").model_dump()
    head = load_config(TINY).head.model_dump()
    head["replace_query_feat"] = method in ("rein", "depthforge")
    torch.manual_seed(0)
    model = build_model(parse_config({**base, "head": head}, method)).train()
    x = torch.randn(1, 3, 40, 40)
    logits, _ = model(x)
    assert logits.shape == (1, 6, 40, 40)
    sum(model.loss(x, torch.randint(0, 6, (1, 40, 40))).values()).backward()
    linked = model.plugin.links_queries
    assert linked == PLUGINS.get(method).has_tokens
    queries = model.plugin.linker.merge.weight if linked else model.head.query_embed.weight
    assert queries.grad is not None and queries.grad.abs().sum() > 0
    assert all(p.grad is not None for p in model.head.parameters())
    replaced = model.head.queries_to_feat is not None
    assert replaced == (model.head.query_feat is None) == (method in ("rein", "depthforge"))


def test_mismatched_query_count_is_a_config_error(tmp_path):
    text = (zoo_dir() / f"{TINY}.toml").read_text().replace("num_queries = 16", "num_queries = 10")
    bad = tmp_path / "bad.toml"
    bad.write_text(text)
    with pytest.raises(ConfigError, match="num_queries=10 must equal plugin.num_tokens=16"):
        load_model_config(str(bad))
    cfg = HeadConfig(type="mask2former", channels=32, num_queries=16, decoder_layers=1,
                     pixel_decoder_layers=1, num_heads=4)
    with pytest.raises(ConfigError, match="query_dim=16 must equal head.channels=32"):
        Mask2FormerHead(48, 6, cfg, query_dim=16)
    head = Mask2FormerHead(48, 6, cfg, query_dim=32)
    feats = [torch.randn(1, 48, 32 // s, 32 // s) for s in (1, 2, 4, 8)]
    with pytest.raises(ConfigError, match="set head.num_queries = plugin.num_tokens"):
        head(feats, torch.randn(10, 32))


@pytest.mark.slow
def test_mismatched_query_count_is_a_one_line_cli_error(tmp_path):
    text = (zoo_dir() / f"{TINY}.toml").read_text().replace("num_queries = 16", "num_queries = 10")
    bad = tmp_path / "bad.toml"
    bad.write_text(text)
    assert_one_line_error(run_cli("info", "--model", bad), 2, "num_queries=10", "plugin.num_tokens=16")


def test_an_all_ignored_tile_trains_only_the_no_object_class(tiny_m2f):
    model = tiny_m2f.train()
    losses = model.loss(torch.randn(1, 3, 32, 32), torch.full((1, 32, 32), 255))
    assert losses["loss_mask"].detach().item() == 0.0 and losses["loss_dice"].detach().item() == 0.0
    assert losses["loss_cls"].detach().item() > 0.0
    sum(losses.values()).backward()
    assert model.head.cls_embed.weight.grad.abs().sum() > 0


def test_checkpoint_round_trip_keeps_the_head(tiny_m2f, tmp_path):
    model = tiny_m2f.eval()
    torch.nn.init.normal_(model.plugin.experts_b)
    path = tmp_path / "m2f.safetensors"
    meta = CheckpointMeta(
        model=model.cfg, bands=[BandInfo(name=b) for b in model.cfg.data.bands],
        mean=[0.5] * 3, std=[0.2] * 3, contains=[], provenance={"test": True},
        classes=[ClassInfo(value=i, name=f"class{i}", color="#00ff00") for i in range(6)])
    save_model(path, model, meta)
    loaded, _ = model_from_checkpoint(path)
    x = torch.randn(1, 3, 48, 48)
    with torch.no_grad():
        assert torch.equal(loaded(x)[0], model(x)[0])


def _potsdam_batch(shared_data) -> tuple[torch.Tensor, torch.Tensor]:
    """Four 128x128 crops of the Potsdam tile (subsampled by 2), ImageNet-normalised.

    The annotation PNG holds 0..5: 0 is the eroded-boundary ignore label (thin bands at most
    ~13 px wide) and k is class k-1 (mmseg reduce_zero_label), so 0 -> 255 and k -> k-1.
    """
    root = shared_data / "mmseg_isprs_loveda_samples" / "potsdam"
    image = np.asarray(Image.open(root / "img" / "2_10_0_0_512_512.png").convert("RGB"))[::2, ::2]
    ann = np.asarray(Image.open(root / "ann" / "2_10_0_0_512_512.png")).astype(np.int64)[::2, ::2]
    assert set(np.unique(ann)) <= set(range(7))
    labels = torch.from_numpy(np.where(ann == 0, 255, ann - 1))
    x = torch.from_numpy(image.copy()).permute(2, 0, 1).float() / 255.0
    x = (x - torch.tensor(IMAGENET_MEAN)[:, None, None]) / torch.tensor(IMAGENET_STD)[:, None, None]
    corners = [(0, 0), (0, 128), (128, 0), (128, 128)]
    return (torch.stack([x[:, i:i + 128, j:j + 128] for i, j in corners]),
            torch.stack([labels[i:i + 128, j:j + 128] for i, j in corners]))


@pytest.mark.slow
def test_training_on_potsdam_lowers_the_mask2former_loss(shared_data):
    x, labels = _potsdam_batch(shared_data)
    torch.manual_seed(0)
    model = build_model(load_config(TINY)).train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad],
                                  lr=4e-3, weight_decay=0.05)
    history = []
    for _ in range(10):
        losses = model.loss(x, labels)
        optimizer.zero_grad()
        sum(losses.values()).backward()
        optimizer.step()
        history.append(sum(v for k, v in losses.items() if k != "loss_aux").item())
    first, last = np.mean(history[:3]), np.mean(history[-3:])
    print(f"mask2former loss on Potsdam: {history[0]:.2f} -> {history[-1]:.2f} "
          f"(mean of first 3 {first:.2f}, last 3 {last:.2f})")
    assert all(np.isfinite(history))
    assert last < 0.9 * first


def _expected_head_parameters(in_dim: int, num_classes: int, linked: bool, replace: bool) -> int:
    """Mask2Former's parameters by hand, for the reference shapes (256 channels, 100 queries)."""
    c, q = 256, 100
    linear = lambda i, o: i * o + o  # noqa: E731
    gn = ln = 2 * c
    attn = 4 * c * c + 4 * c  # nn.MultiheadAttention: in_proj (3) + out_proj
    deform = linear(c, 8 * 3 * 4 * 2) + linear(c, 8 * 3 * 4) + 2 * linear(c, c)
    pixel_decoder = (3 * (linear(in_dim, c) + gn) + 3 * c
                     + 6 * (deform + ln + linear(c, 1024) + linear(1024, c) + ln)
                     + in_dim * c + gn + 9 * c * c + gn + linear(c, c))
    decoder = 9 * (2 * attn + linear(c, 2048) + linear(2048, c) + 3 * ln)
    queries = (0 if linked else q * c) + (linear(c, c) if replace else q * c)
    return pixel_decoder + 3 * c + decoder + ln + queries + linear(c, num_classes + 1) + 3 * linear(c, c)


@pytest.mark.parametrize("model,plugin,linked,replace", [
    ("spectralmoe_dinov3_vitl16", 5_737_985, True, False),
    ("rein_dinov3_vitl16", 2_990_081, True, True),
    ("frozen_dinov3_vitl16", 0, False, False),
])
def test_production_configs_use_mask2former_and_keep_the_plugin_counts(model, plugin, linked, replace):
    report = describe(model)
    counts = report["parameters"]["trainable"]
    print(f"{model}: plugin {counts['plugin']:,}, mask2former head {counts['head']:,}")
    assert report["head"]["type"] == "mask2former"
    assert report["head"]["replace_query_feat"] is replace
    assert counts["plugin"] == plugin
    assert counts["head"] == _expected_head_parameters(1024, 6, linked, replace)

