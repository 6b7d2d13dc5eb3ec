"""``--mask``: which mask a scene gets (an item's SCL or QA_PIXEL, a mask file, a band of its own).

``auto`` (the default) masks clouds wherever the source says where they are: a Sentinel-2 L2A
item's ``scl`` asset, a Landsat C2 L2 item's ``qa_pixel``; a plain raster has no mask. An
explicit ``scl``/``qa_pixel`` that the source lacks is an input error, not a silent no-op.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pystac
from rasterio.windows import Window

from ...errors import InputDataError, UsageError
from ...io.fetch_read import Grid
from ...io.masks import MaskLayer, MaskRaster, MaskRule, MaskSpec, raster_layer
from ...io.scene import Scene
from ...net import RetryPolicy
from ...stac.mask_assets import QA_PIXEL_KEY, SCL_KEY, find_mask_asset


def attach_mask(scene: Scene, spec: MaskSpec | None, item: pystac.Item | None = None,
                allow_local: bool = False) -> Scene:
    """The scene with its mask layer (or as it is, when no mask applies)."""
    if spec is None or not spec.wanted:
        return scene
    grid = Grid(scene.crs, scene.transform, scene.width, scene.height)
    if item is not None:
        layer = item_mask(grid, scene.policy, spec, item, allow_local)
        return scene if layer is None else replace(scene, mask=layer)
    if spec.kind == "file":
        return replace(scene, mask=_file_layer(grid, scene.policy, spec))
    if spec.kind == "band":
        return replace(scene, mask=_band_layer(scene, spec))
    if spec.kind == "auto":
        return scene
    raise UsageError(f"--mask {spec.kind} reads a STAC item's {spec.kind} asset; for a raster "
                     f"give --mask FILE[:values] or --mask band:NAME[:values]")


def item_mask(grid: Grid, policy: RetryPolicy | None, spec: MaskSpec | None, item: pystac.Item,
              allow_local: bool) -> MaskLayer | None:
    """The mask an item's pixels get, read onto ``grid`` (an item's own, or a mosaic's)."""
    if spec is None or not spec.wanted:
        return None
    if spec.kind == "file":
        return _file_layer(grid, policy, spec)
    if spec.kind == "band":
        return _asset_layer(grid, policy, item, spec.target, spec.user_rule(), allow_local,
                            required=True)
    if spec.kind in ("auto", "scl"):
        layer = _asset_layer(grid, policy, item, SCL_KEY, spec.scl_rule(), allow_local,
                             required=spec.kind == "scl")
        if layer is not None:
            return layer
    if spec.kind in ("auto", "qa_pixel"):
        return _asset_layer(grid, policy, item, QA_PIXEL_KEY, spec.qa_rule(), allow_local,
                            required=spec.kind == "qa_pixel")
    return None


def _asset_layer(grid: Grid, policy: RetryPolicy | None, item: pystac.Item, key: str,
                 rule: MaskRule, allow_local: bool, required: bool) -> MaskLayer | None:
    asset = find_mask_asset(item, key, allow_local=allow_local)
    if asset is None:
        if required:
            raise InputDataError(f"--mask: item {item.id!r} has no {key!r} asset "
                                 f"(it has: {', '.join(item.assets) or 'none'})")
        return None
    return raster_layer(MaskRaster(asset.href, 1, asset.nodata), rule, grid, policy,
                        f"{item.id}:{asset.key}")


def _file_layer(grid: Grid, policy: RetryPolicy | None, spec: MaskSpec) -> MaskLayer:
    path = str(spec.target)
    remote = "://" in path or path.startswith("/vsi")
    if not remote and not Path(path).is_file():
        raise InputDataError(f"--mask {path}: no such file")
    href = f"/vsicurl/{path}" if path.startswith(("http://", "https://")) else path
    return raster_layer(MaskRaster(href if remote else str(Path(path).resolve())),
                        spec.user_rule(), grid, policy, Path(path).name)


def _band_layer(scene: Scene, spec: MaskSpec) -> MaskLayer:
    """One of the scene's own bands, found by its description (any case)."""
    wanted = str(spec.target).strip().lower()
    matches = [i for i, d in enumerate(scene.descriptions) if d and d.strip().lower() == wanted]
    if not matches:
        have = ", ".join(d for d in scene.descriptions if d) or "no band descriptions"
        raise InputDataError(f"--mask band:{spec.target}: {scene.source} has no band so named "
                             f"(it has: {have})")
    index = matches[0]

    def read(window: Window) -> np.ndarray:
        y0, x0 = int(window.row_off), int(window.col_off)
        data, valid = scene.read([index], y0, y0 + int(window.height), x0, x0 + int(window.width))
        return np.where(valid, np.nan_to_num(data[0]), 0).astype(np.int64)

    rule = spec.user_rule()
    return MaskLayer(identity=("band", index, rule.describe()), rule=rule, read=read,
                     label=f"band {spec.target}")
