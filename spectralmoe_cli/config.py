"""Model configuration: one validated schema for every named model in the zoo.

Configs are TOML files in ``models/`` (installed as ``spectralmoe_cli.zoo``). Unknown keys are
errors, so a typo never silently falls back to a default. Names of registered things (backbones,
plugin methods, heads) and what they require of the rest of the config are checked against the
registries by ``nn.catalog.check_model_config``, since this base module must not import nn.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .errors import ConfigError, validation_message
from .table_file import read_table


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BackboneConfig(_Strict):
    """A frozen ViT from the backbone registry, optionally shrunk (tests use tiny ViTs)."""

    name: str
    weights: str = Field("pretrained", description="'pretrained', 'random' or a file path")
    patch_size: int = Field(16, ge=2, description="pretrained kernels are resampled to it")
    embed_dim: int | None = None
    depth: int | None = None
    num_heads: int | None = None


class PluginConfig(_Strict):
    """The trainable part between the frozen blocks; every hyper-parameter of DESIGN §3."""

    method: str = Field("spectralmoe", description="a registered plugin method")
    num_experts: int = Field(6, ge=1)
    top_k: int = Field(1, ge=1)
    rank: int = Field(16, ge=1)
    num_tokens: int = Field(100, ge=2)
    fusion: Literal["paper", "code"] = "paper"
    gating: Literal["laplace", "gaussian", "softmax"] = "laplace"
    gating_norm: float = Field(2.0, gt=0)
    noisy_gating: bool = True
    balance_weight: float = Field(1000.0, ge=0)
    scale_init: float = 1e-3
    link_queries: bool = True  # queries for a Mask2Former head; no effect with the light head
    query_dim: int = Field(256, ge=1)
    lora_alpha: float = Field(16.0, gt=0)
    adapter_dim: int = Field(64, ge=1, description="AdaptFormer bottleneck width")
    adapter_scale: float = Field(0.1, description="AdaptFormer scale s (its start when learnable)")
    adapter_learnable_scale: bool = False
    num_prompts: int = Field(150, ge=1, description="VPT-deep prompt tokens per block")

    @model_validator(mode="after")
    def _check(self) -> "PluginConfig":
        if self.top_k > self.num_experts:
            raise ValueError(f"top_k={self.top_k} exceeds num_experts={self.num_experts}")
        return self


class HeadConfig(_Strict):
    """The decode head; all but ``type`` and ``channels`` concern Mask2Former only."""

    type: str = Field("light", description="a registered head")
    channels: int = Field(256, ge=8)
    num_queries: int = Field(100, ge=1)
    decoder_layers: int = Field(9, ge=1)
    pixel_decoder_layers: int = Field(6, ge=0)
    num_heads: int = Field(8, ge=1)
    ffn_dim: int = Field(2048, ge=8)
    pixel_decoder_ffn_dim: int = Field(1024, ge=8)
    deform_points: int = Field(4, ge=1, description="sampled points per head and level")
    num_points: int = Field(12544, ge=16)
    replace_query_feat: bool = Field(
        False, description="content queries = Linear(linked queries) (REIN, DepthForge) "
                           "instead of learnable embeddings (SpectralMoE)")


class DataConfig(_Strict):
    """Defaults that a trained checkpoint replaces with its own bands and classes."""

    bands: list[str] = ["red", "green", "blue"]
    num_classes: int = Field(6, ge=1)


class ModelConfig(_Strict):
    name: str
    description: str = ""
    backbone: BackboneConfig
    depth: BackboneConfig | None = None
    plugin: PluginConfig = PluginConfig()
    head: HeadConfig = HeadConfig()
    data: DataConfig = DataConfig()

    @model_validator(mode="after")
    def _check(self) -> "ModelConfig":
        if self.depth is not None and self.depth.patch_size != self.backbone.patch_size:
            raise ValueError("depth.patch_size must equal backbone.patch_size (one token grid)")
        return self

    def with_data(self, bands: list[str], num_classes: int) -> "ModelConfig":
        """The same architecture for another band list and class count."""
        data = self.data.model_copy(update={"bands": list(bands), "num_classes": num_classes})
        return self.model_copy(update={"data": data})


def zoo_dir() -> Path:
    """Where the named configs live: the checkout's models/ or the installed package data."""
    here = Path(__file__).resolve().parent
    checkout = here.parent / "models"
    if checkout.is_dir():
        return checkout
    return here / "zoo"


def available_models() -> list[str]:
    return sorted(p.stem for p in zoo_dir().glob("*.toml"))


def parse_config(data: dict, source: str) -> ModelConfig:
    try:
        return ModelConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(validation_message(exc, source)) from exc


def load_config(name_or_path: str) -> ModelConfig:
    """Load a model config by zoo name (``spectralmoe_dinov3_vitl16``) or TOML path."""
    path = Path(name_or_path)
    if path.suffix != ".toml":
        path = zoo_dir() / f"{name_or_path}.toml"
        if not path.is_file():
            raise ConfigError(
                f"unknown model {name_or_path!r}; available: {', '.join(available_models())}"
            )
    return parse_config(read_table(path, "model config"), str(path))
