"""What a predict run is asked to do: the settings that shape a map, and the options a user gives.

``PredictSettings`` is what the engine runs with (every value decided); ``PredictOptions`` is what
a user says on the command line or in a ``--config`` file (unset values mean "the checkpoint's"
or "the device's"), validated by one schema. The defaults live here, once; ``--help`` reads them.
This module stays light (no torch, no zarr): the CLI imports it to build its options.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BeforeValidator, Field, StrictBool, StrictFloat, StrictInt

from ...bands import DEFAULT_TOLERANCE_NM, parse_band_list
from ...errors import UsageError
from ...io.tiling import BLENDS, FIXED_ONE, axis_tile, max_overlapping_tiles
from ..options import MAX_TILE, CommaText, ComputeFields, Options, RetryFields, SearchFields

if TYPE_CHECKING:
    from ...checkpoint import CheckpointMeta
    from ...io.masks import MaskSpec

DEFAULT_FORMATS = ("cog", "zarr")
FORMATS = (*DEFAULT_FORMATS, "gpkg", "parquet")  # class polygons (io/polygons.py)


def _no_mask() -> MaskSpec:
    from ...io.masks import MaskSpec  # numpy and rasterio: only for a run

    return MaskSpec()
MAX_CHUNK = 16384  # a chunk's buffers (bands x chunk² floats per worker) must fit in memory


@dataclass
class PredictSettings:
    """Everything that changes the map (and so the output name), plus how to run."""

    bands: list[str] | None = None
    tile: int = 512
    overlap: int = 128
    blend: str = "hann"
    nodata: float | None = None
    probabilities: bool = False
    formats: tuple[str, ...] = DEFAULT_FORMATS
    chunk: int = 2048
    force: bool = False
    compress: str = "DEFLATE"
    overview_resampling: str = "MODE"
    mask: MaskSpec = field(default_factory=_no_mask)
    tta: str = "none"
    min_area: float = 0.0  # polygons: drop smaller ones (squared map units)
    simplify: float = 0.0  # polygons: simplification tolerance (map units)
    wavelength_tolerance: float = DEFAULT_TOLERANCE_NM
    resample_spectra: bool = False

    def validate(self) -> None:
        from ...io.cog import COMPRESSIONS, OVERVIEW_RESAMPLINGS  # zarr and rio-cogeo: only for a run
        from ..runtime.tta import TTAS  # torch: only for a run

        if not self.wavelength_tolerance >= 0:
            raise UsageError("--wavelength-tolerance must be 0 or more (nm)")
        if not 16 <= self.tile <= MAX_TILE:
            raise UsageError(f"--tile {self.tile} is out of range: give 16 to {MAX_TILE} "
                             f"(a tile larger than a scene is cut to the scene)")
        if not 0 <= self.overlap < self.tile:
            raise UsageError(f"--overlap must be in [0, tile), got {self.overlap} with tile {self.tile}")
        if self.blend not in BLENDS:
            raise UsageError(f"--blend must be one of {', '.join(BLENDS)}")
        unknown = set(self.formats) - set(FORMATS)
        if unknown or not self.formats:
            raise UsageError(f"--format takes a comma list of {', '.join(FORMATS)}")
        if self.probabilities and "zarr" not in self.formats:
            raise UsageError("--probabilities are stored in the Zarr: add zarr to --format "
                             "(e.g. --format cog,zarr) or drop --probabilities")
        if not 16 <= self.chunk <= MAX_CHUNK:
            raise UsageError(f"--chunk {self.chunk} is out of range: give 16 to {MAX_CHUNK}")
        if self.compress not in COMPRESSIONS:
            raise UsageError(f"--compress must be one of {', '.join(COMPRESSIONS)}")
        if self.overview_resampling not in OVERVIEW_RESAMPLINGS:
            raise UsageError(f"--overview-resampling must be one of {', '.join(OVERVIEW_RESAMPLINGS)}"
                             f" (class maps are never averaged)")
        if self.min_area < 0 or self.simplify < 0:
            raise UsageError("--min-area and --simplify must be >= 0")
        if self.tta not in TTAS:
            raise UsageError(f"--tta must be one of {', '.join(TTAS)}")
        most = max_overlapping_tiles(self.tile, self.tile - self.overlap)
        if most * FIXED_ONE >= 2 ** 31:
            raise UsageError(f"--overlap {self.overlap} with --tile {self.tile} stacks up to {most} tiles "
                             f"on a pixel; keep it below {2 ** 31 // FIXED_ONE}")


    def scene_tiling(self, height: int, width: int, patch: int) -> tuple[int, int, int]:
        """Tile height, width and overlap for one scene: on an axis shorter than the tile, the
        tile is that axis rounded up to the patch size (a larger one would only infer padding);
        when no axis holds a whole tile, the overlap is kept within half the longer side."""
        tile_h, tile_w = axis_tile(height, self.tile, patch), axis_tile(width, self.tile, patch)
        side = max(tile_h, tile_w)
        return tile_h, tile_w, self.overlap if side == self.tile else min(self.overlap, side // 2)


def _format_list(value: Any) -> Any:
    """``cog,zarr`` (or a list) as a tuple of lower-case names."""
    if isinstance(value, str):
        value = value.split(",")
    if isinstance(value, (list, tuple)):
        return tuple(str(v).strip().lower() for v in value if str(v).strip())
    return value


def _upper(value: Any) -> Any:
    return value.upper() if isinstance(value, str) else value


Formats = Annotated[tuple[Literal[FORMATS], ...], BeforeValidator(_format_list), Field(min_length=1)]
UpperText = Annotated[str, BeforeValidator(_upper)]


class TileFields(Options):
    """How images are cut into tiles and blended back (predict and evaluate): unset tile and
    overlap are the checkpoint's."""

    tile: StrictInt | None = None
    overlap: StrictInt | None = None
    blend: Literal[BLENDS] = PredictSettings.blend
    nodata: StrictFloat | None = None

    def tiling(self, meta: CheckpointMeta) -> tuple[int, int]:
        """Tile size and overlap: the ones given, else the checkpoint's. A stored value out of
        range is refused as the checkpoint's, naming the flag that overrides it (the range
        check of ``PredictSettings`` would blame a flag the user never gave)."""
        tile = meta.tile.size if self.tile is None else self.tile
        overlap = meta.tile.overlap if self.overlap is None else self.overlap
        if self.tile is None and not 16 <= tile <= MAX_TILE:
            raise UsageError(f"the checkpoint's tile {tile} is out of range (16 to {MAX_TILE}); "
                             f"give --tile N")
        if self.overlap is None and 16 <= tile <= MAX_TILE and not 0 <= overlap < tile:
            raise UsageError(f"the checkpoint's overlap {overlap} does not fit tile {tile} (it must "
                             f"be in [0, tile)); give --overlap N")
        return tile, overlap


