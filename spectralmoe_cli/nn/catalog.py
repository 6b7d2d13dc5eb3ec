"""Every backbone, plugin and head, complete, and the config checks that need them.

Importing this module imports every module that registers something (a new plugin or head module
is added to the import line below), so the registries taken from here never miss a name. The schema in
``config.py`` cannot ask the registries (config must not import nn), so what depends on them is
checked here, by ``check_model_config``, wherever a config is about to become a model.
"""

from __future__ import annotations

from typing import NoReturn

from ..config import HeadConfig, ModelConfig, PluginConfig
from ..errors import ConfigError
from . import (  # noqa: F401  (they register the backbones, plugins and heads)
    adapters, adaptformer, dofa, fada, mask2former, moe, spectral_set, vfm_timm, vpt)
from .backbones import BACKBONES
from .heads import HEADS, Head
from .plugin import PLUGINS, Plugin
from .registry import Registry

__all__ = ["BACKBONES", "HEADS", "PLUGINS", "build_head", "build_plugin", "check_model_config"]


def build_plugin(cfg: PluginConfig, num_layers: int, dim: int) -> Plugin:
    return PLUGINS.get(cfg.method)(cfg, num_layers, dim)


def build_head(cfg: HeadConfig, in_dim: int, num_classes: int, query_dim: int | None) -> Head:
    """The configured head; ``query_dim`` is the width of the plugin's queries, None if it has none."""
    return HEADS.get(cfg.type)(in_dim, num_classes, cfg, query_dim)


def check_model_config(cfg: ModelConfig, source: str | None = None) -> None:
    """Fail with a ConfigError naming ``source`` (the config file, by default the model's name)
    and the field, as schema errors do, when the config names something unregistered or does not
    fit the metadata of what it names."""
    source = source or f"model {cfg.name!r}"

    def lookup(registry: Registry, name: str, where: str):
        try:
            return registry.get(name)
        except ConfigError as exc:
            raise ConfigError(f"{source}: {where}: {exc}") from exc

    def fail(message: str) -> NoReturn:
        raise ConfigError(f"{source}: (top level): {message}")

    plugin: type[Plugin] = lookup(PLUGINS, cfg.plugin.method, "plugin.method")
    head: type[Head] = lookup(HEADS, cfg.head.type, "head.type")
    lookup(BACKBONES, cfg.backbone.name, "backbone.name")
    if cfg.depth is not None:
        lookup(BACKBONES, cfg.depth.name, "depth.name")
    if plugin.needs_depth and cfg.depth is None:
        fail(f"method {cfg.plugin.method!r} needs a [depth] model")
    if head.uses_queries and plugin.has_tokens and cfg.plugin.link_queries:
        if cfg.plugin.num_tokens != cfg.head.num_queries:
            fail(f"head.num_queries={cfg.head.num_queries} must equal plugin.num_tokens="
                 f"{cfg.plugin.num_tokens}: the plugin's tokens are the decoder's queries "
                 "(query linking); set them equal or set plugin.link_queries = false")
        if cfg.plugin.query_dim != cfg.head.channels:
            fail(f"plugin.query_dim={cfg.plugin.query_dim} must equal head.channels="
                 f"{cfg.head.channels}: linked queries enter the decoder as they are")
