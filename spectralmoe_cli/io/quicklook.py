"""A small PNG of the class map with a legend, read from the COG's overviews.

Drawn on a ``Figure`` with its own Agg canvas: no pyplot, so the process's matplotlib backend
(a user's interactive one, say) is neither chosen nor changed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import rasterio
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from ..files import write_atomic
from ..labels import CLASS_MAP_NODATA

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
    # the map's longer side is 8 inches: a tall strip must not make a figure thousands of
    # inches high (3000x5 took 95 s to draw); a narrow one keeps room for its title
    fig = Figure(figsize=(max(2.0, 8 * min(1.0, shape[1] / shape[0])),
                          8 * min(1.0, shape[0] / shape[1]) + 0.8), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    ax.imshow(lut[data], interpolation="nearest")
    ax.set_axis_off()
    ax.set_title(title, fontsize=9)
    handles = [Patch(facecolor=np.array(rgb) / 255, edgecolor="black", linewidth=0.5,
                     label=name if value in present else f"{name} (absent)")
               for value, name, rgb in classes]
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8,
              frameon=False)
    fig.tight_layout()
    write_atomic(dst, lambda tmp: fig.savefig(tmp, bbox_inches="tight"))
