"""Mask2Former decode head with token-linked queries (the paper's head; REIN's query linking).

Queries (100 by default) each predict a class (or no-object) and a mask. A masked-attention
decoder refines them, each layer attending to one of the pixel decoder's levels in turn (strides
32, 16, 8) and only inside the mask the previous prediction drew. When the plugin offers queries
(its learnable tokens, pooled over layers), they are the decoder's positional queries, so the
segmentation loss reaches the tokens through the head as well as through the features.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from ..config import HeadConfig
from ..errors import ConfigError
from .heads import Head, register_head
from .mask_loss import set_loss
from .pixel_decoder import NUM_LEVELS, PixelDecoder
from .position import sine_encoding


class Mask2FormerOutput(NamedTuple):
    """Predictions before the first decoder layer and after each: [B, Q, K+1], [B, Q, H/4, W/4]."""

    class_logits: list[torch.Tensor]
    mask_logits: list[torch.Tensor]


class DecoderLayer(nn.Module):
    """Masked cross-attention, self-attention, FFN: each residual and post-LayerNorm."""

    def __init__(self, dim: int, num_heads: int, ffn_dim: int) -> None:
        super().__init__()
        self.cross_attn = nn.MultiheadAttention(dim, num_heads, batch_first=True)
        self.norm1 = nn.LayerNorm(dim)
        self.self_attn = nn.MultiheadAttention(dim, num_heads, batch_first=True)
        self.norm2 = nn.LayerNorm(dim)
        self.ffn = nn.Sequential(nn.Linear(dim, ffn_dim), nn.ReLU(inplace=True), nn.Linear(ffn_dim, dim))
        self.norm3 = nn.LayerNorm(dim)
        for p in self.parameters():
            if p.dim() > 1:
                nn.init.xavier_normal_(p)

    def forward(self, query: torch.Tensor, query_pos: torch.Tensor, memory: torch.Tensor,
                memory_pos: torch.Tensor, attn_mask: torch.Tensor) -> torch.Tensor:
        attended = self.cross_attn(query + query_pos, memory + memory_pos, memory,
                                   attn_mask=attn_mask, need_weights=False)[0]
        query = self.norm1(query + attended)
        q = query + query_pos
        query = self.norm2(query + self.self_attn(q, q, query, need_weights=False)[0])
        return self.norm3(query + self.ffn(query))


@register_head("mask2former", uses_queries=True)
class Mask2FormerHead(Head):
    """``query_dim`` None: the plugin offers no tokens (frozen, LoRA), so positional queries are
    learned here; otherwise the plugin's queries are the positional queries."""

    def __init__(self, in_dim: int, num_classes: int, cfg: HeadConfig, query_dim: int | None) -> None:
        super().__init__()
        c = cfg.channels
        if c % cfg.num_heads or c % 4:
            raise ConfigError(f"head.channels={c} must be a multiple of 4 and of "
                              f"head.num_heads={cfg.num_heads}")
        if query_dim is not None and query_dim != c:
            raise ConfigError(f"plugin.query_dim={query_dim} must equal head.channels={c}: "
                              "linked queries enter the decoder as they are")
        self.channels, self.num_queries, self.num_heads = c, cfg.num_queries, cfg.num_heads
        self.num_points = cfg.num_points
        self.pixel_decoder = PixelDecoder(in_dim, c, cfg.pixel_decoder_layers, cfg.num_heads,
                                          cfg.pixel_decoder_ffn_dim, cfg.deform_points)
        self.level_embed = nn.Embedding(NUM_LEVELS, c)
        self.layers = nn.ModuleList(DecoderLayer(c, cfg.num_heads, cfg.ffn_dim)
                                    for _ in range(cfg.decoder_layers))
        self.post_norm = nn.LayerNorm(c)
        self.linked = query_dim is not None
        self.query_embed = None if self.linked else nn.Embedding(cfg.num_queries, c)
        replace = self.linked and cfg.replace_query_feat
        self.query_feat = None if replace else nn.Embedding(cfg.num_queries, c)
        self.queries_to_feat = nn.Linear(c, c) if replace else None
        self.cls_embed = nn.Linear(c, num_classes + 1)
        self.mask_embed = nn.Sequential(nn.Linear(c, c), nn.ReLU(inplace=True), nn.Linear(c, c),
                                        nn.ReLU(inplace=True), nn.Linear(c, c))

    @classmethod
    def summary(cls, cfg: HeadConfig, linked: bool) -> str:
        source = "the plugin's tokens" if linked else "learnable embeddings"
        return (f"{cfg.num_queries} queries from {source}, {cfg.pixel_decoder_layers} deformable "
                f"pixel-decoder layers, {cfg.decoder_layers} masked-attention decoder layers")

    def _queries(self, queries: torch.Tensor | None, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(content, positional) queries [B, Q, C]."""
        if self.linked:
            if queries is None:
                raise ValueError("this head links the plugin's queries: pass them")
            if tuple(queries.shape) != (self.num_queries, self.channels):
                raise ConfigError(
                    f"the plugin offers queries of shape {tuple(queries.shape)}, the head needs "
                    f"({self.num_queries}, {self.channels}): set head.num_queries = "
                    "plugin.num_tokens and head.channels = plugin.query_dim")
            pos = queries
        else:
            pos = self.query_embed.weight
        content = self.query_feat.weight if self.queries_to_feat is None else self.queries_to_feat(pos)
        return content.expand(batch, -1, -1), pos.expand(batch, -1, -1)

    def _predict(self, query: torch.Tensor, mask_feats: torch.Tensor,
                 attn_size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Class logits, mask logits, and the next cross-attention mask (True = not attended)."""
        query = self.post_norm(query)
        class_logits = self.cls_embed(query)
        mask_logits = torch.einsum("bqc,bchw->bqhw", self.mask_embed(query), mask_feats)
        with torch.no_grad():
            small = F.interpolate(mask_logits, size=attn_size, mode="bilinear", align_corners=False)
            attn_mask = (small < 0).flatten(2)  # sigmoid < 0.5
            attn_mask &= ~attn_mask.all(dim=-1, keepdim=True)  # an empty mask attends everywhere
            attn_mask = attn_mask.repeat_interleave(self.num_heads, dim=0)
        return class_logits, mask_logits, attn_mask

    def forward(self, feats: list[torch.Tensor], queries: torch.Tensor | None = None) -> Mask2FormerOutput:
        mask_feats, levels = self.pixel_decoder(feats)
        batch, device = mask_feats.shape[0], mask_feats.device
        memories = [m.flatten(2).transpose(1, 2) + self.level_embed.weight[i]
                    for i, m in enumerate(levels)]
        memory_pos = [sine_encoding(m.shape[-2], m.shape[-1], self.channels, device).to(m.dtype)
                      for m in levels]
        sizes = [(m.shape[-2], m.shape[-1]) for m in levels]
        query, query_pos = self._queries(queries, batch)
        class_logits, mask_logits, attn_mask = self._predict(query, mask_feats, sizes[0])
        out = Mask2FormerOutput([class_logits], [mask_logits])
        for i, layer in enumerate(self.layers):
            level = i % NUM_LEVELS
            query = layer(query, query_pos, memories[level], memory_pos[level], attn_mask)
            class_logits, mask_logits, attn_mask = self._predict(
                query, mask_feats, sizes[(i + 1) % NUM_LEVELS])
            out.class_logits.append(class_logits)
            out.mask_logits.append(mask_logits)
        return out

    def segmentation(self, output: Mask2FormerOutput, size: tuple[int, int]) -> torch.Tensor:
        """Per-class scores: class probabilities (no-object dropped) times mask probabilities."""
        probs = output.class_logits[-1].softmax(dim=-1)[..., :-1]
        seg = torch.einsum("bqc,bqhw->bchw", probs, output.mask_logits[-1].sigmoid())
        return F.interpolate(seg, size=size, mode="bilinear", align_corners=False)

    @staticmethod
    def to_probabilities(segmentation: torch.Tensor) -> torch.Tensor:
        """Scores are already probability-like; normalised over classes (argmax unchanged)."""
        return segmentation / segmentation.sum(dim=1, keepdim=True).clamp_min(1e-12)

    def loss(self, output: Mask2FormerOutput, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        return set_loss(output.class_logits, output.mask_logits, labels, self.num_points)

