"""Tiles in, fixed-point weighted probabilities out: the model side of predict and evaluate.

Normalisation uses the checkpoint's statistics, never the tile's. In deterministic mode every
forward pass has exactly ``batch_size`` tiles (the last batch is padded), because a tile's result
can change in its last bits with the batch size; then a tile gives the same bits whatever chunk
or batch it lands in.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from ..checkpoint import CheckpointMeta
from ..errors import UsageError
from ..io.tiling import FIXED_ONE
from ..nn.segmentor import Segmentor


def pick_device(name: str) -> torch.device:
    """``auto`` = the first CUDA device if there is one, else the CPU."""
    if name == "auto":
        return torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise UsageError(f"--device {name!r} is not a device (use auto, cpu or cuda:N)") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"--device {name}: CUDA is not available on this machine")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise UsageError(f"--device {name}: only {torch.cuda.device_count()} CUDA device(s) here")
    return device


@dataclass
class Timing:
    infer: float = 0.0
    tiles: int = 0


class TileModel:
    """A loaded model with its normalisation, batching and device placement."""

    def __init__(self, model: Segmentor, meta: CheckpointMeta, device: torch.device,
                 batch_size: int, deterministic: bool) -> None:
        self.model = model.to(device).eval()
        self.meta = meta
        self.device = device
        self.batch_size = batch_size
        self.deterministic = deterministic
        self.num_classes = len(meta.classes)
        self.mean = torch.tensor(meta.mean, dtype=torch.float32, device=device).view(1, -1, 1, 1)
        self.std = torch.tensor(meta.std, dtype=torch.float32, device=device).view(1, -1, 1, 1)
        self.autocast = device.type == "cuda" and not deterministic
        self.timing = Timing()

    @torch.inference_mode()
    def probabilities(self, tiles: np.ndarray, valid: np.ndarray) -> torch.Tensor:
        """Softmax probabilities [n, K, T, T] for raw tiles [n, C, T, T]; invalid pixels -> mean."""
        start = time.perf_counter()
        outs = []
        for s in range(0, len(tiles), self.batch_size):
            batch = torch.from_numpy(tiles[s:s + self.batch_size]).to(self.device, non_blocking=True)
            mask = torch.from_numpy(valid[s:s + self.batch_size]).to(self.device).unsqueeze(1)
            x = torch.where(mask, (batch - self.mean) / self.std, torch.zeros((), device=self.device))
            n = x.shape[0]
            if self.deterministic and n < self.batch_size:
                x = torch.cat([x, x.new_zeros((self.batch_size - n, *x.shape[1:]))])
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.autocast):
                logits, _ = self.model(x)
            outs.append(torch.softmax(logits[:n].float(), dim=1))
        self.timing.infer += time.perf_counter() - start
        self.timing.tiles += len(tiles)
        return torch.cat(outs)

    def contributions(self, tiles: np.ndarray, valid: np.ndarray, weights: np.ndarray
                      ) -> tuple[np.ndarray, np.ndarray]:
        """Fixed-point w·p [n, K, T, T] and w [n, T, T] (int32), with w zero on invalid pixels."""
        probs = self.probabilities(tiles, valid)
        w = torch.from_numpy(weights * valid).to(self.device)
        contrib = torch.round(probs * (w.unsqueeze(1) * FIXED_ONE)).to(torch.int32)
        wsum = torch.round(w * FIXED_ONE).to(torch.int32)
        return contrib.cpu().numpy(), wsum.cpu().numpy()
