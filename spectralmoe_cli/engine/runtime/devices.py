"""Which torch device a command runs on, and in which precision: one rule for predict, evaluate
and train."""

from __future__ import annotations

import torch

from ...errors import UsageError


def pick_device(name: str) -> torch.device:
    """``auto`` prefers the first GPU; an explicit device must exist."""
    if name == "auto":
        return torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise UsageError(f"--device {name!r} is not a device; use auto, cpu, cuda or cuda:N") from exc
    if device.type not in ("cpu", "cuda"):
        raise UsageError(f"--device {name!r}: only cpu and cuda are supported")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"--device {name}: no CUDA GPU is visible; use --device cpu")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise UsageError(f"--device {name}: only {torch.cuda.device_count()} GPU(s) visible")
    return device


def autocast_dtype(device: torch.device) -> torch.dtype | None:
    """The mixed precision on ``device``: bf16 where the GPU has it, else fp16 (training then
    scales its loss); None on the CPU: full fp32, no autocast."""
    if device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def autocast(device: torch.device, dtype: torch.dtype | None) -> torch.autocast:
    """Autocast to ``dtype`` (from ``autocast_dtype``) on ``device``; a no-op for None."""
    return torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None)
