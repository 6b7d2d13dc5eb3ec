"""One registry for backbones, plugins and heads: names, metadata, and the checks they drive."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
from helpers import ROOT, assert_one_line_error, run_cli

from spectralmoe_cli.config import parse_config
from spectralmoe_cli.engine.runtime.models import load_model_config
from spectralmoe_cli.errors import ConfigError
from spectralmoe_cli.nn.catalog import BACKBONES, HEADS, PLUGINS, check_model_config
from spectralmoe_cli.nn.registry import Registry


def _python(code: str) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter, so imports and registrations start from nothing."""
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, env=env, cwd=ROOT, timeout=300)


def _config(method: str, depth: bool, head: str = "light") -> dict:
    tiny = {"weights": "random", "embed_dim": 32, "depth": 2, "num_heads": 2}
    data = {"name": "probe", "backbone": {"name": "dinov3_vits16", **tiny},
            "plugin": {"method": method, "num_tokens": 8, "query_dim": 32},
            "head": {"type": head, "channels": 32, "num_queries": 8}}
    if depth:
        data["depth"] = {"name": "depth_anything_v2_vits", **tiny}
    return data


def test_registries_list_every_method_head_and_backbone():
    assert PLUGINS.names() == ["adaptformer", "depthforge", "fada", "frozen", "lora", "rein", "set",
                              "spectralmoe", "vpt"]
    assert HEADS.names() == ["light", "mask2former"]
    for name in ("dinov2_vitl14", "dinov2_vitg14_reg4", "depth_anything_v2_vitl", "promptda_vits",
                 "dinov3_vitl16", "dinov3_vits16"):
        assert name in BACKBONES and BACKBONES.get(name).name == name
    assert {PLUGINS.get(n).method for n in PLUGINS.names()} == set(PLUGINS.names())
    assert [n for n in PLUGINS.names() if PLUGINS.get(n).needs_depth] == ["depthforge", "spectralmoe"]
    assert [n for n in PLUGINS.names() if PLUGINS.get(n).has_tokens] == ["depthforge", "fada", "rein", "set",
                                                                         "spectralmoe"]
    assert [n for n in HEADS.names() if HEADS.get(n).uses_queries] == ["mask2former"]


def test_unknown_names_are_config_errors_listing_the_known_ones():
    with pytest.raises(ConfigError, match=r"unknown method 'adapter'; known: adaptformer, depthforge, fada, "
                                          r"frozen, lora, rein, set, spectralmoe, vpt$"):
        PLUGINS.get("adapter")
    with pytest.raises(ConfigError, match=r"unknown head 'upernet'; known: light, mask2former$"):
        HEADS.get("upernet")
    with pytest.raises(ConfigError, match=r"unknown backbone 'resnet50'; known: .*dinov2_vitl14"):
        BACKBONES.get("resnet50")
    cfg = parse_config(_config("adapter", depth=True), "probe")  # the schema takes any name ...
    with pytest.raises(ConfigError, match=r"^src\.toml: plugin\.method: unknown method 'adapter'"):
        check_model_config(cfg, "src.toml")  # ... the registry does not
    cfg = parse_config({**_config("rein", depth=False), "head": {"type": "upernet"}}, "probe")
    with pytest.raises(ConfigError, match=r"^model 'probe': head\.type: unknown head 'upernet'"):
        check_model_config(cfg)


def test_a_name_registered_twice_is_refused():
    registry: Registry[int] = Registry("thing")
    registry.add("a", 1)
    with pytest.raises(ValueError, match="thing 'a' is registered twice"):
        registry.add("a", 2)


@pytest.mark.parametrize("method", PLUGINS.names())
def test_the_registered_metadata_decides_which_methods_need_a_depth_model(method):
    cfg = parse_config(_config(method, depth=False), method)
    if PLUGINS.get(method).needs_depth:
        with pytest.raises(ConfigError, match=f"method '{method}' needs a \\[depth\\] model"):
            check_model_config(cfg)
    else:
        check_model_config(cfg)
    check_model_config(parse_config(_config(method, depth=True), method))


