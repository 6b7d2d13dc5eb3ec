"""The fetch world served for real on 127.0.0.1: nginx for the assets (with Range), rustac for
the STAC API, and fault-injecting proxies in front of each; shared by the fetch and the
``predict --stac`` tests, with the quick retry options and the ``predict`` call they use.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import fetch_world
from helpers import run_cli
from stac_servers import FaultProxy, Nginx, Rustac

FAST = ("--retries", "2", "--retry-backoff", "0.01", "--timeout", "5")
MAY = ("--datetime", "2024-05-01/2024-05-31")


def predict(ckpt: Path, out: Path, *args: object) -> subprocess.CompletedProcess:
    """``predict ARGS`` with ``ckpt`` into ``out``: JSON results, quick retries against the
    local servers."""
    return run_cli("predict", *args, "--checkpoint", ckpt, "--out", out, "--json", *FAST,
                   timeout=300)


class Servers:
    def __init__(self, root: Path):
        self.nginx = Nginx(root / "assets", root / "nginx")
        self.flaky = FaultProxy(self.nginx.url)
        self.world = fetch_world.build(root, self.nginx.url, self.flaky.url)
        self.rustac = Rustac(self.world.stac_files)
        self.api = FaultProxy(self.rustac.url)
        self.bbox = ",".join(repr(v) for v in fetch_world.aoi_lonlat())

    def fetch(self, out: Path, collection: str = "s2-test", *extra: str, catalog: str = ""):
        args = ["fetch", "--catalog", catalog or self.api.url, "--collection", collection,
                "--out", out, *FAST]
        if "--bbox" not in extra and "--intersects" not in extra:
            args += ["--bbox", self.bbox]
        if "--datetime" not in extra:
            args += list(MAY)
        return run_cli(*args, *extra, timeout=120)

    def stop(self) -> None:
        for server in (self.api, self.rustac, self.flaky, self.nginx):
            server.stop()
