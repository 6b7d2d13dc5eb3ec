"""A small PNG of the class map with a legend, read from the COG's overviews."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import rasterio  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

from ..files import write_atomic  # noqa: E402
from ..labels import CLASS_MAP_NODATA  # noqa: E402

MAX_SIDE = 1024


def write_quicklook(raster: Path | str, dst: Path, classes: list[tuple[int, str, tuple[int, int, int]]],
                    title: str) -> None:
    with rasterio.open(raster) as src:
        scale = max(src.width, src.height) / MAX_SIDE
        shape = (max(1, round(src.height / max(scale, 1))), max(1, round(src.width / max(scale, 1))))
        data = src.read(1, out_shape=shape)
    lut = np.zeros((256, 4), dtype=np.uint8)
    for value, _, rgb in classes:
        lut[value] = (*rgb, 255)
    lut[CLASS_MAP_NODATA] = (0, 0, 0, 0)
    present = set(np.unique(data).tolist())
    fig, ax = plt.subplots(figsize=(8, 8 * shape[0] / shape[1] + 0.8), dpi=100)
    ax.imshow(lut[data], interpolation="nearest")
    ax.set_axis_off()
    ax.set_title(title, fontsize=9)
    handles = [Patch(facecolor=np.array(rgb) / 255, edgecolor="black", linewidth=0.5,
                     label=name if value in present else f"{name} (absent)")
               for value, name, rgb in classes]
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8,
              frameon=False)
    fig.tight_layout()
    try:
        write_atomic(dst, lambda tmp: fig.savefig(tmp, bbox_inches="tight"))
    finally:
        plt.close(fig)
