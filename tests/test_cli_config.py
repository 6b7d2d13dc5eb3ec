"""The CLI's options: defaults shown in --help, --config files checked like flags, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import zarr
from checkpoints import make_checkpoint
from helpers import assert_one_line_error, run_cli
from scenes import smooth_field, write_scene

from spectralmoe_cli.config import load_config
from spectralmoe_cli.engine.labelled.classes import load_classes
from spectralmoe_cli.engine.options import ComputeFields
from spectralmoe_cli.engine.predict.settings import DEFAULT_FORMATS, PredictSettings
from spectralmoe_cli.errors import ConfigError
from spectralmoe_cli.net import RetryPolicy
from spectralmoe_cli.table_file import read_table


def _flat(text: str) -> str:
    """Help text with box edges and line wraps removed: a wrapped cell reads as one line."""
    return " ".join(text.replace("│", " ").split())


def test_predict_help_at_80_columns_shows_panels_and_the_engines_defaults(monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    result = run_cli("predict", "--help")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80
    assert "…" not in result.stdout  # nothing cut off: every name and help text in full
    for panel in ("Input", "Tiling", "Outputs", "COG output", "Compute", "Cluster", "STAC search",
                  "Network", "Run"):
        assert any(line.startswith(f"╭─ {panel} ─") for line in lines), panel
    flat = _flat(result.stdout)
    for option, default in (("--chunk", PredictSettings.chunk), ("--blend", PredictSettings.blend),
                            ("--format", ",".join(DEFAULT_FORMATS)), ("--compress", PredictSettings.compress),
                            ("--device", ComputeFields().device), ("--retries", RetryPolicy().retries),
                            ("--timeout", RetryPolicy().timeout)):
        assert option in flat
        assert f"[default: {default}]" in flat.split(option, 1)[1].split(" --", 1)[0], option
    assert "--tile <int> Tile size in pixels. [default: the checkpoint's]" in flat
    assert "--no-probabilities" in flat and "--overview-resampling" in flat


@pytest.mark.parametrize("args,words", [
    (["predict", "scene.tif"], ["missing option --out"]),
    (["predict", "scene.tif", "--out", "maps", "--batch-size", "0"], ["--batch-size", "greater than or equal to 1"]),
    (["predict", "scene.tif", "--out", "maps", "--tile", "abc"], ["--tile", "integer"]),
    (["stats", "folder"], ["Missing option '--bands'"]),
    (["segment"], ["No such command 'segment'"]),
])
def test_usage_errors_are_one_line_not_a_panel(args, words):
    result = run_cli(*args)
    assert_one_line_error(result, 2, *words)
    assert result.stderr.count("\n") == 1 and "╭" not in result.stderr


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    return make_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny.safetensors")


@pytest.fixture(scope="module")
def scene(tmp_path_factory) -> Path:
    return write_scene(tmp_path_factory.mktemp("scene") / "scene.tif", smooth_field(60, 70, 4))


@pytest.mark.parametrize("name,text", [
    ("run.toml", 'out = "{out}"\ncheckpoint = "{ckpt}"\nbands = ["red", "green", "blue", "nir"]\n'
                 'tile = 32\noverlap = 8\nformat = ["cog", "zarr"]\nprobabilities = true\n'
                 'device = "cpu"\nbatch-size = 2\n'),
    ("run.yaml", 'out: {out}\ncheckpoint: {ckpt}\nbands: red,green,blue,nir\ntile: 32\noverlap: 8\n'
                 'format: cog,zarr\nprobabilities: true\ndevice: cpu\nbatch_size: 2\n'),
])
def test_a_config_file_gives_any_option_and_flags_win_over_it(tmp_path, ckpt, scene, name, text):
    config = tmp_path / name
    config.write_text(text.format(out=tmp_path / "maps", ckpt=ckpt))
    from_file = run_cli("predict", scene, "--config", config, "--json")
    assert from_file.returncode == 0, from_file.stderr
    summary = json.loads(from_file.stdout)
    assert summary["batch_size"] == 2 and summary["device"] == "cpu"
    result = summary["results"][0]
    assert {"cog", "zarr"} <= set(result["outputs"]) and result["outputs"]["cog"].startswith(str(tmp_path / "maps"))
    assert "probabilities" in zarr.open_group(result["outputs"]["zarr"], mode="r")
    overridden = run_cli("predict", scene, "--config", config, "--format", "zarr", "--no-probabilities",
                         "--out", tmp_path / "flags", "--json")
    assert overridden.returncode == 0, overridden.stderr
    result = json.loads(overridden.stdout)["results"][0]
    assert "cog" not in result["outputs"] and result["outputs"]["zarr"].startswith(str(tmp_path / "flags"))
    assert "probabilities" not in zarr.open_group(result["outputs"]["zarr"], mode="r")


@pytest.mark.parametrize("line,words", [
    ('tile = "abc"', ["tile", "valid integer", "'abc'"]),
    ("batch_size = 0", ["batch_size", "greater than or equal to 1"]),
    ("batch-size = -2", ["batch-size", "greater than or equal to 1"]),
    ('probabilities = "false"', ["probabilities", "valid boolean", "'false'"]),
    ('blend = "gaussian"', ["blend", "'hann', 'linear', 'none' or 'center'"]),
    ("tiles = 64", ["unknown key 'tiles'", "tile", "batch-size", "overview-resampling"]),
    ("config = 'other.toml'", ["unknown key 'config'"]),
    ("tile = ", ["cannot parse it"]),
])
def test_bad_config_values_are_one_line_naming_the_file_and_the_key(tmp_path, ckpt, scene, line, words):
    config = tmp_path / "run.toml"
    config.write_text(f'out = "{tmp_path / "maps"}"\n{line}\n')
    result = run_cli("predict", scene, "--checkpoint", ckpt, "--config", config)
    assert_one_line_error(result, 2, f"--config {config}", *words)
    assert not (tmp_path / "maps").exists()


@pytest.mark.parametrize("command,line,words", [
    (["fetch", "--catalog", "http://127.0.0.1:9", "--collection", "c", "--datetime", "P1D"],
     "max_cloud = 150", ["max_cloud", "less than or equal to 100"]),
    (["fetch", "--catalog", "http://127.0.0.1:9", "--collection", "c", "--datetime", "P1D"],
     'resampling = "lanczos"', ["resampling", "'nearest', 'bilinear', 'cubic' or 'average'"]),
    (["train", "--model", "frozen_tiny", "--train", "t", "--bands", "red", "--classes", "c.toml"],
     "steps = 0", ["steps", "greater than or equal to 1"]),
    (["train", "--model", "frozen_tiny", "--train", "t", "--bands", "red", "--classes", "c.toml"],
     'deterministic = "yes"', ["deterministic", "valid boolean"]),
    (["train", "--model", "frozen_tiny", "--train", "t", "--bands", "red", "--classes", "c.toml"],
     'command = "spectralmoe predict"', ["unknown key 'command'"]),
    (["evaluate", "model.safetensors", "folder"], "min-miou = 120", ["min-miou", "less than or equal to 100"]),
    (["evaluate", "model.safetensors", "folder"], "checkpoint = 'x'", ["unknown key 'checkpoint'"]),
])
def test_every_command_with_config_checks_its_file_with_its_schema(tmp_path, command, line, words):
    config = tmp_path / "run.toml"
    config.write_text(f'out = "{tmp_path / "out"}"\n{line}\n')
    assert_one_line_error(run_cli(*command, "--config", config), 2, f"--config {config}", *words)
    assert not (tmp_path / "out").exists()


def test_a_flag_fixes_a_bad_file_value_and_a_missing_required_option_names_the_file_way(tmp_path, ckpt,
                                                                                        scene):
    config = tmp_path / "run.toml"
    config.write_text("batch_size = 0\n")
    result = run_cli("predict", scene, "--checkpoint", ckpt, "--config", config, "--batch-size", "1")
    assert_one_line_error(result, 2, "missing option --out", "--config")


@pytest.mark.parametrize("name,text,words", [
    ("c.toml", "tile = ", ["cannot parse it: not valid TOML (Invalid value"]),
    ("c.yaml", "tile: [1", ["cannot parse it: not valid YAML"]),
    ("c.yml", "- a\n- b", ["expected a table of key = value, not a list"]),
    ("c.toml", b"\xff\xfe", ["cannot read it (not UTF-8 text)"]),
])
def test_every_toml_or_yaml_file_fails_the_same_way(tmp_path, name, text, words):
    """--config files, class files and model configs share one reader and one error rule."""
    path = tmp_path / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    messages = []
    readers = [lambda: read_table(path, "--config"), lambda: load_classes(path)]
    if path.suffix == ".toml":  # model configs are TOML only
        readers.append(lambda: load_config(str(path)))
    for read in readers:
        with pytest.raises(ConfigError) as info:
            read()
        assert info.value.exit_code == 2 and str(path) in str(info.value)
        messages.append(str(info.value).split(str(path), 1)[1])
        assert all(w in messages[-1] for w in words), messages[-1]
    assert len(set(messages)) == 1  # the same words after the file's name


def test_an_empty_yaml_file_is_an_empty_table_and_a_missing_file_is_named(tmp_path):
    (tmp_path / "empty.yaml").write_text("")
    assert read_table(tmp_path / "empty.yaml", "--config") == {}
    with pytest.raises(ConfigError, match=r"class file .*absent.yaml does not exist"):
        read_table(tmp_path / "absent.yaml", "class file")
