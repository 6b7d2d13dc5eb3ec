"""Which of a scene's bands feed the model, and in what order, decided by band name."""

from __future__ import annotations

from ... import bands as registry
from ...checkpoint import CheckpointMeta
from ...errors import BandError
from ...io.scene import Scene


def scene_bands(scene: Scene, names: list[str] | None) -> list[registry.Band | None]:
    """The scene's bands in file order: from ``--bands``, else from the file's band descriptions."""
    if names is not None:
        if len(names) != scene.count:
            raise BandError(f"--bands names {len(names)} band(s) but {scene.source} has "
                            f"{scene.count}; name every band in file order")
        return list(registry.resolve_all(names))
    if not any(scene.descriptions):
        raise BandError(f"{scene.source} has no band descriptions; name its bands in file order "
                        f"with --bands (e.g. --bands B4,B3,B2,B8)")
    resolved: list[registry.Band | None] = []
    for description in scene.descriptions:
        try:
            resolved.append(registry.resolve(description) if description else None)
        except BandError:
            resolved.append(None)
    seen: set[str] = set()
    for band in resolved:
        if band is not None and band.name in seen:
            raise BandError(f"{scene.source}: two bands are described as {band.name!r}; use --bands")
        if band is not None:
            seen.add(band.name)
    return resolved


def model_band_indices(scene: Scene, names: list[str] | None, meta: CheckpointMeta) -> list[int]:
    """0-based scene band indices in the checkpoint's band order; exit 3 naming what is missing."""
    have = scene_bands(scene, names)
    wanted = [registry.resolve(b.name) for b in meta.bands]
    found = [registry.find_band(b, have) for b in wanted]
    missing = [b.name for b, i in zip(wanted, found) if i is None]
    if missing:
        listed = ", ".join(b.name if b else "?" for b in have)
        source = "--bands" if names is not None else "its band descriptions"
        raise BandError(f"{scene.source} lacks band(s) {', '.join(missing)} that the model needs "
                        f"(bands from {source}: {listed})")
    return [i for i in found if i is not None]
