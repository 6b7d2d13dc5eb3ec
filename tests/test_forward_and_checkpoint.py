"""Tiny models run for any band count; checkpoints round-trip and refuse damage."""

from __future__ import annotations

import json
import struct

import pytest
import torch
from helpers import assert_one_line_error, run_cli, run_cli_process
from safetensors.torch import save_file

from spectralmoe_cli.checkpoint import (
    BandInfo,
    CheckpointMeta,
    ClassInfo,
    content_hash,
    load_checkpoint,
    save_checkpoint,
)
from spectralmoe_cli.config import load_config
from spectralmoe_cli.engine.runtime.models import (
    build_model,
    checkpoint_tensors,
    embedded_parts,
    model_from_checkpoint,
    save_model,
)
from spectralmoe_cli.errors import CheckpointError
from spectralmoe_cli.nn.catalog import PLUGINS

S2 = ["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12"]


@pytest.mark.parametrize("method", PLUGINS.names())
@pytest.mark.parametrize("bands", [["red", "green", "blue"], ["blue", "green", "red", "nir"], S2],
                         ids=["3-band", "4-band", "13-band"])
def test_tiny_model_forward_backward_at_input_resolution(method, bands):
    cfg = load_config(f"{method}_tiny").with_data(bands, 5)
    torch.manual_seed(0)
    model = build_model(cfg).train()
    x = torch.randn(2, len(bands), 70, 50)  # not a multiple of the patch: padded, then cropped
    logits, aux = model(x)
    assert logits.shape == (2, 5, 70, 50)
    losses = model.loss(x, torch.randint(0, 5, (2, 70, 50)))
    total = sum(losses.values())
    total.backward()
    assert torch.isfinite(total)
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert grads and all(g is not None for g in model.head.parameters() for g in [g.grad])


def _meta(model, classes=3) -> CheckpointMeta:
    bands = list(model.cfg.data.bands)
    return CheckpointMeta(
        model=model.cfg, bands=[BandInfo(name=b) for b in bands],
        mean=[0.1] * len(bands), std=[0.2] * len(bands),
        classes=[ClassInfo(value=i, name=f"class{i}", color="#00ff00") for i in range(classes)],
        contains=[], provenance={"test": True},
    )


@pytest.fixture
def checkpoint(tmp_path):
    cfg = load_config("spectralmoe_tiny").with_data(["red", "green", "blue", "nir"], 3)
    torch.manual_seed(0)
    model = build_model(cfg)
    torch.nn.init.normal_(model.plugin.experts_b)
    path = tmp_path / "model.safetensors"
    save_model(path, model, _meta(model))
    return path, model


def test_checkpoint_round_trip_gives_the_same_logits(checkpoint):
    path, model = checkpoint
    loaded, meta = model_from_checkpoint(path)
    x = torch.randn(1, 4, 32, 32)
    with torch.no_grad():
        assert torch.equal(loaded(x)[0], model.eval()(x)[0])
    assert meta.content_hash.startswith("sha256:") and meta.classes[2].name == "class2"
    assert sorted(meta.contains) == ["backbone", "depth", "head", "plugin"]


def test_a_flipped_byte_is_detected(checkpoint):
    path, _ = checkpoint
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="content hash"):
        load_checkpoint(path)


def test_a_truncated_file_is_refused(checkpoint):
    path, _ = checkpoint
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(CheckpointError, match="truncated"):
        load_checkpoint(path)


def _rewrite_header(path, edit):
    """Rewrite the JSON metadata inside a safetensors header (as a hand edit would)."""
    raw = path.read_bytes()
    size = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + size])
    meta = json.loads(header["__metadata__"]["spectralmoe"])
    edit(meta)
    header["__metadata__"]["spectralmoe"] = json.dumps(meta)
    encoded = json.dumps(header).encode()
    encoded += b" " * (-len(encoded) % 8)
    path.write_bytes(struct.pack("<Q", len(encoded)) + encoded + raw[8 + size:])


def test_metadata_with_a_missing_field_is_named(checkpoint):
    path, _ = checkpoint
    _rewrite_header(path, lambda m: m.pop("mean"))
    with pytest.raises(CheckpointError, match="metadata field mean: Field required"):
        load_checkpoint(path)


def test_a_checkpoint_of_another_architecture(tmp_path):
    """Tensors of a REIN model under metadata that claims SpectralMoE: a consistent hash, wrong keys."""
    bands = ["red", "green", "blue", "nir"]
    rein = build_model(load_config("rein_tiny").with_data(bands, 3))
    moe_cfg = load_config("spectralmoe_tiny").with_data(bands, 3)
    meta = _meta(rein).model_copy(update={"model": moe_cfg, "contains": embedded_parts(moe_cfg)})
    path = tmp_path / "mixed.safetensors"
    save_checkpoint(path, checkpoint_tensors(rein, embedded_parts(moe_cfg)), meta)
    load_checkpoint(path)  # the file itself is intact
    with pytest.raises(CheckpointError, match="does not fit its own architecture: missing"):
        model_from_checkpoint(path)


def test_a_plain_safetensors_file_is_not_a_checkpoint(tmp_path):
    path = tmp_path / "weights.safetensors"
    save_file({"a": torch.zeros(2)}, str(path))
    with pytest.raises(CheckpointError, match="not a spectralmoe checkpoint"):
        load_checkpoint(path)


@pytest.mark.slow
def test_cli_reports_bad_checkpoints_in_one_line(checkpoint, tmp_path):
    path, _ = checkpoint
    good = run_cli("info", "--checkpoint", path, "--json")
    assert good.returncode == 0, good.stderr
    report = json.loads(good.stdout)
    assert report["classes"][0]["name"] == "class0" and report["checkpoint"]["content_hash"]
    path.write_bytes(path.read_bytes()[:-100])
    assert_one_line_error(run_cli("info", "--checkpoint", path), 2, "truncated")
    assert_one_line_error(run_cli("info", "--checkpoint", tmp_path / "nope.safetensors"), 2,
                          "does not exist")
    junk = tmp_path / "junk.safetensors"
    junk.write_text("not a checkpoint at all")
    assert_one_line_error(run_cli("info", "--checkpoint", junk), 2)
    verbose = run_cli_process("--verbose", "info", "--checkpoint", junk)
    assert verbose.returncode == 2 and "Traceback" in verbose.stderr


def test_a_checkpoint_from_before_a_schema_addition_still_loads(checkpoint):
    """A field added to the config later (with a default) must not invalidate older files."""
    path, model = checkpoint
    tensors, _ = load_checkpoint(path)

    def as_older_writer(meta):
        del meta["model"]["backbone"]["patch_size"]
        del meta["model"]["head"]["replace_query_feat"]
        meta["content_hash"] = content_hash(tensors, meta)
    _rewrite_header(path, as_older_writer)
    loaded, meta = model_from_checkpoint(path)
    assert meta.model.backbone.patch_size == 16
    x = torch.randn(1, 4, 32, 32)
    with torch.no_grad():
        assert torch.equal(loaded(x)[0], model.eval()(x)[0])
