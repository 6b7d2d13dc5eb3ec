"""predict: stream scenes through the model into class maps (Zarr, COG, STAC item, quicklook).

Per scene: a deterministic output name; a lock; a ``.partial`` Zarr store filled chunk by chunk
(row-major, each chunk's completion marked, its overhang spilled to disk) so a killed run resumes
with the missing chunks only; then the COG, quicklook and STAC item, each renamed into place when
complete. Reading the next chunk overlaps with inference on the current one.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np
from rasterio.errors import RasterioError
from rasterio.windows import Window

from ... import __version__
from ...checkpoint import CheckpointMeta
from ...errors import InputDataError, SpectralMoEError, UsageError
from ...files import disk_error, discard_partials, exclusive_lock, json_float, rename_into_place
from ...io import zarr_store
from ...io.cog import write_class_cog
from ...io.quicklook import write_quicklook
from ...io.rasters import block_windows
from ...io.scene import Scene
from ...io.stac_item import build_item, write_item
from ...io.polygons import VECTOR_FORMATS, write_class_polygons
from ...io.tiling import Grid
from ...net import describe
from ..runtime.inference import TileModel
from ..runtime.progress import Progress
from .bands import BandSelection, select_bands
from .buffers import BufferPool
from .chunks import SceneJob, exchange_spills, finish_chunk, infer_chunk, read_chunk, write_chunk
from .settings import PredictSettings
from .sources import StacSource, open_source
from .value_range import warn_if_off_scale

log = logging.getLogger(__name__)


@dataclass
class SceneResult:
    scene: str
    status: str  # done | skipped | failed
    name: str | None = None
    outputs: dict[str, str] = field(default_factory=dict)
    pixels: int = 0
    tiles: int = 0
    chunks_computed: int = 0
    chunks_resumed: int = 0
    seconds: dict[str, float] = field(default_factory=lambda: {"read": 0.0, "infer": 0.0, "write": 0.0})
    workers: dict[str, dict] = field(default_factory=dict)
    error: str | None = None
    exit_code: int | None = None
    masked_fraction: float | None = None  # share of the map's pixels the mask removed


def output_name(scene: Scene, meta: CheckpointMeta, settings: PredictSettings,
                band_index: list) -> str:
    """``<scene stem>_<model>_<8 hex>``: the same scene, model and settings give the same name."""
    source = Path(scene.source)
    if scene.origin is not None:
        identity = list(scene.origin.identity)
    elif source.is_file():
        stat = source.stat()
        identity = [str(source.resolve()), stat.st_size, stat.st_mtime_ns]
    elif source.is_dir():  # a Zarr store: rewriting any chunk must change the name
        stats = [p.stat() for p in source.rglob("*") if p.is_file()]
        identity = [str(source.resolve()), sum(st.st_size for st in stats),
                    max((st.st_mtime_ns for st in stats), default=0)]
    else:
        identity = [scene.source]
    key = {
        "scene": identity, "checkpoint": meta.content_hash, "tile": settings.tile,
        "overlap": settings.overlap, "blend": settings.blend, "bands": band_index,
        "nodata": settings.nodata, "probabilities": settings.probabilities,
    }
    if scene.mask is not None:  # left out without a mask: today's names stay as they are
        key["mask"] = list(scene.mask.identity)
    if settings.tta != "none":
        key["tta"] = settings.tta
    if set(settings.formats) & set(VECTOR_FORMATS) and (settings.min_area or settings.simplify):
        key["polygons"] = [settings.min_area, settings.simplify]
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:8]
    stem = scene.origin.name if scene.origin else (source.name.split(".")[0] or "scene")
    stem = "".join(c if c.isprintable() else "_" for c in stem)  # no newline or ESC in a file name
    return f"{stem}_{meta.model.name}_{digest}"


def _classes(meta: CheckpointMeta) -> list[tuple[int, str, tuple[int, int, int]]]:
    return [(c.value, c.name, c.rgb()) for c in meta.classes]


class ScenePredictor:
    """Runs one scene into the output folder: through a local TileModel or on a dask cluster."""

    def __init__(self, meta: CheckpointMeta, tile_model: TileModel | None,
                 settings: PredictSettings, out_dir: Path, progress: Progress, cluster=None) -> None:
        self.model = tile_model
        self.cluster = cluster
        self.meta = meta
        self.settings = settings
        self.out_dir = out_dir
        self.progress = progress
        self.buffers = BufferPool()  # chunk accumulators, reused across chunks and scenes

    def run(self, source: str | StacSource, log_errors: bool = True) -> SceneResult:
        """Predict one scene; its failure is recorded in the result, never raised."""
        result = SceneResult(scene=str(source), status="failed")
        try:
            self._run(source, result)
        except SpectralMoEError as exc:
            result.error, result.exit_code = str(exc), exc.exit_code
            if log_errors:
                log.error("%s: %s", source, exc)
        except Exception as exc:  # a full disk, or a bug: one scene must not stop the others
            full = disk_error(exc, self.out_dir)
            if full is not None:
                result.error, result.exit_code = str(full), full.exit_code
                if log_errors:
                    log.error("%s: %s", source, full)
                return result
            log.exception("%s: internal error", source)
            result.error, result.exit_code = f"internal error: {type(exc).__name__}: {exc}", 1
        return result

    def class_blocks(self, source: str) -> Iterator[tuple[Window, np.ndarray]]:
        """The class map of one scene through the same tiled engine, block by block (for evaluate).

        The map is written to a store in the output folder, read back one store chunk at a time
        (memory stays flat in scene size, as predict's) and removed; nothing else is produced.
        """
        scene = open_source(source, self.meta, self.settings.mask).with_nodata(self.settings.nodata)
        selection = self._select(scene)
        paths = self._paths(output_name(scene, self.meta, self.settings, selection.key()))
        for key in ("partial", "spill"):
            _remove(paths[key])
        try:
            self._fill_store(scene, selection, paths, SceneResult(scene=source, status="failed"))
            classes = zarr_store.open_store(paths["partial"])["classes"]
            for window in block_windows(scene.width, scene.height, classes.chunks[0]):
                rows, cols = window.toslices()
                yield window, np.asarray(classes[rows, cols])
        finally:
            _remove(paths["partial"])
            _remove(paths["spill"])

    def _select(self, scene: Scene) -> BandSelection:
        s = self.settings
        return select_bands(scene, s.bands, self.meta, s.wavelength_tolerance, s.resample_spectra)

    def _paths(self, name: str) -> dict[str, Path]:
        out = self.out_dir
        return {"zarr": out / f"{name}.zarr", "partial": out / f"{name}.zarr.partial",
                "spill": out / f"{name}.zarr.partial.spill",
                "cog": out / f"{name}.tif", "item": out / f"{name}.json",
                "quicklook": out / f"{name}.png", "lock": out / f".{name}.lock",
                **{fmt: out / f"{name}.{fmt}" for fmt in VECTOR_FORMATS}}

    def _run(self, source: str | StacSource, result: SceneResult) -> None:
        settings = self.settings
        scene = open_source(source, self.meta, settings.mask)
        if scene is None:
            result.status = "skipped"
            return
        scene = scene.with_nodata(settings.nodata)
        if scene.crs is None:
            log.warning("%s has no CRS: the map keeps its pixel grid but has no georeferencing", source)
        selection = self._select(scene)
        name = output_name(scene, self.meta, settings, selection.key())
        paths = self._paths(name)
        result.name = name
        wanted = ["item", "quicklook", *settings.formats]
        if not settings.force and all(paths[k].exists() for k in wanted):
            result.status = "skipped"
            result.outputs = {k: str(paths[k]) for k in wanted}
            log.info("%s: up to date (%s), skipped", source, name)
            return
        with exclusive_lock(paths["lock"], f"another spectralmoe run is writing {name}; try later"):
            try:
                self._write_scene(scene, selection, name, source, paths, result)
            except InputDataError:  # the input itself is bad: there is nothing to resume
                for key in ("partial", "spill", "lock"):
                    _remove(paths[key])
                raise
        result.status = "done"

    def _write_scene(self, scene: Scene, selection: BandSelection, name: str,
                     source: str | StacSource, paths: dict[str, Path], result: SceneResult) -> None:
        for key in ("cog", "item", "quicklook"):  # what a killed run left half-written
            discard_partials(paths[key])
        if self.settings.force:
            for key in ("zarr", "partial", "spill", "cog", "item", "quicklook", *VECTOR_FORMATS):
                _remove(paths[key])
        if not paths["zarr"].exists():
            if not zarr_store.is_finalized(paths["partial"]):  # else: killed just before the rename
                self._fill_store(scene, selection, paths, result, source)
                zarr_store.settle_masked_fraction(paths["partial"])
                zarr_store.finalize_store(paths["partial"])
            rename_into_place(paths["partial"], paths["zarr"])
        try:
            self._derive_outputs(scene, name, str(source), paths, result)
        except (RasterioError, ValueError, KeyError) as exc:
            # an existing output someone damaged: the map, item and quicklook are made again
            # from the Zarr; a damaged Zarr itself needs --force
            log.warning("%s: an existing output cannot be read (%s); writing it again", name, describe(exc))
            for key in ("cog", "item", "quicklook"):
                _remove(paths[key])
            try:
                self._derive_outputs(scene, name, str(source), paths, result)
            except (RasterioError, ValueError, KeyError) as again:
                if "No space left" in str(again):  # a full disk is not a damaged output
                    raise
                raise UsageError(f"existing output {paths['zarr']} cannot be read ({describe(again)}); "
                                 f"rerun with --force to recompute it") from again

    def _fill_store(self, scene: Scene, selection: BandSelection, paths: dict[str, Path],
                    result: SceneResult, opener: str | StacSource | None = None) -> None:
        s = self.settings
        tile_h, tile_w, overlap = s.scene_tiling(scene.height, scene.width,
                                                 self.meta.model.backbone.patch_size)
        if (tile_h, tile_w) != (s.tile, s.tile):
            sides = ("rows and columns" if tile_h != s.tile and tile_w != s.tile
                     else "rows" if tile_h != s.tile else "columns")
            log.info("%s: tile %d is larger than the %dx%d scene's %s; using %dx%d",
                     scene.source, s.tile, scene.height, scene.width, sides, tile_h, tile_w)
        grid = Grid(scene.height, scene.width, tile_h, tile_w, max(tile_h, tile_w) - overlap)
        chunk = max(grid.chunk_size(s.chunk), -(-grid.tile // grid.stride) * grid.stride)
        store = paths["partial"]
        if store.exists():
            attrs = json.loads((store / ".zattrs").read_text()) if (store / ".zattrs").exists() else {}
            if attrs.get("spectralmoe:chunk") != chunk or not zarr_store.is_resumable(store):
                log.info("%s: discarding a partial output made with another chunk size or "
                         "left unfinished while it was created", store.name)
                _remove(store)
                _remove(paths["spill"])
        if not store.exists():
            _remove(paths["spill"])
            zarr_store.create_store(
                store, scene.height, scene.width, chunk, scene.crs, scene.transform,
                len(self.meta.classes), s.probabilities,
                {"spectralmoe:chunk": chunk, "spectralmoe:source": scene.source,
                 "spectralmoe:checkpoint_hash": self.meta.content_hash,
                 "classes": [c.model_dump() for c in self.meta.classes]})
            if scene.mask is not None:
                zarr_store.add_masked_table(zarr_store.open_store(store))
        job = SceneJob(source=scene.source, band_index=tuple(selection.indices), nodata=s.nodata,
                       height=scene.height, width=scene.width, tile_h=tile_h, tile_w=tile_w,
                       stride=grid.stride,
                       chunk=chunk, blend=s.blend, probabilities=s.probabilities,
                       num_classes=len(self.meta.classes), store=str(store),
                       spill_dir=str(paths["spill"]), opener=opener or scene.source,
                       mask=s.mask if scene.mask is not None else None, mix=selection.mix)
        group = zarr_store.open_store(store)
        chunks = grid.chunks(chunk)
        todo = [c for c in chunks if not zarr_store.chunk_done(group, *c)]
        result.chunks_resumed = len(chunks) - len(todo)
        result.pixels = scene.height * scene.width
        if result.chunks_resumed:
            log.info("%s: resuming, %d of %d chunks already done", scene.source,
                     result.chunks_resumed, len(chunks))
        task = self.progress.start(Path(scene.source).name, total=len(todo))
        if self.cluster is not None:
            self.cluster.fill(job, todo, result, lambda: self.progress.advance(task))
        else:
            self._fill_local(job, scene, group, todo, result, lambda: self.progress.advance(task))
        self.progress.finish(task)
        _remove(paths["spill"])

    def _fill_local(self, job: SceneJob, scene: Scene, group, todo: list[tuple[int, int]],
                    result: SceneResult, advance) -> None:
        """Row-major; the next chunk is read and the last one written while this one infers."""
        with ThreadPoolExecutor(1, thread_name_prefix="read") as reader, \
                ThreadPoolExecutor(1, thread_name_prefix="write") as writer:
            pool = self.buffers
            next_read: Future | None = reader.submit(read_chunk, job, scene, *todo[0], pool) \
                if todo else None
            last_write: Future | None = None
            for n in range(len(todo)):
                read = next_read.result()
                next_read = reader.submit(read_chunk, job, scene, *todo[n + 1], pool) \
                    if n + 1 < len(todo) else None
                result.seconds["read"] += read.seconds
                if n == 0:
                    warn_if_off_scale(read.data, read.valid, self.meta, job.source)
                start = time.perf_counter()
                result.tiles += infer_chunk(job, self.model, read)
                result.seconds["infer"] += time.perf_counter() - start
                read.data = None  # the input is not needed any more: only the sums and validity
                exchange_spills(job, read)
                maps = finish_chunk(job, read)
                self.buffers.give_back(read.mosaic.acc)
                del read
                if last_write is not None:
                    result.seconds["write"] += last_write.result()
                last_write = writer.submit(write_chunk, job, group, maps, True)
                result.chunks_computed += 1
                advance()
            if last_write is not None:
                result.seconds["write"] += last_write.result()

    def _derive_outputs(self, scene: Scene, name: str, source: str, paths: dict[str, Path],
                        result: SceneResult) -> None:
        start = time.perf_counter()
        classes = _classes(self.meta)
        formats = self.settings.formats
        if "cog" in formats and not paths["cog"].exists():
            write_class_cog(paths["zarr"], paths["cog"], scene.crs, scene.transform, classes,
                            self.settings.compress, self.settings.overview_resampling)
        if not paths["quicklook"].exists():
            raster = paths["cog"] if "cog" in formats else f'ZARR:"{paths["zarr"]}":/classes'
            write_quicklook(raster, paths["quicklook"], classes,
                            f"{Path(source).name} — {self.meta.model.name}")
        missing = {f: paths[f] for f in VECTOR_FORMATS if f in formats and not paths[f].exists()}
        if missing:  # polygonised once for every vector format asked for
            write_class_polygons(paths["zarr"], missing, scene.crs, scene.transform, classes,
                                 self.settings.min_area, self.settings.simplify)
        assets = {"quicklook": paths["quicklook"]}
        if "cog" in formats:
            assets["classes"] = paths["cog"]
        if "zarr" in formats:
            assets["zarr"] = paths["zarr"]
        for fmt in VECTOR_FORMATS:
            if fmt in formats:
                assets[f"polygons_{fmt}"] = paths[fmt]
        settings = {k: v for k, v in asdict(self.settings).items()
                    if k in ("tile", "overlap", "blend", "probabilities")}
        settings["nodata"] = json_float(self.settings.nodata)
        tile_h, tile_w, _ = self.settings.scene_tiling(scene.height, scene.width,
                                                       self.meta.model.backbone.patch_size)
        if (tile_h, tile_w) != (self.settings.tile, self.settings.tile):  # cut to the scene
            settings["tile_shape"] = [tile_h, tile_w]
        extra = {}
        if self.settings.tta != "none":
            settings["tta"] = self.settings.tta
        if scene.mask is not None:
            settings["mask"] = {"source": scene.mask.label, "invalid": scene.mask.rule.describe()}
            result.masked_fraction = zarr_store.masked_fraction(paths["zarr"])
            extra[zarr_store.MASKED_FRACTION] = result.masked_fraction
        item = build_item(name, source, scene.crs, scene.transform, scene.height, scene.width,
                          classes, assets, {"name": self.meta.model.name,
                                            "checkpoint_hash": self.meta.content_hash},
                          settings, __version__, _derived_from(scene),
                          extra)
        write_item(item, paths["item"])
        if "zarr" not in formats:
            _remove(paths["zarr"])
        result.outputs = {k: str(paths[k]) for k in ("item", "quicklook", "cog", "zarr",
                                                     *VECTOR_FORMATS) if paths[k].exists()}
        result.seconds["write"] += time.perf_counter() - start


def _derived_from(scene: Scene) -> tuple[str, ...]:
    """The STAC items a map comes from: a mosaic's every item, a single item's own."""
    if scene.origin is None:
        return ()
    return scene.origin.derived_from or (scene.origin.href,)


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def check_output_dir(out_dir: Path) -> None:
    """Fail early (exit 2) on an output folder that cannot be created or written."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        probe = out_dir / f".write-test-{os.getpid()}"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise UsageError(f"cannot write to --out {out_dir}: {exc.strerror or exc}") from exc
