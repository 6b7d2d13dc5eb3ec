"""Tiles in, fixed-point weighted probabilities out: the model side of predict and evaluate.

Normalisation uses the checkpoint's statistics, never the tile's. In deterministic mode every
forward pass has exactly ``batch_size`` tiles (the last batch is padded), because a tile's result
can change in its last bits with the batch size; then a tile gives the same bits whatever chunk
or batch it lands in. On CUDA (fast mode) tiles go through pinned host memory with non-blocking
copies under bf16 autocast (fp16 where bf16 is missing), and an out-of-memory batch is halved.
"""

from __future__ import annotations

import logging

import numpy as np
import torch

from ...checkpoint import CheckpointMeta
from ...io.tiling import FIXED_ONE
from ...nn.segmentor import Segmentor
from .devices import autocast, autocast_dtype
from .tta import averaged

log = logging.getLogger(__name__)


class TileModel:
    """A loaded model with its normalisation, batching and device placement."""

    def __init__(self, model: Segmentor, meta: CheckpointMeta, device: torch.device,
                 batch_size: int, deterministic: bool, compile_model: bool = False,
                 tta: str = "none") -> None:
        self.model = model.to(device).eval()
        self.forward = torch.compile(self.model, dynamic=False) if compile_model else self.model
        self.meta = meta
        self.device = device
        self.batch_size = batch_size
        self.deterministic = deterministic
        self.num_classes = len(meta.classes)
        self.mean = torch.tensor(meta.mean, dtype=torch.float32, device=device).view(1, -1, 1, 1)
        self.std = torch.tensor(meta.std, dtype=torch.float32, device=device).view(1, -1, 1, 1)
        self.amp = None if deterministic else autocast_dtype(device)
        self.pin = device.type == "cuda"
        self.tta = tta  # "none" | "flip" | "d4": probabilities averaged over the transforms

    def _to_device(self, array: np.ndarray) -> torch.Tensor:
        tensor = torch.from_numpy(np.ascontiguousarray(array))
        if self.pin:
            tensor = tensor.pin_memory()
        return tensor.to(self.device, non_blocking=self.pin)

    def _forward(self, batch: np.ndarray, valid: np.ndarray) -> torch.Tensor:
        x = self._to_device(batch)
        mask = self._to_device(valid).unsqueeze(1)
        x = torch.where(mask, (x - self.mean) / self.std, torch.zeros((), device=self.device))
        n = x.shape[0]
        if self.deterministic and n < self.batch_size:
            x = torch.cat([x, x.new_zeros((self.batch_size - n, *x.shape[1:]))])

        def run(tiles: torch.Tensor) -> torch.Tensor:
            with autocast(self.device, self.amp):
                logits, _ = self.forward(tiles)
            return self.model.head.to_probabilities(logits[:n].float())

        return averaged(run, x, self.tta)

    @torch.inference_mode()
    def probabilities(self, tiles: np.ndarray, valid: np.ndarray) -> torch.Tensor:
        """Class probabilities [n, K, T, T] for raw tiles [n, C, T, T]; invalid pixels -> mean."""
        outs = []
        s = 0
        while s < len(tiles):
            try:
                outs.append(self._forward(tiles[s:s + self.batch_size], valid[s:s + self.batch_size]))
            except torch.OutOfMemoryError:
                if self.batch_size == 1:
                    raise
                self.batch_size //= 2
                if self.device.type == "cuda":
                    torch.cuda.empty_cache()
                log.warning("out of memory on %s: batch size halved to %d", self.device, self.batch_size)
                continue
            s += len(outs[-1])
        return torch.cat(outs)

    def contributions(self, tiles: np.ndarray, valid: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """Fixed-point sums [n, K + 1, T, T] (int32): w·p in channels 0..K-1, w in channel K;
        w is zero on invalid pixels. One array, so the blend adds each tile in one step."""
        probs = self.probabilities(tiles, valid)
        w = torch.from_numpy(weights * valid).to(self.device)
        k = probs.shape[1]
        sums = torch.empty((probs.shape[0], k + 1, *probs.shape[2:]), dtype=torch.int32,
                           device=self.device)
        sums[:, :k] = torch.round(probs * (w.unsqueeze(1) * FIXED_ONE))
        sums[:, k] = torch.round(w * FIXED_ONE)
        return sums.numpy() if self.device.type == "cpu" else sums.cpu().numpy()
