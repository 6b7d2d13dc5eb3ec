"""Fusion of the visual and depth refinements Δv, Δd (both [B, N, d]) into one update Δf.

``paper``: Δf = softmax(Δv Δdᵀ / √d) Δd, visual tokens query the depth refinements (the
paper's equation). ``code``: the released code's einsum('bnn,bnc->bnc') keeps only the diagonal
of softmax(Δd Δvᵀ / √d), a per-token scalar gate on Δv; kept to reproduce released checkpoints.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def fuse_paper(dv: torch.Tensor, dd: torch.Tensor) -> torch.Tensor:
    return F.scaled_dot_product_attention(dv, dd, dd)


def fuse_code(dv: torch.Tensor, dd: torch.Tensor) -> torch.Tensor:
    scale = 1.0 / math.sqrt(dv.shape[-1])
    logits = (dd @ dv.transpose(-1, -2)) * scale  # rows: depth positions, softmax over visual
    diagonal = (dd * dv).sum(dim=-1) * scale
    gate = torch.exp(diagonal - torch.logsumexp(logits, dim=-1))
    return gate.unsqueeze(-1) * dv


FUSIONS = {"paper": fuse_paper, "code": fuse_code}
