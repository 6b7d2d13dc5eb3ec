"""Build the labelled folders the bundled default model is trained on (see models/default.md).

Source: the Sen1Floods11 hand-labelled chip Spain_7370579 (Sentinel-2 L1C, 10 m, water label).
Its B4, B3, B2, B8 become red, green, blue, nir, mapped linearly per band onto the 8-bit
radiometry of the bundled NAIP example (the 2nd and 98th percentiles of the chip's valid pixels
onto those of the NAIP scene), so the model reads NAIP-like digital numbers. The chip is cut into
128 px tiles; the bottom row of tiles is held out for validation and evaluation.

    python models/make_default_data.py ../shared/data/sen1floods11_sample examples/naip_m_4709963_se_14_1_20200831.tif data/default
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import rasterio
from rasterio.windows import Window, transform as window_transform

TILE = 128
S2_BANDS = [4, 3, 2, 8]  # B4, B3, B2, B8 (1-based in the 13-band chip)
NAMES = ["red", "green", "blue", "nir"]
CLASSES = """ignore = [-1]
[[classes]]
value = 0
name = "land"
color = "#c8b98c"
[[classes]]
value = 1
name = "water"
color = "#1f5fbf"
"""


def percentiles(values: np.ndarray, valid: np.ndarray) -> np.ndarray:
    return np.stack([np.percentile(band[valid], [2, 98]) for band in values])


def main(sen1floods11: Path, naip: Path, out: Path) -> None:
    with rasterio.open(sen1floods11 / "Spain_7370579_S2Hand.tif") as src:
        s2 = src.read(S2_BANDS).astype(np.float64)
        profile, transform = src.profile, src.transform
        s2_valid = (src.read(S2_BANDS) != src.nodata).all(axis=0)
    with rasterio.open(sen1floods11 / "Spain_7370579_LabelHand.tif") as src:
        label = src.read(1)
    with rasterio.open(naip) as src:
        target = src.read().astype(np.float64)
        target_valid = (target != src.nodata).all(axis=0)
    low_high_s2 = percentiles(s2, s2_valid)
    low_high_naip = percentiles(target, target_valid)
    gain = (low_high_naip[:, 1] - low_high_naip[:, 0]) / (low_high_s2[:, 1] - low_high_s2[:, 0])
    offset = low_high_naip[:, 0] - gain * low_high_s2[:, 0]
    dn = np.clip(np.rint(s2 * gain[:, None, None] + offset[:, None, None]), 1, 255).astype(np.uint8)
    dn[:, ~s2_valid] = 0
    label = np.where(s2_valid, label, -1).astype(np.int16)
    height, width = label.shape
    for split in ("train", "val"):
        for kind in ("images", "labels"):
            (out / split / kind).mkdir(parents=True, exist_ok=True)
    image_profile = {**profile, "count": 4, "dtype": "uint8", "nodata": 0, "width": TILE,
                     "height": TILE, "tiled": False, "compress": "deflate"}
    label_profile = {**image_profile, "count": 1, "dtype": "int16", "nodata": -1}
    for row in range(0, height, TILE):
        for col in range(0, width, TILE):
            split = "val" if row + TILE >= height else "train"
            window = Window(col, row, TILE, TILE)
            tile_transform = window_transform(window, transform)
            name = f"spain_7370579_{row:03d}_{col:03d}.tif"
            with rasterio.open(out / split / "images" / name, "w",
                               **{**image_profile, "transform": tile_transform}) as dst:
                dst.write(dn[:, row:row + TILE, col:col + TILE])
                for i, band in enumerate(NAMES, start=1):
                    dst.set_band_description(i, band)
            with rasterio.open(out / split / "labels" / name, "w",
                               **{**label_profile, "transform": tile_transform}) as dst:
                dst.write(label[row:row + TILE, col:col + TILE], 1)
    (out / "water.toml").write_text(CLASSES)
    (out / "harmonisation.json").write_text(json.dumps({
        "bands": NAMES, "sentinel2_bands": ["B4", "B3", "B2", "B8"],
        "rule": "dn = clip(round(gain * s2 + offset), 1, 255), percentiles 2/98 matched",
        "gain": gain.round(6).tolist(), "offset": offset.round(4).tolist(),
    }, indent=2))


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    main(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]))
