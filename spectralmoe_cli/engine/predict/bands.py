"""Which of a scene's bands feed the model, and in what order: by name, else by wavelength.

A scene's bands are named by ``--bands``, else by the file: its band descriptions, or its band
wavelength metadata (``wavelength``/``wavelength_units`` as ENVI and many HSI GeoTIFFs carry,
GDAL's ``CENTRAL_WAVELENGTH_UM``). A model band the scene lacks by name matches the scene band
nearest in centre wavelength within ``--wavelength-tolerance``; with ``--resample-spectra`` the
scene's spectrum is instead interpolated onto every model wavelength it lacks.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from ... import bands as registry
from ...checkpoint import CheckpointMeta
from ...errors import BandError
from ...io.scene import Scene
from ...io.spectra import SpectralMix, interpolation_mix

log = logging.getLogger(__name__)
ADVICE = "; --wavelength-tolerance sets it, --resample-spectra interpolates the spectrum instead"


@dataclass(frozen=True)
class BandSelection:
    """The scene bands to read (0-based, in this order) and, when resampling, how to mix them."""

    indices: list[int]
    mix: SpectralMix | None = None

    def key(self) -> list:
        """What of the selection changes the map (part of the output name)."""
        return self.indices if self.mix is None else [self.indices, [list(w) for w in self.mix.weights]]


def _file_band(scene: Scene, k: int) -> registry.Band | None:
    description = scene.descriptions[k]
    if description:
        try:
            return registry.resolve(description)
        except BandError:
            pass
    tags = scene.band_tags[k] if k < len(scene.band_tags) else {}
    if tags.get("CENTRAL_WAVELENGTH_UM"):
        return registry.wavelength_from_metadata(tags["CENTRAL_WAVELENGTH_UM"], "um")
    if tags.get("wavelength"):
        return registry.wavelength_from_metadata(tags["wavelength"], tags.get("wavelength_units"))
    return None


def scene_bands(scene: Scene, names: list[str] | None) -> list[registry.Band | None]:
    """The scene's bands in file order: from ``--bands``, else from the file's band metadata."""
    if names is not None:
        if len(names) != scene.count:
            raise BandError(f"--bands names {len(names)} band(s) but {scene.source} has "
                            f"{scene.count}; name every band in file order")
        return list(registry.resolve_all(names))
    resolved = [_file_band(scene, k) for k in range(scene.count)]
    if not any(resolved):
        raise BandError(f"{scene.source} has no band descriptions or wavelengths; name its bands in "
                        f"file order with --bands (e.g. --bands B4,B3,B2,B8 or 466nm,481nm,...)")
    seen: set[str] = set()
    for band in resolved:
        if band is not None and band.name in seen:
            raise BandError(f"{scene.source}: two bands are described as {band.name!r}; use --bands")
        if band is not None:
            seen.add(band.name)
    return resolved


def select_bands(scene: Scene, names: list[str] | None, meta: CheckpointMeta,
                 tolerance_nm: float = registry.DEFAULT_TOLERANCE_NM,
                 resample: bool = False) -> BandSelection:
    """The scene bands in the checkpoint's band order; exit 3 naming what is missing."""
    have = scene_bands(scene, names)
    wanted = [registry.resolve(b.name) for b in meta.bands]
    if resample:
        return _resampled(scene, have, wanted)
    try:
        matches = registry.match_bands(have, wanted, tolerance_nm, ADVICE)
    except BandError as exc:
        source = "--bands" if names is not None else "its band metadata"
        raise BandError(f"{scene.source} (bands from {source}): {exc}") from None
    near = [m for m in matches if m.model.name != m.scene.name]
    if near:
        log.info("%s: matched by wavelength within %g nm: %s", scene.source, tolerance_nm,
                 ", ".join(f"{m.model.name}<-{m.scene.name} ({m.offset_nm:+.1f} nm)" for m in near))
    return BandSelection([m.index for m in matches])


def _resampled(scene: Scene, have: list[registry.Band | None],
               wanted: list[registry.Band]) -> BandSelection:
    """Every model band from the scene's spectrum, linearly interpolated per pixel."""
    optical = [(i, b.wavelength * 1000.0) for i, b in enumerate(have)
               if b is not None and b.wavelength is not None]
    lacking = [b.name for b in wanted if b.wavelength is None]
    if lacking:
        raise BandError(f"--resample-spectra needs a wavelength for every model band; "
                        f"{', '.join(lacking)} has none")
    try:
        mix = interpolation_mix(optical, [b.wavelength * 1000.0 for b in wanted])
    except BandError as exc:
        raise BandError(f"{scene.source}: {exc}") from None
    log.info("%s: spectrum resampled onto the model's %d band(s) from %d scene band(s)",
             scene.source, len(wanted), len(mix.sources))
    return BandSelection(list(mix.sources), mix)
