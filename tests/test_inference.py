"""The model side of predict: normalisation, fixed batches, out-of-memory halving."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from checkpoints import make_checkpoint

from spectralmoe_cli.engine.runtime.devices import pick_device
from spectralmoe_cli.engine.runtime.inference import TileModel
from spectralmoe_cli.engine.runtime.models import model_from_checkpoint
from spectralmoe_cli.errors import UsageError


class OutOfMemoryAboveOne(torch.nn.Module):
    """A real model that, like a full GPU, cannot take more than one tile at a time."""

    def __init__(self, model):
        super().__init__()
        self.inner = model
        self.calls = []

    def forward(self, x):
        self.calls.append(x.shape[0])
        if x.shape[0] > 1:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated by the test model)")
        return self.inner(x)


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    path = make_checkpoint(tmp_path_factory.mktemp("m") / "m.safetensors")
    return model_from_checkpoint(path)


def tiles(n=5, size=32, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(100, 50, (n, 4, size, size)).astype(np.float32), np.ones((n, size, size), bool)


def test_out_of_memory_halves_the_batch_and_goes_on(loaded):
    model, meta = loaded
    data, valid = tiles()
    reference = TileModel(model, meta, torch.device("cpu"), 1, deterministic=True).probabilities(data, valid)
    wrapped = OutOfMemoryAboveOne(model)
    tm = TileModel(model, meta, torch.device("cpu"), 4, deterministic=False)
    tm.forward = wrapped
    probs = tm.probabilities(data, valid)
    assert tm.batch_size == 1 and wrapped.calls[:3] == [4, 2, 1]
    torch.testing.assert_close(probs, reference)


def test_normalisation_uses_checkpoint_statistics_not_the_tile(loaded):
    model, meta = loaded
    tm = TileModel(model, meta, torch.device("cpu"), 2, deterministic=True)
    data, valid = tiles(2)
    a = tm.probabilities(data, valid)
    # the same tile inside a brighter neighbourhood: per-tile normalisation would change it
    shifted = data.copy()
    shifted[1] += 500
    b = tm.probabilities(shifted, valid)
    assert torch.equal(a[0], b[0]) and not torch.equal(a[1], b[1])


def test_invalid_pixels_are_fed_as_the_mean(loaded):
    model, meta = loaded
    tm = TileModel(model, meta, torch.device("cpu"), 1, deterministic=True)
    data, valid = tiles(1)
    holed = data.copy()
    holed[0, :, :8, :8] = np.nan
    mask = valid.copy()
    mask[0, :8, :8] = False
    filled = data.copy()
    filled[0, :, :8, :8] = np.array(meta.mean, np.float32)[:, None, None]
    torch.testing.assert_close(tm.probabilities(holed, mask), tm.probabilities(filled, valid))


def test_device_names_are_checked():
    assert pick_device("cpu").type == "cpu"
    with pytest.raises(UsageError):
        pick_device("tpu:0")
    if not torch.cuda.is_available():
        with pytest.raises(UsageError, match="no CUDA GPU is visible"):
            pick_device("cuda:0")
