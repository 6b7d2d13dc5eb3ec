"""``spectralmoe info`` reports the paper's parameter counts without any weights."""

from __future__ import annotations

import json

import pytest
from helpers import assert_one_line_error, run_cli


@pytest.mark.slow
@pytest.mark.parametrize("model,plugin", [
    ("spectralmoe_dinov3_vitl16", 5_737_985),
    ("rein_dinov3_vitl16", 2_990_081),
    ("adaptformer_dinov3_vitl16", 3_220_992),  # the paper: 3.22 M
    ("vpt_dinov3_vitl16", 3_686_400),  # the paper: 3.69 M
    ("set_dinov3_vitl16", 5_520_897),  # the paper: 6.13 M (README: why)
    ("fada_dinov3_vitl16", 5_520_897),  # the paper: 11.65 M (README: why)
])
def test_production_plugin_parameter_counts(model, plugin):
    result = run_cli("info", "--model", model, "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["parameters"]["trainable"]["plugin"] == plugin
    assert report["backbone"]["blocks"] == 24 and report["backbone"]["embed_dim"] == 1024
    if model.startswith("spectralmoe"):
        p = report["plugin"]
        assert (p["num_experts"], p["rank"], p["num_tokens"], p["top_k"], p["link_queries"]) == (6, 16, 100, 1, True)
        assert report["depth_model"]["name"] == "promptda_vitl"


def test_text_report_and_model_list():
    result = run_cli("info", "--model", "spectralmoe_tiny")
    assert result.returncode == 0, result.stderr
    assert "trainable  plugin" in result.stdout and "spectralmoe" in result.stdout
    listing = run_cli("info", "--list")
    assert "spectralmoe_dinov3_vitl16" in listing.stdout.split()


def test_unknown_model_and_bad_config_are_one_line_usage_errors(tmp_path):
    assert_one_line_error(run_cli("info", "--model", "vit_huge_nonsense"), 2, "unknown model",
                          "spectralmoe_dinov3_vitl16")
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\n[backbone]\nname = "dinov3_vitl16"\n[plugin]\nmethod = "spectralmoe"\nnum_expert = 6\n')
    assert_one_line_error(run_cli("info", "--model", bad), 2, "plugin.num_expert", "Extra inputs")
    unknown_backbone = tmp_path / "ub.toml"
    unknown_backbone.write_text('name = "x"\n[backbone]\nname = "resnet50"\n[plugin]\nmethod = "frozen"\n')
    assert_one_line_error(run_cli("info", "--model", unknown_backbone), 2, "unknown backbone 'resnet50'")
    mismatch = tmp_path / "mm.toml"
    mismatch.write_text('name = "x"\n[backbone]\nname = "dinov3_vits16"\n[depth]\nname = "promptda_vitl"\n')
    assert_one_line_error(run_cli("info", "--model", mismatch), 2, "does not pair", "deeper")