def test_query_linking_checks_follow_the_metadata():
    mismatched = _config("rein", depth=False, head="mask2former")
    mismatched["head"]["num_queries"] = 10
    with pytest.raises(ConfigError, match="num_queries=10 must equal plugin.num_tokens=8"):
        check_model_config(parse_config(mismatched, "probe"))
    mismatched["plugin"]["method"] = "lora"  # no tokens: nothing to link, any query count
    check_model_config(parse_config(mismatched, "probe"))


def test_config_files_naming_an_unknown_method_or_lacking_a_depth_model_fail_in_one_line(tmp_path):
    unknown = tmp_path / "unknown.toml"
    unknown.write_text('name = "x"\n[backbone]\nname = "dinov3_vitl16"\n[plugin]\nmethod = "adapter"\n')
    with pytest.raises(ConfigError, match="unknown.toml: plugin.method: unknown method 'adapter'"):
        load_model_config(str(unknown))
    assert_one_line_error(run_cli("info", "--model", unknown), 2, "unknown method 'adapter'", "spectralmoe")
    no_depth = tmp_path / "no_depth.toml"
    no_depth.write_text('name = "x"\n[backbone]\nname = "dinov3_vitl16"\n[plugin]\nmethod = "depthforge"\n')
    assert_one_line_error(run_cli("info", "--model", no_depth), 2, "no_depth.toml",
                          "method 'depthforge' needs a [depth] model")


@pytest.mark.slow
def test_importing_backbones_neither_queries_timm_nor_builds_the_table():
    result = _python("""
        import timm
        calls = []
        real = timm.list_models
        timm.list_models = lambda *a, **k: calls.append(a) or real(*a, **k)
        import spectralmoe_cli.nn.backbones as backbones
        import spectralmoe_cli.nn.catalog
        assert calls == [], calls
        assert backbones.get_spec("dinov3_vitl16").timm_name == "vit_large_patch16_dinov3"
        assert calls == [("*dinov3*",)], calls
        backbones.get_spec("dinov2_vitl14")
        assert len(calls) == 1, calls
    """)
    assert result.returncode == 0, result.stderr[-3000:]


@pytest.mark.slow
def test_a_new_method_is_one_decorated_class():
    result = _python("""
        import torch
        from spectralmoe_cli.config import parse_config
        from spectralmoe_cli.engine.runtime.models import embedded_parts
        from spectralmoe_cli.errors import ConfigError
        from spectralmoe_cli.nn.catalog import PLUGINS
        from spectralmoe_cli.nn.plugin import Plugin, register_plugin
        from spectralmoe_cli.nn.segmentor import Segmentor

        @register_plugin("probe", needs_depth=True)
        class Probe(Plugin):
            def __init__(self, cfg, num_layers, dim):
                super().__init__()
                self.gain = torch.nn.Parameter(torch.ones(()))

            def forward(self, layer, patches, depth, grid=None):
                return patches * self.gain + 0 * depth, patches.new_zeros(())

        tiny = {"weights": "random", "embed_dim": 32, "depth": 2, "num_heads": 2}
        data = {"name": "p", "backbone": {"name": "dinov3_vits16", **tiny},
                "plugin": {"method": "probe"}}
        assert "probe" in PLUGINS.names()
        try:
            Segmentor(parse_config(data, "p"))
            raise SystemExit("a depth-less config was accepted")
        except ConfigError as exc:
            assert "method 'probe' needs a [depth] model" in str(exc), exc
        cfg = parse_config({**data, "depth": {"name": "depth_anything_v2_vits", **tiny}}, "p")
        model = Segmentor(cfg)
        assert model.depth_model is not None
        assert "depth" in embedded_parts(cfg)
        logits, _ = model(torch.randn(1, 3, 32, 32))
        assert logits.shape == (1, 6, 32, 32)
    """)
    assert result.returncode == 0, result.stderr[-3000:]