class PredictOptions(TileFields, ComputeFields, SearchFields, RetryFields):
    """``spectralmoe predict``'s options: scenes and/or a STAC search, outputs, tiling, compute."""

    scenes: list[str] = []
    out: Path
    checkpoint: Path | None = None
    bands: CommaText | None = None
    format: Formats = PredictSettings.formats
    probabilities: StrictBool = PredictSettings.probabilities
    chunk: StrictInt = PredictSettings.chunk
    deterministic: StrictBool | None = None
    compress: UpperText = PredictSettings.compress
    overview_resampling: UpperText = PredictSettings.overview_resampling
    compile: StrictBool = False
    scheduler: str | None = None
    cluster: str | None = None
    stac: str | None = None
    allow_local_assets: StrictBool = False
    force: StrictBool = PredictSettings.force
    mask: str = "auto"
    tta: str = PredictSettings.tta
    min_area: StrictFloat = Field(PredictSettings.min_area, ge=0)
    simplify: StrictFloat = Field(PredictSettings.simplify, ge=0)
    wavelength_tolerance: StrictFloat = Field(PredictSettings.wavelength_tolerance, ge=0)
    resample_spectra: StrictBool = PredictSettings.resample_spectra
    mosaic: StrictBool = False
    crs: str | None = None
    resolution: StrictFloat | None = Field(None, gt=0, allow_inf_nan=False)

    def settings(self, meta: CheckpointMeta) -> PredictSettings:
        """The run's settings: what was given, the checkpoint's tiling where nothing was."""
        from ...io.masks import parse_mask  # numpy and rasterio: only for a run

        tile, overlap = self.tiling(meta)
        return PredictSettings(
            bands=parse_band_list(self.bands) if self.bands else None, tile=tile, overlap=overlap,
            blend=self.blend, nodata=self.nodata, probabilities=self.probabilities,
            formats=self.format, chunk=self.chunk, force=self.force, compress=self.compress,
            overview_resampling=self.overview_resampling, mask=parse_mask(self.mask),
            tta=self.tta.lower(), min_area=self.min_area, simplify=self.simplify,
            wavelength_tolerance=self.wavelength_tolerance, resample_spectra=self.resample_spectra)
