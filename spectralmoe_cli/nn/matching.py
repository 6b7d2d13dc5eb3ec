"""Point sampling and the Hungarian matching of predicted masks to a label map's class masks.

Mask2Former compares masks on sampled points rather than on every pixel: costs and losses then do
not grow with the tile size. A label map gives one target mask per class present; ignored pixels
(255) belong to no target and are left out of every mask cost.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment

from ..labels import IGNORE_INDEX


def point_sample(maps: torch.Tensor, points: torch.Tensor, mode: str = "bilinear") -> torch.Tensor:
    """Values of ``maps`` [N, C, H, W] at ``points`` [N, P, 2] ((x, y) in [0, 1]): [N, C, P]."""
    grid = (2.0 * points - 1.0).unsqueeze(2).to(maps.dtype)
    return F.grid_sample(maps, grid, mode=mode, align_corners=False).squeeze(3)


def label_points(labels: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """Labels [N, H, W] read at ``points`` [N, P, 2] by nearest neighbour: [N, P], exact values."""
    values = point_sample(labels.unsqueeze(1).float(), points, mode="nearest")
    return values.squeeze(1).round().long()


def present_classes(labels: torch.Tensor) -> torch.Tensor:
    """The classes of a label map [H, W], ignore excluded, ascending: one target mask each."""
    classes = labels.unique()
    return classes[classes != IGNORE_INDEX]


def matching_cost(class_logits: torch.Tensor, point_logits: torch.Tensor,
                  point_labels: torch.Tensor, classes: torch.Tensor,
                  weights: tuple[float, float, float]) -> torch.Tensor:
    """Cost [Q, G] of giving query q the target of ``classes[g]``: class, sigmoid BCE and dice.

    ``class_logits`` [Q, K+1], ``point_logits`` [Q, P] and ``point_labels`` [P] share the same
    points; ``weights`` are (class, bce, dice). Points on ignored pixels count for no target.
    """
    w_class, w_bce, w_dice = weights
    valid = (point_labels != IGNORE_INDEX).to(point_logits.dtype)
    targets = (point_labels[None, :] == classes[:, None]).to(point_logits.dtype)  # [G, P]
    cost_class = -class_logits.softmax(dim=-1)[:, classes]
    positive = F.binary_cross_entropy_with_logits(point_logits, torch.ones_like(point_logits),
                                                  reduction="none") * valid
    negative = F.binary_cross_entropy_with_logits(point_logits, torch.zeros_like(point_logits),
                                                  reduction="none") * valid
    cost_bce = (positive @ targets.T + negative @ (1.0 - targets).T) / valid.sum().clamp(min=1.0)
    probs = point_logits.sigmoid() * valid
    cost_dice = 1.0 - (2.0 * probs @ targets.T + 1.0) / (
        probs.sum(dim=-1)[:, None] + targets.sum(dim=-1)[None, :] + 1.0)
    return w_class * cost_class + w_bce * cost_bce + w_dice * cost_dice


def hungarian(cost: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The assignment (rows, cols) of least total cost, one column per row at most."""
    rows, cols = linear_sum_assignment(cost.detach().cpu().float().numpy())
    device = cost.device
    return (torch.as_tensor(rows, dtype=torch.long, device=device),
            torch.as_tensor(cols, dtype=torch.long, device=device))


@torch.no_grad()
def match(class_logits: torch.Tensor, mask_logits: torch.Tensor, labels: torch.Tensor,
          classes: torch.Tensor, num_points: int,
          weights: tuple[float, float, float]) -> tuple[torch.Tensor, torch.Tensor]:
    """Match one image's queries (``class_logits`` [Q, K+1], ``mask_logits`` [Q, h, w]) to the
    class masks of ``labels`` [H, W], compared on ``num_points`` uniform random points (as mmdet).

    Returns (query indices, indices into ``classes``).
    """
    points = torch.rand(1, num_points, 2, device=mask_logits.device)
    point_logits = point_sample(mask_logits.unsqueeze(0).float(), points)[0]
    point_labels = label_points(labels.unsqueeze(0), points)[0]
    cost = matching_cost(class_logits.float(), point_logits, point_labels, classes, weights)
    return hungarian(cost)
