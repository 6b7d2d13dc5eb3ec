"""Bad and unusual inputs on all six commands: each is one ``error:`` line, its exit code, no
traceback, and nothing unexpected on disk. Cases that already passed stay here so they keep passing.

Every case runs the real CLI in-process on real files (tiny checkpoints, small GeoTIFFs) and,
for catalogs, a real HTTP server on 127.0.0.1 serving a static catalog.
"""

from __future__ import annotations

import functools
import http.server
import json
import socket
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import rasterio
from checkpoints import make_checkpoint
from helpers import run_cli
from safetensors.torch import save_file
from scenes import smooth_field, write_scene

from spectralmoe_cli.checkpoint import content_hash, load_checkpoint

RGBN = ["red", "green", "blue", "nir"]


@dataclass
class World:
    """Everything the cases point at, made once per module."""

    root: Path
    url: str  # a static STAC catalog served over HTTP
    closed: str  # a port nothing listens on

    def __truediv__(self, name: str) -> Path:
        return self.root / name


def _forged_stats(ck: Path, dest: Path, std: float) -> Path:
    """A checkpoint with ``std`` as every band's std and a *valid* content hash: only the
    statistics check can refuse it."""
    tensors, meta = load_checkpoint(ck)
    header = meta.model_dump(mode="json")
    header["std"] = [std] * len(header["std"])
    header.pop("content_hash")
    header["content_hash"] = content_hash(tensors, header)
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(dest),
              metadata={"spectralmoe": json.dumps(header)})
    return dest


def _labelled(root: Path, constant: bool = False) -> Path:
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    rng = np.random.default_rng(0)
    for k in range(2):
        data = np.full((3, 48, 48), 7.0, np.float32) if constant else smooth_field(48, 48, 3, seed=k)
        write_scene(root / "images" / f"t{k}.tif", data)
        write_scene(root / "labels" / f"t{k}.tif", rng.integers(0, 3, (1, 48, 48)).astype(np.uint8))
    return root


