"""Checkpoints: one ``.safetensors`` file whose header carries the JSON metadata.

The metadata holds everything predict needs besides the tensors: the model config, the ordered
bands with wavelengths, normalisation statistics, classes with colours, tile defaults, provenance
and a content hash over tensors and metadata, checked on every load. Nothing is ever unpickled.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from .config import ModelConfig
from .errors import CheckpointError, validation_message
from .files import write_atomic
from .labels import IGNORE_INDEX
from .normalisation import normalisation_problem

FORMAT = "spectralmoe-checkpoint"
FORMAT_VERSION = 1
_HEADER_KEY = "spectralmoe"


class BandInfo(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    wavelength: float | None = None


class ClassInfo(BaseModel):
    model_config = ConfigDict(extra="forbid")
    value: int = Field(ge=0, le=254)
    name: str
    color: str = Field(pattern=r"^#[0-9a-fA-F]{6}$")

    def rgb(self) -> tuple[int, int, int]:
        return tuple(int(self.color[i:i + 2], 16) for i in (1, 3, 5))  # type: ignore[return-value]


class TileDefaults(BaseModel):
    model_config = ConfigDict(extra="forbid")
    size: int = Field(512, ge=16)
    overlap: int = Field(128, ge=0)


class CheckpointMeta(BaseModel):
    model_config = ConfigDict(extra="forbid")
    format: str = FORMAT
    format_version: int = FORMAT_VERSION
    model: ModelConfig
    bands: list[BandInfo]
    mean: list[float]
    std: list[float]
    classes: list[ClassInfo]
    ignore_index: int = IGNORE_INDEX
    tile: TileDefaults = TileDefaults()
    contains: list[str]
    provenance: dict = {}
    content_hash: str = ""

    @field_validator("format")
    @classmethod
    def _format(cls, value: str) -> str:
        if value != FORMAT:
            raise ValueError(f"not a {FORMAT} (format={value!r})")
        return value

    def check(self) -> "CheckpointMeta":
        n = len(self.bands)
        if len(self.mean) != n or len(self.std) != n:
            raise CheckpointError(f"metadata has {n} bands but {len(self.mean)} means and {len(self.std)} stds")
        if problem := normalisation_problem(self.mean, self.std):
            raise CheckpointError(f"metadata normalisation statistics: {problem}")
        if len({c.value for c in self.classes}) != len(self.classes):
            raise CheckpointError("metadata has duplicate class values")
        if sorted(c.value for c in self.classes) != list(range(len(self.classes))):
            raise CheckpointError("metadata class values must be 0..K-1")
        if [b.name for b in self.bands] != list(self.model.data.bands):
            raise CheckpointError("metadata bands differ from the model config's bands")
        if len(self.classes) != self.model.data.num_classes:
            raise CheckpointError("metadata class count differs from the model config's")
        return self


def _canonical(header: dict) -> bytes:
    """The metadata exactly as stored (less the hash itself), in one canonical byte form."""
    body = {k: v for k, v in header.items() if k != "content_hash"}
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def content_hash(tensors: dict[str, torch.Tensor], header: dict) -> str:
    """sha256 over the stored metadata and every tensor; independent of later schema additions."""
    digest = hashlib.sha256(_canonical(header))
    for name in sorted(tensors):
        tensor = tensors[name].detach().contiguous().cpu()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return "sha256:" + digest.hexdigest()


def save_checkpoint(path: str | Path, tensors: dict[str, torch.Tensor], meta: CheckpointMeta) -> str:
    """Write atomically (temp file, then rename); return the content hash."""
    meta.check()
    tensors = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    header = meta.model_dump(mode="json")
    header["content_hash"] = content_hash(tensors, header)
    metadata = {_HEADER_KEY: json.dumps(header, sort_keys=True)}
    write_atomic(Path(path), lambda tmp: save_file(tensors, str(tmp), metadata=metadata))
    return header["content_hash"]


def _open(path: Path):
    if not path.exists():
        raise CheckpointError(f"checkpoint {path} does not exist")
    if path.is_dir():
        raise CheckpointError(f"checkpoint {path} is a directory; give the .safetensors file")
    try:
        return safe_open(str(path), framework="pt")
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"checkpoint {path} is truncated or not a safetensors file ({exc})") from exc


def _read_header(path: Path) -> tuple[dict, CheckpointMeta]:
    with _open(path) as handle:
        text = (handle.metadata() or {}).get(_HEADER_KEY)
    if text is None:
        raise CheckpointError(
            f"{path} is a safetensors file but not a spectralmoe checkpoint (no metadata); "
            f"pretrained backbone weights go in the model config's 'weights' field instead"
        )
    try:
        header = json.loads(text)
        return header, CheckpointMeta.model_validate(header).check()
    except CheckpointError as exc:
        raise CheckpointError(f"checkpoint {path}: {exc}") from exc
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path}: metadata is not valid JSON ({exc})") from exc
    except ValidationError as exc:
        raise CheckpointError(validation_message(exc, str(path), label="metadata field")) from exc


def read_metadata(path: str | Path) -> CheckpointMeta:
    """The metadata alone (cheap: reads only the header)."""
    return _read_header(Path(path))[1]


def load_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], CheckpointMeta]:
    """Tensors and metadata, verified against the content hash."""
    path = Path(path)
    header, meta = _read_header(path)
    try:
        with _open(path) as handle:
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}
    except (SafetensorError, OSError, RuntimeError) as exc:
        raise CheckpointError(f"checkpoint {path} is corrupted ({exc})") from exc
    if content_hash(tensors, header) != meta.content_hash:
        raise CheckpointError(f"checkpoint {path} is corrupted: its content hash does not match")
    return tensors, meta
