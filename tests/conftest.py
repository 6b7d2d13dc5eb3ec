from __future__ import annotations

from pathlib import Path

import pytest
import torch
from helpers import skip_or_fail
from stac_servers import missing_servers

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"

torch.set_num_threads(2)


@pytest.fixture(autouse=True)
def _isolated_caches(tmp_path_factory, monkeypatch):
    """No test sees the user's caches or the network: weights come only from test files."""
    home = tmp_path_factory.mktemp("caches")
    monkeypatch.setenv("SPECTRALMOE_WEIGHTS", str(home / "weights"))
    monkeypatch.setenv("HF_HOME", str(home / "hf"))
    monkeypatch.setenv("HF_HUB_CACHE", str(home / "hf" / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TORCH_HOME", str(home / "torch"))


@pytest.fixture
def shared_data() -> Path:
    if not SHARED.is_dir():  # real data is optional: a checkout alone still tests everything else
        pytest.skip("../shared/data is not beside the checkout")
    return SHARED


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    """A STAC API (rustac), an asset server with Range support (nginx) and a fault proxy."""
    from served_world import Servers

    reason = missing_servers()
    if reason:
        skip_or_fail(reason)
    started = Servers(tmp_path_factory.mktemp("served_world"))
    yield started
    started.stop()


@pytest.fixture
def flaky(servers):
    """The fault-injecting proxy, reset after each test."""
    yield servers.flaky
    servers.flaky.faults.clear()
    servers.flaky.down = False