def _serve(folder: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    handler = functools.partial(_Quiet, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # the test output is the CLI's, not the server's
        pass


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad_inputs")
    ck = make_checkpoint(root / "ck.safetensors")
    _forged_stats(ck, root / "nan.safetensors", float("nan"))
    _forged_stats(ck, root / "tiny_std.safetensors", 1e-30)
    make_checkpoint(root / "forged_names.safetensors",
                    class_names=["water\nerror: forged line", "trees\x1b[31m", "roads"])
    (root / "truncated.safetensors").write_bytes(ck.read_bytes()[:5000])
    make_checkpoint(root / "absurd_tile.safetensors", tile=100000, overlap=16)
    make_checkpoint(root / "wide_overlap.safetensors", tile=64, overlap=48)
    scene = smooth_field(40, 50, 4)
    write_scene(root / "scene.tif", scene, descriptions=RGBN)
    write_scene(root / "line\nbreak.tif", scene, descriptions=RGBN)
    write_scene(root / "nodesc.tif", scene)
    with rasterio.open(root / "scene.tif") as src:  # a compressed, tiled copy, then damaged
        profile = {**src.profile, "compress": "deflate", "tiled": True, "blockxsize": 16, "blockysize": 16}
        with rasterio.open(root / "damaged.tif", "w", **profile) as dst:
            dst.write(src.read())
            for i, name in enumerate(RGBN):
                dst.set_band_description(i + 1, name)
    raw = bytearray((root / "damaged.tif").read_bytes())
    raw[len(raw) // 3:len(raw) // 2] = bytes(len(raw) // 2 - len(raw) // 3)
    (root / "damaged.tif").write_bytes(bytes(raw))
    bands = "".join(f'<VRTRasterBand dataType="Float32" band="{i}"><SimpleSource><SourceFilename '
                    f'relativeToVRT="1">gone.tif</SourceFilename><SourceBand>1</SourceBand>'
                    f'</SimpleSource></VRTRasterBand>' for i in range(1, 5))
    (root / "missing_source.vrt").write_text(f'<VRTDataset rasterXSize="50" rasterYSize="40">{bands}</VRTDataset>')
    (root / "a_file").write_text("not a folder")
    _labelled(root / "labelled")
    _labelled(root / "flat", constant=True)
    (root / "classes.toml").write_text("".join(f'[[classes]]\nvalue = {v}\nname = "c{v}"\ncolor = "#00000{v}"\n'
                                               for v in range(3)))
    for name, std in (("nan_stats.json", "NaN"), ("tiny_stats.json", "1e-30")):
        (root / name).write_text('{"bands": [' + ", ".join(
            f'{{"name": "{b}", "mean": 1.0, "std": {std}}}' for b in ("red", "green", "blue")) + "]}")
    static = root / "static"
    static.mkdir()
    (static / "catalog.json").write_text(json.dumps({
        "type": "Catalog", "id": "static", "stac_version": "1.0.0", "description": "a static catalog",
        "links": [{"rel": "root", "href": "./catalog.json"}]}))
    (static / "collection.json").write_text(json.dumps({
        "type": "Collection", "id": "c", "stac_version": "1.0.0", "description": "d", "license": "proprietary",
        "extent": {"spatial": {"bbox": [[0, 0, 1, 1]]}, "temporal": {"interval": [[None, None]]}},
        "links": []}))
    server, url = _serve(static)
    yield World(root, url, f"http://127.0.0.1:{_closed_port()}")
    server.shutdown()


@dataclass
class Case:
    """``args`` may name files of the world as ``{name}``; ``out`` is a fresh path per case."""

    id: str
    args: list[str]
    code: int
    words: tuple[str, ...] = ()
    leaves: str = "nothing"  # nothing | no maps | anything
    config: tuple[str, str] | None = None  # (file name, text) written beside the case
    check: Callable[[World, Path, object], None] | None = field(default=None, repr=False)


SEARCH = ["--collection", "c", "--datetime", "2024-01-01/2024-01-02", "--bbox", "0,0,1,1"]
FAST = ["--retries", "0", "--timeout", "1"]


def _no_forged_lines(world: World, out: Path, result) -> None:
    assert not any(line.startswith("error:") for line in result.stdout.splitlines())
    assert "\x1b" not in result.stdout and "water\\nerror: forged line" in result.stdout


def _no_retry_chatter(world: World, out: Path, result) -> None:
    assert "Retrying" not in result.stderr and "WARNING" not in result.stderr


def _clean_names(world: World, out: Path, result) -> None:
    names = [p.name for p in out.iterdir()]
    assert any(n.endswith(".tif") for n in names)
    assert all(n.isprintable() for n in names), names


CASES = [
    # predict: usage (exit 2), nothing written
    Case("predict-no-out", ["predict", "{scene.tif}"], 2, ("missing option --out",)),
    Case("predict-mosaic-huge-grid", ["predict", "{scene.tif}", "--mosaic", "--resolution", "0.0001", "-c",
                                      "{ck.safetensors}", "-o", "{out}"], 2, ("--resolution", "limit"),
         leaves="no maps"),
    Case("predict-mosaic-inf-resolution", ["predict", "{scene.tif}", "--mosaic", "--resolution", "inf", "-c",
                                           "{ck.safetensors}", "-o", "{out}"], 2, ("resolution",)),
    Case("predict-mosaic-aoi-elsewhere", ["predict", "{scene.tif}", "--mosaic", "--bbox", "20,10,21,11", "-c",
                                          "{ck.safetensors}", "-o", "{out}"], 3, ("touches none",), leaves="no maps"),
    Case("predict-mosaic-raster-url", ["predict", "{url}/scene.tif", "{scene.tif}", "--mosaic", "-c",
                                       "{ck.safetensors}", "-o", "{out}"], 2, ("--mosaic", "raster URL")),
    Case("predict-crs-without-mosaic", ["predict", "{scene.tif}", "-c", "{ck.safetensors}", "-o", "{out}",
                                        "--crs", "EPSG:32633"], 2, ("--mosaic",)),
    Case("predict-mosaic-bad-crs", ["predict", "{scene.tif}", "-c", "{ck.safetensors}", "-o", "{out}",
                                    "--mosaic", "--crs", "EPSG:999999"], 2, ("--crs",)),
    Case("predict-batch-0", ["predict", "{scene.tif}", "-o", "{out}", "--batch-size", "0"], 2, ("--batch-size",)),
    Case("predict-tile-abc", ["predict", "{scene.tif}", "-o", "{out}", "--tile", "abc"], 2, ("--tile",)),
    Case("predict-tile-8", ["predict", "{scene.tif}", "-c", "{ck.safetensors}", "-o", "{out}", "--tile", "8"],
         2, ("--tile 8", "16 to 4096")),
    Case("predict-checkpoint-tile-100000", ["predict", "{scene.tif}", "-c", "{absurd_tile.safetensors}", "-o",
                                            "{out}"], 2, ("the checkpoint's tile 100000", "16 to 4096",
                                                          "give --tile N")),
    Case("predict-checkpoint-overlap-vs-tile", ["predict", "{scene.tif}", "-c", "{wide_overlap.safetensors}",
                                                "-o", "{out}", "--tile", "32"],
         2, ("the checkpoint's overlap 48 does not fit tile 32", "give --overlap N")),
    Case("evaluate-checkpoint-tile-100000", ["evaluate", "{absurd_tile.safetensors}", "{labelled}", "-o", "{out}"],
         2, ("the checkpoint's tile 100000", "give --tile N")),
    Case("predict-chunk-1", ["predict", "{scene.tif}", "-c", "{ck.safetensors}", "-o", "{out}", "--chunk", "1"],
         2, ("--chunk 1", "16 to 16384")),
    Case("predict-overlap-ge-tile", ["predict", "{scene.tif}", "-c", "{ck.safetensors}", "-o", "{out}",
                                     "--tile", "64", "--overlap", "64"], 2, ("--overlap",)),
    Case("predict-cog-probabilities", ["predict", "{scene.tif}", "-c", "{ck.safetensors}", "-o", "{out}",
                                       "--format", "cog", "--probabilities"], 2, ("--probabilities", "zarr")),
    Case("predict-format-gif", ["predict", "{scene.tif}", "-c", "{ck.safetensors}", "-o", "{out}",
                                "--format", "gif"], 2, ("--format",)),
    Case("predict-blend-foo", ["predict", "{scene.tif}", "-c", "{ck.safetensors}", "-o", "{out}",
                               "--blend", "foo"], 2, ("--blend",)),
    Case("predict-stac-hint", ["predict", "--stac", "{url}", "-c", "{ck.safetensors}", "-o", "{out}"],
         2, ("--collection", "--datetime", "--bbox", "--intersects")),
    Case("predict-out-is-a-file", ["predict", "{scene.tif}", "-c", "{ck.safetensors}", "-o", "{a_file}"],
         2, ("cannot write to --out",), leaves="anything"),
    Case("predict-no-checkpoint", ["predict", "{scene.tif}", "-c", "{absent.safetensors}", "-o", "{out}"],
         2, ("does not exist",)),
    Case("predict-truncated-checkpoint", ["predict", "{scene.tif}", "-c", "{truncated.safetensors}", "-o",
                                          "{out}"], 2, ("truncated.safetensors",)),
    Case("predict-nan-stats", ["predict", "{scene.tif}", "-c", "{nan.safetensors}", "-o", "{out}"],
         2, ("nan.safetensors", "finite")),
    Case("predict-1e-30-std", ["predict", "{scene.tif}", "-c", "{tiny_std.safetensors}", "-o", "{out}"],
         2, ("tiny_std.safetensors", "std must be at least")),
    # predict: --config files go through the same schema as the flags
    Case("config-tile-abc", ["predict", "{scene.tif}", "-c", "{ck.safetensors}", "-o", "{out}", "--config", "{cfg}"],
         2, ("tile", "integer", "'abc'"), config=("c.toml", 'tile = "abc"')),
    Case("config-nodata-abc", ["predict", "{scene.tif}", "-c", "{ck.safetensors}", "-o", "{out}", "--config",
                               "{cfg}"], 2, ("nodata", "'abc'"), config=("c.toml", 'nodata = "abc"')),
    Case("config-batch-neg", ["predict", "{scene.tif}", "-c", "{ck.safetensors}", "-o", "{out}", "--config",
                              "{cfg}"], 2, ("batch_size", "-3"), config=("c.toml", "batch_size = -3")),
    Case("config-batch-0", ["predict", "{scene.tif}", "-c", "{ck.safetensors}", "-o", "{out}", "--config",
                            "{cfg}"], 2, ("batch_size", "greater than or equal to 1"),
         config=("c.toml", "batch_size = 0")),
    Case("config-yaml-batch-0", ["predict", "{scene.tif}", "-c", "{ck.safetensors}", "-o", "{out}", "--config",
                                 "{cfg}"], 2, ("batch-size",), config=("c.yaml", "batch-size: 0")),
    Case("config-probabilities-string", ["predict", "{scene.tif}", "-c", "{ck.safetensors}", "-o", "{out}",
                                         "--config", "{cfg}"], 2, ("probabilities", "'false'"),
         config=("c.toml", 'probabilities = "false"')),
    Case("config-yaml-probabilities-string", ["predict", "{scene.tif}", "-c", "{ck.safetensors}", "-o", "{out}",
                                              "--config", "{cfg}"], 2, ("probabilities",),
         config=("c.yaml", 'probabilities: "no"')),
    Case("config-tile-float", ["predict", "{scene.tif}", "-c", "{ck.safetensors}", "-o", "{out}", "--config",
                               "{cfg}"], 2, ("tile",), config=("c.toml", "tile = 64.5")),
    Case("config-unknown-key", ["predict", "{scene.tif}", "-o", "{out}", "--config", "{cfg}"], 2,
         ("unknown key 'tiles'",), config=("c.toml", "tiles = 64")),
    Case("config-unparseable", ["predict", "{scene.tif}", "-o", "{out}", "--config", "{cfg}"], 2,
         ("cannot parse",), config=("c.toml", "tile = = 3")),
    Case("config-not-a-table", ["predict", "{scene.tif}", "-o", "{out}", "--config", "{cfg}"], 2,
         ("expected a table of key = value, not a list",), config=("c.yaml", "- a\n- b")),
    Case("config-missing-file", ["predict", "{scene.tif}", "-o", "{out}", "--config", "{absent.toml}"], 2,
         ("does not exist",)),
    Case("config-gives-out", ["predict", "{scene.tif}", "-c", "{ck.safetensors}", "--config", "{cfg}"], 0,
         leaves="anything", config=("c.toml", 'out = "{out}"\nformat = ["cog"]'),
         check=lambda w, out, r: next(out.glob("scene_*.tif"))),
    # predict: input data (exit 3); a failed scene leaves no partial store and no lock
    Case("predict-missing-scene", ["predict", "{absent.tif}", "-c", "{ck.safetensors}", "-o", "{out}"],
         3, ("absent.tif",), leaves="no maps"),
    Case("predict-band-count", ["predict", "{scene.tif}", "-c", "{ck.safetensors}", "-o", "{out}", "--bands",
                                "red,green"], 3, ("--bands names 2",), leaves="no maps"),
    Case("predict-unknown-band", ["predict", "{scene.tif}", "-c", "{ck.safetensors}", "-o", "{out}", "--bands",
                                  "red,green,blue,foo"], 3, ("unknown band name 'foo'",), leaves="no maps"),
    Case("predict-wavelength-40nm-off", ["predict", "{scene.tif}", "-c", "{ck.safetensors}", "-o", "{out}",
                                        "--bands", "705nm,560nm,490nm,842nm"], 3, ("red", "705nm"),
         leaves="no maps"),
    Case("predict-no-descriptions", ["predict", "{nodesc.tif}", "-c", "{ck.safetensors}", "-o", "{out}"],
         3, ("no band descriptions", "--bands"), leaves="no maps"),
    Case("predict-damaged-tiff", ["predict", "{damaged.tif}", "-c", "{ck.safetensors}", "-o", "{out}"],
         3, ("damaged.tif",), leaves="no maps",
         check=lambda w, out, r: _names_cause(r, "damaged.tif")),
    Case("predict-damaged-tiff-quiet", ["-q", "predict", "{damaged.tif}", "-c", "{ck.safetensors}", "-o",
                                        "{out}"], 3, ("damaged.tif", "Decoding error"), leaves="no maps"),
    Case("predict-vrt-missing-source", ["predict", "{missing_source.vrt}", "-c", "{ck.safetensors}", "-o",
                                        "{out}", "--bands", ",".join(RGBN)], 3,
         ("missing_source.vrt", "gone.tif"), leaves="no maps"),
    # predict: what works
    Case("predict-bands-by-wavelength", ["predict", "{scene.tif}", "-c", "{ck.safetensors}", "-o", "{out}",
                                         "--bands", "665nm,560nm,490nm,842nm", "--format", "cog"], 0,
         leaves="anything", check=lambda w, out, r: next(out.glob("scene_*.tif"))),
    Case("predict-newline-in-name", ["predict", "{line\nbreak.tif}", "-c", "{ck.safetensors}", "-o", "{out}",
                                     "--format", "cog"], 0, leaves="anything", check=_clean_names),
    # catalogs: a static catalog is not an API (2); an unreachable one is transient (75), quietly
    Case("predict-stac-static", ["predict", "--stac", "{url}/catalog.json", *SEARCH, *FAST, "-c",
                                 "{ck.safetensors}", "-o", "{out}"], 2, ("not a static catalog",)),
    Case("predict-stac-collection-url", ["predict", "--stac", "{url}/collection.json", *SEARCH, *FAST, "-c",
                                         "{ck.safetensors}", "-o", "{out}"], 2, ("not a static catalog",)),
    Case("predict-stac-unreachable-quiet", ["-q", "predict", "--stac", "{closed}", *SEARCH, *FAST, "-c",
                                            "{ck.safetensors}", "-o", "{out}"], 75, ("unreachable",),
         check=_no_retry_chatter),
    # fetch
    Case("fetch-no-out", ["fetch", "--catalog", "{url}", *SEARCH], 2, ("--out",)),
    Case("fetch-static-catalog", ["fetch", "--catalog", "{url}/catalog.json", *SEARCH, *FAST, "--bands", "red",
                                  "-o", "{out}"], 2, ("not a static catalog",)),
    Case("fetch-unreachable-quiet", ["-q", "fetch", "--catalog", "{closed}", *SEARCH, *FAST, "--bands", "red",
                                     "-o", "{out}"], 75, ("unreachable",), check=_no_retry_chatter),
    Case("fetch-bbox-3-numbers", ["fetch", "--catalog", "{url}", "--collection", "c", "--datetime", "P1D",
                                  "--bbox", "1,2,3", "--bands", "red", "-o", "{out}"], 2, ("bbox",)),
    Case("fetch-max-cloud-150", ["fetch", "--catalog", "{url}", *SEARCH, "--max-cloud", "150", "--bands",
                                 "red", "-o", "{out}"], 2, ("--max-cloud",)),
    Case("fetch-timeout-0", ["fetch", "--catalog", "{url}", *SEARCH, "--timeout", "0", "--bands", "red",
                             "-o", "{out}"], 2, ("--timeout",)),
    Case("fetch-config-unknown-key", ["fetch", "--config", "{cfg}", "-o", "{out}"], 2, ("unknown key",),
         config=("f.toml", "tile = 3")),
    # train
    Case("train-batch-0", ["train", "--model", "spectralmoe_tiny", "--train", "{labelled}", "--bands",
                           "red,green,blue", "--classes", "{classes.toml}", "--batch-size", "0", "-o", "{out}"],
         2, ("--batch-size",)),
    Case("train-nan-stats", ["train", "--model", "spectralmoe_tiny", "--train", "{labelled}", "--bands",
                             "red,green,blue", "--classes", "{classes.toml}", "--stats", "{nan_stats.json}",
                             "-o", "{out}"], 3, ("nan_stats.json", "finite")),
    Case("train-1e-30-stats", ["train", "--model", "spectralmoe_tiny", "--train", "{labelled}", "--bands",
                               "red,green,blue", "--classes", "{classes.toml}", "--stats", "{tiny_stats.json}",
                               "-o", "{out}"], 3, ("tiny_stats.json", "std must be at least")),
    Case("train-no-classes-file", ["train", "--model", "spectralmoe_tiny", "--train", "{labelled}", "--bands",
                                   "red,green,blue", "--classes", "{absent.toml}", "-o", "{out}"], 2,
         ("absent.toml",)),
    Case("train-unknown-model", ["train", "--model", "no_such_model", "--train", "{labelled}", "--bands",
                                 "red,green,blue", "--classes", "{classes.toml}", "-o", "{out}"], 2,
         ("no_such_model",)),
    # evaluate
    Case("evaluate-out-is-a-file", ["evaluate", "{ck.safetensors}", "{labelled}", "--bands", "red,green,blue,nir",
                                    "--out", "{a_file}"], 2, ("cannot write to --out",), leaves="anything"),
    Case("evaluate-min-miou-150", ["evaluate", "{ck.safetensors}", "{labelled}", "--min-miou", "150"], 2,
         ("--min-miou",)),
    Case("evaluate-min-miou-negative", ["evaluate", "{ck.safetensors}", "{labelled}", "--min-miou", "-1"], 2,
         ("--min-miou",)),
    Case("evaluate-nan-stats", ["evaluate", "{nan.safetensors}", "{labelled}", "-o", "{out}"], 2,
         ("nan.safetensors", "finite")),
    Case("evaluate-no-checkpoint", ["evaluate", "{absent.safetensors}", "{labelled}"], 2, ("does not exist",)),
    # stats
    Case("stats-band-count", ["stats", "{labelled}", "--bands", "red,green"], 3, ("names 2",)),
    Case("stats-constant-images", ["stats", "{flat}", "--bands", "red,green,blue"], 3, ("constant",)),
    Case("stats-missing-folder", ["stats", "{absent}", "--bands", "red,green,blue"], 3, ("absent",)),
    # info
    Case("info-forged-class-names", ["info", "-c", "{forged_names.safetensors}"], 0, leaves="anything",
         check=_no_forged_lines),
    Case("info-nan-stats", ["info", "-c", "{nan.safetensors}"], 2, ("nan.safetensors", "finite")),
    Case("info-no-checkpoint", ["info", "-c", "{absent.safetensors}"], 2, ("does not exist",)),
    Case("info-unknown-model", ["info", "-m", "no_such_model"], 2, ("no_such_model",)),
    # the parser itself
    Case("unknown-command", ["segment"], 2, ("No such command",)),
    Case("unknown-option", ["predict", "{scene.tif}", "--tiles", "3"], 2, ("--tiles",)),
]


def _names_cause(result, name: str) -> None:
    line = next(x for x in result.stderr.splitlines() if x.startswith("error:"))
    assert name in line and "see previous exception" not in line.lower(), line


def _expand(arg: str, world: World, out: Path, cfg: Path | None) -> str:
    if arg == "{out}":
        return str(out)
    if arg == "{cfg}":
        return str(cfg)
    if arg.startswith("{url}") or arg.startswith("{closed}"):
        return arg.replace("{url}", world.url).replace("{closed}", world.closed)
    if arg.startswith("{") and arg.endswith("}"):
        return str(world / arg[1:-1])
    return arg


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case: Case, world: World, tmp_path: Path):
    out = tmp_path / "out"
    cfg = None
    if case.config is not None:
        cfg = tmp_path / case.config[0]
        cfg.write_text(case.config[1].replace("{out}", str(out)))
    result = run_cli(*(_expand(a, world, out, cfg) for a in case.args))
    assert result.returncode == case.code, (result.returncode, result.stderr[-3000:])
    assert "Traceback" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == (1 if case.code else 0), result.stderr
    for word in case.words:
        assert word in errors[0], errors[0]
    if case.leaves == "nothing":
        assert not out.exists() or not any(out.iterdir()), sorted(out.rglob("*"))
    elif case.leaves == "no maps":
        left = sorted(p.name for p in out.iterdir()) if out.exists() else []
        assert not [n for n in left if n.endswith((".tif", ".zarr", ".partial", ".lock", ".png"))
                    or ".zarr." in n], left
    if case.check is not None:
        case.check(world, out, result)


def test_the_matrix_covers_every_command():
    commands = {next(a for a in c.args if not a.startswith("-")) for c in CASES}
    assert {"predict", "fetch", "train", "evaluate", "stats", "info"} <= commands
    assert len(CASES) >= 40
