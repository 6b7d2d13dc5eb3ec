"""Resumable training state without pickle: tensors in safetensors, everything else as JSON.

The optimiser's moments and the torch (and CUDA) RNG states are tensors; the step, the
optimiser's parameter groups, the fp16 loss scaler's state and the numpy and Python RNG states go
into the file's metadata.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from ...files import write_atomic

_STATE_KEY = "spectralmoe-train-state"


def _rng_json() -> dict:
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    version, state, gauss_next = random.getstate()
    return {"numpy": [kind, keys.tolist(), int(pos), int(has_gauss), float(gauss)],
            "python": [version, list(state), gauss_next]}


def _restore_rng(data: dict) -> None:
    kind, keys, pos, has_gauss, gauss = data["numpy"]
    np.random.set_state((kind, np.array(keys, dtype=np.uint32), pos, has_gauss, gauss))
    version, state, gauss_next = data["python"]
    random.setstate((version, tuple(state), gauss_next))


def save_state(path: Path, step: int, optimizer: torch.optim.Optimizer,
               scaler: torch.amp.GradScaler, device: torch.device) -> None:
    """Optimiser moments, loss scale and every RNG state at an optimiser-step boundary (atomic)."""
    full = optimizer.state_dict()
    tensors = {"rng.torch": torch.get_rng_state()}
    if device.type == "cuda":
        tensors["rng.cuda"] = torch.cuda.get_rng_state(device)
    for index, slots in full["state"].items():
        for key, value in slots.items():
            tensors[f"optimizer.{index}.{key}"] = value.detach().cpu().contiguous()
    groups = [{k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items()} for g in full["param_groups"]]
    meta = {"step": step, "param_groups": groups, "rng": _rng_json()}
    if scaler.is_enabled():
        meta["grad_scaler"] = scaler.state_dict()
    metadata = {_STATE_KEY: json.dumps(meta)}
    write_atomic(path, lambda tmp: save_file(tensors, str(tmp), metadata=metadata))


def load_state(path: Path, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler,
               device: torch.device) -> int:
    """Restore what ``save_state`` wrote; return the step."""
    with safe_open(str(path), framework="pt") as handle:
        meta = json.loads(handle.metadata()[_STATE_KEY])
        tensors = {key: handle.get_tensor(key) for key in handle.keys()}
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        if key.startswith("optimizer."):
            _, index, slot = key.split(".", 2)
            state.setdefault(int(index), {})[slot] = value
    groups = [{k: (tuple(v) if k == "betas" else v) for k, v in g.items()} for g in meta["param_groups"]]
    optimizer.load_state_dict({"state": state, "param_groups": groups})
    torch.set_rng_state(tensors["rng.torch"])
    if device.type == "cuda" and "rng.cuda" in tensors:
        torch.cuda.set_rng_state(tensors["rng.cuda"], device)
    _restore_rng(meta["rng"])
    if scaler.is_enabled() and "grad_scaler" in meta:
        scaler.load_state_dict(meta["grad_scaler"])
    return int(meta["step"])
