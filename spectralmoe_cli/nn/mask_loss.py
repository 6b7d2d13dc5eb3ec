"""Mask2Former's semantic-segmentation loss (mmdet ``Mask2FormerHead.loss_by_feat``).

Every decoder prediction (the one before the first layer and one per layer) is matched to the
label map's class masks on its own and scored with: cross-entropy over classes + no-object,
sigmoid BCE and dice on the matched masks, read at points chosen by importance sampling (mostly
where the prediction is least certain). Pixels labelled 255 take part in no mask loss.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..labels import IGNORE_INDEX
from .matching import label_points, match, point_sample, present_classes

CLASS_WEIGHT, MASK_WEIGHT, DICE_WEIGHT = 2.0, 5.0, 5.0
NO_OBJECT_WEIGHT = 0.1
OVERSAMPLE_RATIO, IMPORTANCE_RATIO = 3.0, 0.75


def uncertain_points(mask_logits: torch.Tensor, num_points: int) -> torch.Tensor:
    """Points [M, P, 2] per mask [M, h, w]: 75 % the least certain of 3P random candidates, the
    rest uniform (PointRend's importance sampling)."""
    count = mask_logits.shape[0]
    device = mask_logits.device
    candidates = torch.rand(count, int(num_points * OVERSAMPLE_RATIO), 2, device=device)
    certainty = point_sample(mask_logits.unsqueeze(1), candidates).squeeze(1).abs()
    num_uncertain = int(num_points * IMPORTANCE_RATIO)
    index = (-certainty).topk(num_uncertain, dim=1).indices
    chosen = candidates.gather(1, index.unsqueeze(-1).expand(-1, -1, 2))
    uniform = torch.rand(count, num_points - num_uncertain, 2, device=device)
    return torch.cat([chosen, uniform], dim=1)


def mask_losses(mask_logits: torch.Tensor, labels: torch.Tensor, classes: torch.Tensor,
                num_points: int, num_masks: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(BCE, dice) of matched masks [M, h, w] against ``labels`` [M, H, W] == ``classes`` [M].

    BCE is the mean over a mask's valid points; both are summed over masks, divided by
    ``num_masks``.
    """
    with torch.no_grad():
        points = uncertain_points(mask_logits, num_points)
        point_labels = label_points(labels, points)
        valid = (point_labels != IGNORE_INDEX).float()
        targets = (point_labels == classes[:, None]).float()
    logits = point_sample(mask_logits.unsqueeze(1), points).squeeze(1)
    bce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none") * valid
    bce = (bce.sum(dim=1) / valid.sum(dim=1).clamp(min=1.0)).sum() / num_masks
    probs = logits.sigmoid() * valid
    dice = 1.0 - (2.0 * (probs * targets).sum(dim=1) + 1.0) / (
        probs.sum(dim=1) + targets.sum(dim=1) + 1.0)
    return bce, dice.sum() / num_masks


def layer_loss(class_logits: torch.Tensor, mask_logits: torch.Tensor, labels: torch.Tensor,
               targets: list[torch.Tensor], num_points: int) -> dict[str, torch.Tensor]:
    """Losses of one prediction: ``class_logits`` [B, Q, K+1], ``mask_logits`` [B, Q, h, w]."""
    batch, _, num_labels = class_logits.shape
    no_object = num_labels - 1
    weights = (CLASS_WEIGHT, MASK_WEIGHT, DICE_WEIGHT)
    class_targets = torch.full(class_logits.shape[:2], no_object, dtype=torch.long,
                               device=class_logits.device)
    images, queries, matched = [], [], []
    for b in range(batch):
        rows, cols = match(class_logits[b], mask_logits[b], labels[b], targets[b], num_points, weights)
        class_targets[b, rows] = targets[b][cols]
        images.append(torch.full_like(rows, b))
        queries.append(rows)
        matched.append(targets[b][cols])
    class_weight = torch.ones(num_labels, device=class_logits.device)
    class_weight[no_object] = NO_OBJECT_WEIGHT
    loss_cls = F.cross_entropy(class_logits.flatten(0, 1).float(), class_targets.flatten(),
                               weight=class_weight)
    images_t, queries_t = torch.cat(images), torch.cat(queries)
    if images_t.numel() == 0:
        zero = mask_logits.sum() * 0.0
        return {"loss_cls": CLASS_WEIGHT * loss_cls, "loss_mask": zero, "loss_dice": zero}
    bce, dice = mask_losses(mask_logits[images_t, queries_t].float(), labels[images_t],
                            torch.cat(matched), num_points, float(images_t.numel()))
    return {"loss_cls": CLASS_WEIGHT * loss_cls, "loss_mask": MASK_WEIGHT * bce,
            "loss_dice": DICE_WEIGHT * dice}


def set_loss(class_logits: list[torch.Tensor], mask_logits: list[torch.Tensor],
             labels: torch.Tensor, num_points: int) -> dict[str, torch.Tensor]:
    """Each loss summed over every decoder prediction; ``labels`` [B, H, W] with 255 = ignore."""
    labels = labels.long()
    targets = [present_classes(label) for label in labels]
    total: dict[str, torch.Tensor] = {}
    for classes, masks in zip(class_logits, mask_logits):
        for name, value in layer_loss(classes, masks, labels, targets, num_points).items():
            total[name] = total.get(name, 0.0) + value
    return total
