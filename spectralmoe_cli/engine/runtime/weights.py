"""Finding and reading pretrained foundation-model weights, without ever unpickling code.

Search order for a backbone: an explicit path; ``$SPECTRALMOE_WEIGHTS`` (default
``~/.cache/spectralmoe/weights``) holding the official file name; torch hub's checkpoint cache;
the Hugging Face cache (the timm copy, then the transformers copy); then, unless offline, a
Hugging Face download. If all fail, one line says which file is needed and where to put it.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from ...errors import WeightsError


def weights_dir() -> Path:
    return Path(os.environ.get("SPECTRALMOE_WEIGHTS", Path.home() / ".cache" / "spectralmoe" / "weights"))


def _offline() -> bool:
    return any(os.environ.get(v, "").lower() in ("1", "true", "yes")
               for v in ("HF_HUB_OFFLINE", "SPECTRALMOE_OFFLINE"))


def read_state_dict(path: str | Path) -> dict:
    """Tensors of a weight file: safetensors, or a torch file loaded with weights_only=True."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise WeightsError(f"weight file {path} does not exist")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file
            return load_file(str(path))
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for bad or unsafe pickles
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise WeightsError(f"cannot read weights {path}: {first}") from exc


def locate(spec, explicit: str | None = None) -> tuple[Path, str]:
    """The weight file for a backbone spec and its layout ('timm' or the official format)."""
    if explicit not in (None, "", "pretrained"):
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise WeightsError(f"weight file {path} for {spec.name} does not exist")
        return path, _guess_format(path, spec)
    local = weights_dir() / spec.filename
    if local.is_file():
        return local, spec.weight_format
    hub = Path(torch.hub.get_dir()) / "checkpoints" / spec.filename
    if hub.is_file():
        return hub, spec.weight_format
    if spec.hf_repo:
        from huggingface_hub import try_to_load_from_cache
        cached = try_to_load_from_cache(spec.hf_repo, spec.hf_filename)
        if isinstance(cached, str):
            return Path(cached), spec.hf_format
        if spec.transformers_repo:
            cached = try_to_load_from_cache(spec.transformers_repo, "model.safetensors")
            if isinstance(cached, str):
                return Path(cached), "transformers"
        if not _offline():
            try:
                from huggingface_hub import hf_hub_download
                return Path(hf_hub_download(spec.hf_repo, spec.hf_filename)), spec.hf_format
            except Exception:  # no network, gated repo, missing file: all end in the same advice
                pass
    raise WeightsError(
        f"weights for {spec.name} not found: put {spec.filename} (from {spec.url}) in "
        f"{weights_dir()}/, or set weights = \"/path/to/file\" in the model config"
    )


def _guess_format(path: Path, spec) -> str:
    """A user's safetensors file is in the transformers layout when its keys say so, else in
    timm's; any other file is in the backbone's official layout."""
    if path.suffix != ".safetensors":
        return spec.weight_format
    from safetensors import safe_open

    from ...nn.transformers_layout import is_transformers_layout
    try:
        with safe_open(str(path), "pt") as handle:
            keys = set(handle.keys())
    except Exception as exc:  # safetensors raises its own error types for a damaged header
        raise WeightsError(f"cannot read weights {path}: {exc}") from exc
    return "transformers" if is_transformers_layout(keys) else "timm"
