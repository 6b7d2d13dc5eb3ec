"""Predict on a dask.distributed cluster: one task per chunk, one model per worker.

A chunk's task waits for its upper, left and upper-left neighbours (their spills), so chunks run
in anti-diagonal waves. Tasks are idempotent: a task lost with its worker is simply run again on
another one and writes the same bits, so the map equals a local run. Workers load the model once
and keep it; with GPUs each worker holds one (a ``GPU`` resource). Output and spill folders must be
visible to every worker (a shared filesystem).
"""

from __future__ import annotations

import logging
import os
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ...errors import TransientError, UsageError
from ...io import zarr_store
from ..runtime.models import load_tile_model
from .chunks import SceneJob, exchange_spills, finish_chunk, infer_chunk, read_chunk, write_chunk
from .sources import open_source

log = logging.getLogger(__name__)

_MODELS: dict = {}  # per worker process: the loaded TileModel, by ModelSpec (content hash included)
_SCENES: OrderedDict = OrderedDict()  # per worker process: recently opened scenes, by output store
_KEEP_SCENES = 4


@dataclass(frozen=True)
class ModelSpec:
    """The model a worker loads; the content hash makes a retrained file a different model."""

    checkpoint: str
    content_hash: str
    device: str
    batch_size: int | None
    deterministic: bool | None
    compile_model: bool = False
    tta: str = "none"


def _worker_device(requested: str) -> str:
    """One GPU per worker: worker k of a local cluster takes cuda:(k mod GPUs)."""
    import torch

    if requested != "auto" or not torch.cuda.is_available():
        return requested if requested != "auto" else "cpu"
    from distributed import get_worker

    name = str(get_worker().name)
    index = int(name) if name.isdigit() else abs(hash(name))
    return f"cuda:{index % torch.cuda.device_count()}"


def _model(spec: ModelSpec):
    if spec not in _MODELS:
        _MODELS.clear()  # one model per worker
        _MODELS[spec] = load_tile_model(Path(spec.checkpoint), _worker_device(spec.device),
                                        spec.batch_size, spec.deterministic, spec.compile_model,
                                        spec.tta)
    return _MODELS[spec]


def run_chunk_task(job: SceneJob, spec: ModelSpec, i: int, j: int, *neighbours: dict) -> dict:
    """The whole chunk on a worker; ``neighbours`` only order the task after them."""
    from distributed import get_worker

    model = _model(spec)
    if model.meta.content_hash != spec.content_hash:
        raise RuntimeError(f"{spec.checkpoint} changed while the run was going on")
    key = job.store  # the output name encodes the scene's identity, AOI and settings
    if key not in _SCENES:
        _SCENES[key] = open_source(job.opener, model.meta, job.mask).with_nodata(job.nodata)
        while len(_SCENES) > _KEEP_SCENES:
            _SCENES.popitem(last=False)
    _SCENES.move_to_end(key)
    start = time.perf_counter()
    read = read_chunk(job, _SCENES[key], i, j)
    infer_start = time.perf_counter()
    tiles = infer_chunk(job, model, read)
    infer = time.perf_counter() - infer_start
    exchange_spills(job, read)
    write = write_chunk(job, zarr_store.open_store(job.store), finish_chunk(job, read),
                        drop_consumed=False)
    return {"chunk": [i, j], "worker": str(get_worker().name), "pid": os.getpid(), "tiles": tiles,
            "seconds": {"read": read.seconds, "infer": infer, "write": write,
                        "total": time.perf_counter() - start}}


class DaskRunner:
    """A client on an existing scheduler (``tcp://host:port``) or on a LocalCluster of N workers."""

    def __init__(self, spec: ModelSpec, scheduler: str | None = None,
                 local_workers: int | None = None) -> None:
        from distributed import Client, LocalCluster

        self.spec = spec
        self.cluster = None
        if local_workers is not None:
            if local_workers < 1:
                raise UsageError("--cluster local:N needs N >= 1")
            import torch

            resources = {"GPU": 1} if torch.cuda.is_available() and spec.device != "cpu" else None
            self.cluster = LocalCluster(n_workers=local_workers, threads_per_worker=1,
                                        processes=True, resources=resources,
                                        dashboard_address=None)
            try:
                self.client = Client(self.cluster)
            except BaseException:
                self.cluster.close()
                raise
        else:
            try:
                self.client = Client(scheduler, timeout="10s")
            except (OSError, TimeoutError) as exc:
                raise TransientError(f"cannot reach the dask scheduler {scheduler}: {exc}") from exc
            except ValueError as exc:
                raise UsageError(f"--scheduler {scheduler!r} is not an address such as "
                                 f"tcp://host:8786 ({exc})") from exc
        self.resources = {"GPU": 1} if self._cluster_has_gpus() else None

    def _cluster_has_gpus(self) -> bool:
        workers = self.client.scheduler_info().get("workers", {}).values()
        return any("GPU" in w.get("resources", {}) for w in workers)

    def fill(self, job: SceneJob, todo: list[tuple[int, int]], result, advance: Callable[[], None]) -> None:
        """Submit the chunks with their neighbour dependencies; wait; record who did what."""
        from distributed import as_completed

        futures = {}
        run_id = os.urandom(4).hex()
        for i, j in todo:
            needs = [futures[n] for n in ((i - 1, j), (i, j - 1), (i - 1, j - 1)) if n in futures]
            futures[(i, j)] = self.client.submit(
                run_chunk_task, job, self.spec, i, j, *needs, key=f"chunk-{run_id}-{i}-{j}",
                retries=3, resources=self.resources, pure=False)
        for future in as_completed(list(futures.values())):
            done = future.result()
            result.tiles += done["tiles"]
            result.chunks_computed += 1
            for part in ("read", "infer", "write"):
                result.seconds[part] += done["seconds"][part]
            worker = result.workers.setdefault(done["worker"], {"chunks": 0, "tiles": 0})
            worker["chunks"] += 1
            worker["tiles"] += done["tiles"]
            advance()

    def close(self) -> None:
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()


def parse_cluster(text: str) -> int:
    """``local:N`` -> N."""
    kind, _, count = text.partition(":")
    if kind != "local" or not count.isdigit():
        raise UsageError(f"--cluster {text!r}: use local:N (N workers on this machine)")
    return int(count)
