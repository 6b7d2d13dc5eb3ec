"""``spectralmoe train`` on real Potsdam tiles: it learns, resumes exactly, and refuses bad runs."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import ROOT, assert_one_line_error, potsdam_folder, run_cli, write_geotiff
from safetensors.torch import load_file

from spectralmoe_cli.bands import resolve_all
from spectralmoe_cli.checkpoint import load_checkpoint
from spectralmoe_cli.config import load_config
from spectralmoe_cli.engine.labelled.stats import compute_stats
from spectralmoe_cli.engine.runtime.models import build_model, model_from_checkpoint
from spectralmoe_cli.engine.train.command import train
from spectralmoe_cli.engine.train.plan import TrainOptions
from spectralmoe_cli.engine.train.run_dir import MetricsLog, RunDir
from spectralmoe_cli.nn.catalog import PLUGINS


@pytest.fixture
def potsdam(shared_data, tmp_path) -> tuple[Path, Path]:
    """4 real 256 px Potsdam tiles and the ISPRS class file (values after reduce-zero-label)."""
    return potsdam_folder(shared_data, tmp_path / "potsdam"), tmp_path / "isprs.toml"


def _train_args(folder: Path, classes: Path, out: Path, *extra: str, model: str = "spectralmoe_tiny") -> list[str]:
    return ["train", "--model", model, "--train", str(folder), "--bands", "red,green,blue",
            "--classes", str(classes), "--reduce-zero-label", "--out", str(out), *extra]


def _records(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_fifty_steps_on_potsdam_lower_the_loss(potsdam, tmp_path):
    folder, classes = potsdam
    out = tmp_path / "run"
    result = run_cli(*_train_args(folder, classes, out, "--steps", "50", "--batch-size", "2", "--crop", "128",
                                  "--checkpoint-every", "25", "--val", str(folder), "--deterministic",
                                  "--workers", "0"))
    assert result.returncode == 0, result.stderr[-3000:]
    records = _records(out)
    assert [r["step"] for r in records] == list(range(1, 51))
    for key in ("loss", "loss_seg"):
        values = np.array([r[key] for r in records])
        assert values[-10:].mean() < values[:10].mean(), (key, values[:10].mean(), values[-10:].mean())
    assert records[0]["lr"] == 1e-4 and records[-1]["lr"] < 1e-5  # poly decay, no warm-up
    assert records[24]["val_mIoU"] is not None and records[49]["val_mIoU"] is not None
    header = (out / "metrics.csv").read_text().splitlines()[0]
    assert header == "step,loss,loss_aux,loss_seg,lr,sec_per_step,val_mIoU,val_mAcc,val_aAcc"
    print(f"\nloss_seg first10 {np.mean([r['loss_seg'] for r in records[:10]]):.3f} last10 "
          f"{np.mean([r['loss_seg'] for r in records[-10:]]):.3f}; median "
          f"{np.median([r['sec_per_step'] for r in records]):.3f} s/step")


def _cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "spectralmoe_cli", *args]


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}


@pytest.mark.slow
def test_kill_then_resume_gives_bit_identical_weights(potsdam, tmp_path):
    folder, classes = potsdam
    common = ["--steps", "24", "--batch-size", "2", "--crop", "48", "--checkpoint-every", "8",
              "--keep", "2", "--deterministic", "--seed", "3"]
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    done = subprocess.run(_cmd(*_train_args(folder, classes, straight, *common, "--workers", "0")),
                          env=_env(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]

    process = subprocess.Popen(_cmd(*_train_args(folder, classes, killed, *common, "--workers", "2")),
                               env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    latest = killed / "latest.json"
    deadline = time.monotonic() + 300
    while not (latest.is_file() and json.loads(latest.read_text())["step"] >= 8):
        assert process.poll() is None and time.monotonic() < deadline, "no checkpoint before the run ended"
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)
    process.wait()
    state = json.loads(latest.read_text())
    assert not state["finished"] and not (killed / "model.safetensors").exists()  # killed mid-run

    # a separate process, like the two runs it is compared with (same environment, same threads)
    resumed = subprocess.run(_cmd(*_train_args(folder, classes, killed, *common, "--workers", "2", "--resume")),
                             env=_env(), capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"steps {state['step'] + 1}..24" in resumed.stderr
    a, b = load_file(straight / "model.safetensors"), load_file(killed / "model.safetensors")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    strip = [{k: v for k, v in r.items() if k != "sec_per_step"} for r in _records(straight)]
    assert strip == [{k: v for k, v in r.items() if k != "sec_per_step"} for r in _records(killed)]
    assert sorted(p.name for p in (killed / "checkpoints").iterdir()) == [
        "step-0000016.safetensors", "step-0000024.safetensors"]  # --keep 2
    again = run_cli(*_train_args(folder, classes, killed, *common, "--resume"))
    assert again.returncode == 0 and "nothing to do" in again.stdout


def test_resuming_forgets_records_past_the_checkpoint_and_a_half_written_line(tmp_path):
    log = MetricsLog(RunDir(tmp_path), validates=False)
    for step in (1, 2, 3):
        log.append({"step": step, "loss": 1.0 / step, "loss_seg": 0.5, "lr": 0.1, "sec_per_step": 0.2})
    with (tmp_path / "metrics.jsonl").open("a") as handle:
        handle.write('{"step": 4, "loss": 0.2')  # killed while writing
    log.truncate(2)
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == [1, 2]
    rows = (tmp_path / "metrics.csv").read_text().splitlines()
    assert rows[0] == "step,loss,loss_seg,lr,sec_per_step" and len(rows) == 3


def _tree_digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.slow
def test_a_run_directory_is_never_silently_reused(potsdam, tmp_path):
    folder, classes = potsdam
    out = tmp_path / "run"
    quick = ["--steps", "2", "--batch-size", "1", "--crop", "32", "--workers", "0", "--checkpoint-every", "1"]
    first = run_cli(*_train_args(folder, classes, out, *quick, model="frozen_tiny"))
    assert first.returncode == 0, first.stderr[-3000:]
    before = _tree_digest(out)
    assert {"run.json", "data.json", "latest.json", "model.safetensors", "metrics.csv",
            "checkpoints/step-0000002.safetensors", "state/step-0000002.safetensors"} <= set(before)
    assert "state/step-0000001.safetensors" not in before  # only the latest state is kept

    assert_one_line_error(run_cli(*_train_args(folder, classes, out, *quick, "--resume", model="rein_tiny")),
                          2, "is a run of model frozen_tiny, not rein_tiny")
    assert_one_line_error(run_cli(*_train_args(folder, classes, out, *quick, "--resume", "--lr", "1e-3",
                                               model="frozen_tiny")), 2, "started with other lr")
    other_stats = tmp_path / "stats.json"
    bands = [{"name": n, "mean": 1.0, "std": 2.0} for n in ("red", "green", "blue")]
    other_stats.write_text(json.dumps({"bands": bands}))
    assert_one_line_error(run_cli(*_train_args(folder, classes, out, *quick, "--resume", "--stats", str(other_stats),
                                               model="frozen_tiny")), 2, "other normalisation statistics")
    assert_one_line_error(run_cli(*_train_args(folder, classes, out, *quick, "--lr", "1e-3",
                                               model="frozen_tiny")), 2, "started with other lr", "--force")
    same = run_cli(*_train_args(folder, classes, out, *quick, model="frozen_tiny"))
    assert same.returncode == 0 and "nothing to do" in same.stdout  # the same command resumes
    assert _tree_digest(out) == before

    over = run_cli(*_train_args(folder, classes, out, *quick, "--force", model="rein_tiny"))
    assert over.returncode == 0, over.stderr[-3000:]
    _, meta = load_checkpoint(out / "model.safetensors")
    assert meta.model.plugin.method == "rein"
    assert meta.provenance["command"].startswith("spectralmoe train --model rein_tiny --train ")
    assert meta.provenance["command"].endswith("--force")


@pytest.mark.slow
@pytest.mark.parametrize("method", PLUGINS.names())
def test_every_method_trains_with_the_same_command_and_only_plugin_and_head_change(potsdam, tmp_path, method):
    folder, classes = potsdam
    out = tmp_path / "run"
    final = train(TrainOptions(model=f"{method}_tiny", train=folder, bands="red,green,blue", classes=classes,
                               out=out, reduce_zero_label=True, steps=3, batch_size=2, crop=64, lr=1e-3,
                               workers=0, command="spectralmoe train --model ..."))
    assert final == out / "model.safetensors"
    model, meta = model_from_checkpoint(out / "model.safetensors")
    tensors, _ = load_checkpoint(out / "model.safetensors")
    torch.manual_seed(42)  # the default seed: the initial weights of the run
    initial = build_model(load_config(f"{method}_tiny").with_data(["red", "green", "blue"], 6)).state_dict()
    frozen = [k for k in tensors if k.startswith(("backbone.", "depth_model."))]
    trained = [k for k in tensors if k.startswith(("plugin.", "head."))]
    assert frozen and all(torch.equal(tensors[k], initial[k]) for k in frozen)
    assert any(not torch.equal(tensors[k], initial[k]) for k in trained if k.startswith("head."))
    if method != "frozen":
        assert any(not torch.equal(tensors[k], initial[k]) for k in trained if k.startswith("plugin."))
    with torch.no_grad():
        logits, _ = model(torch.zeros(1, 3, 64, 64))
    assert logits.shape == (1, 6, 64, 64)

    assert [b.name for b in meta.bands] == ["red", "green", "blue"] and meta.ignore_index == 255
    assert [(c.value, c.name, c.color) for c in meta.classes][1] == (1, "building", "#0000ff")
    stats = compute_stats(sorted((folder / "images").iterdir()), resolve_all(["red", "green", "blue"]))
    assert meta.mean == pytest.approx(stats.mean, rel=1e-12) and meta.std == pytest.approx(stats.std, rel=1e-12)
    assert (meta.tile.size, meta.tile.overlap) == (64, 16)
    prov = meta.provenance
    assert prov["command"] == "spectralmoe train --model ..." and prov["seed"] == 42 and prov["steps"] == 3
    data = json.loads((out / "data.json").read_text())
    assert prov["train"]["sha256"] == data["train"]["sha256"] and data["train"]["count"] == 4
    assert prov["labels"]["reduce_zero_label"] is True and prov["labels"]["values"] == [0, 1, 2, 3, 4, 5]
    assert prov["labels"]["ignore"] == [255]


def _write_png(path: Path, array: np.ndarray) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def _break(case: str, folder: Path, classes: Path) -> list[str]:
    """Damage a good labelled folder or its options in one way; return the changed options."""
    labels = sorted((folder / "labels").iterdir())
    if case == "empty":
        for path in [*labels, *(folder / "images").iterdir()]:
            path.unlink()
    elif case == "images without labels":
        labels[0].unlink()
    elif case == "labels without images":
        _write_png(folder / "labels" / "extra.png", np.zeros((8, 8), np.uint8))
    elif case == "mismatched sizes":
        _write_png(labels[1], np.ones((100, 256), np.uint8))
    elif case == "duplicate class values":
        classes.write_text(classes.read_text().replace("value = 5", "value = 4"))
    elif case == "label values outside the classes":
        _write_png(labels[2], np.full((256, 256), 9, np.uint8))
    elif case == "unknown model":
        return ["--model", "segformer_b5"]
    elif case == "band count":
        return ["--bands", "red,green"]
    elif case == "no gpu":
        return ["--device", "cuda:0"]
    return []


@pytest.mark.parametrize("case,code,words", [
    ("empty", 3, ["is empty"]),
    ("images without labels", 3, ["1 image(s)", "have no label", "potsdam_0_0"]),
    ("labels without images", 3, ["1 label(s)", "have no image", "extra"]),
    ("mismatched sizes", 3, ["is 256x100 but its image", "potsdam_0_256.png"]),
    ("duplicate class values", 2, ["duplicate class value(s) 4"]),
    ("label values outside the classes", 3, ["potsdam_256_0.png", "label value(s) 9"]),
    ("unknown model", 2, ["unknown model 'segformer_b5'"]),
    ("band count", 3, ["has 3 band(s) but --bands names 2"]),
    pytest.param("no gpu", 2, ["no CUDA GPU"], marks=pytest.mark.skipif(
        torch.cuda.is_available(), reason="a GPU is visible")),
])
def test_bad_input_is_one_line_with_its_exit_code_and_writes_nothing(potsdam, tmp_path, case, code, words):
    folder, classes = potsdam
    out = tmp_path / "run"
    args = _train_args(folder, classes, out, "--steps", "1", "--crop", "32", "--workers", "0")
    for option, value in zip(*[iter(_break(case, folder, classes))] * 2):
        if option in args:
            args[args.index(option) + 1] = value
        else:
            args += [option, value]
    assert_one_line_error(run_cli(*args), code, *words)
    assert not out.exists()


def test_nan_pixels_are_trained_around_not_rejected(potsdam, tmp_path):
    from PIL import Image

    folder, classes = potsdam
    nan_folder = tmp_path / "nan"
    for sub in ("images", "labels"):
        (nan_folder / sub).mkdir(parents=True)
    for png in sorted((folder / "images").iterdir()):
        data = np.array(Image.open(png)).transpose(2, 0, 1).astype(np.float32)
        data[:, :40, :] = np.nan  # a NaN strip in every image
        write_geotiff(nan_folder / "images" / f"{png.stem}.tif", data, crs=None)
        (nan_folder / "labels" / png.name).write_bytes((folder / "labels" / png.name).read_bytes())
    out = tmp_path / "run"
    result = run_cli(*_train_args(nan_folder, classes, out, "--steps", "2", "--batch-size", "2", "--crop", "64",
                                  "--workers", "0", model="rein_tiny"))
    assert result.returncode == 0, result.stderr[-3000:]
    assert all(np.isfinite(r["loss"]) for r in _records(out))
    _, meta = load_checkpoint(out / "model.safetensors")
    assert all(np.isfinite(meta.mean)) and all(np.isfinite(meta.std))


def test_train_help_teaches_with_an_example():
    result = run_cli("train", "--help")
    assert result.returncode == 0
    for words in ("--reduce-zero-label", "--resume", "spectralmoe train --model", "[[classes]]"):
        assert words in result.stdout, words


@pytest.mark.parametrize("method,plain", [
    ("spectralmoe", {"experts_a", "experts_b", "w_gate", "w_noise", "scale"}),
    ("rein", {"tokens_a", "tokens_b", "scale"}),
    ("lora", set()),
])
def test_weight_decay_groups_follow_the_reference(method, plain):
    from spectralmoe_cli.engine.train.optim import build_optimizer, no_decay_names

    model = build_model(load_config(f"{method}_tiny"))
    names = no_decay_names(model)
    assert {n for n in names if n.startswith("plugin.")} == {f"plugin.{n}" for n in plain}
    assert {"head.smooth.0.1.weight", "head.smooth.0.1.bias"} <= names  # GroupNorm
    assert not any(n.startswith(("plugin.mlp", "plugin.linker", "head.lateral", "head.classifier"))
                   for n in names)  # Linear and conv layers keep their decay, biases included
    optimizer = build_optimizer(model, lr=1e-4)
    decay, no_decay = optimizer.param_groups
    assert (decay["weight_decay"], no_decay["weight_decay"]) == (0.05, 0.0)
    assert decay["betas"] == (0.9, 0.999) and decay["eps"] == 1e-8
    trainable = [p for p in model.parameters() if p.requires_grad]
    grouped = decay["params"] + no_decay["params"]
    assert len(grouped) == len(trainable) and {id(p) for p in grouped} == {id(p) for p in trainable}
    frozen = {id(p) for p in [*model.backbone.parameters()]}
    assert not frozen & {id(p) for p in grouped}


def test_poly_schedule_has_no_warm_up_and_ends_near_zero():
    from spectralmoe_cli.engine.train.optim import poly_lr

    assert poly_lr(1e-4, 0, 100) == 1e-4
    assert poly_lr(1e-4, 50, 100) == pytest.approx(1e-4 * 0.5 ** 0.9)
    assert 0 < poly_lr(1e-4, 99, 100) < 1e-5


def test_accumulating_micro_batches_equals_one_larger_batch(tmp_path):
    root = tmp_path / "data"
    rng = np.random.default_rng(6)
    for name in ("a", "b", "c"):
        image = rng.normal(0, 1, (3, 48, 48)).astype(np.float32)
        write_geotiff(root / "images" / f"{name}.tif", image)
        write_geotiff(root / "labels" / f"{name}.tif", (image[0] > 0).astype(np.uint8))  # no ignored pixel
    classes = tmp_path / "binary.toml"
    classes.write_text('[[classes]]\nvalue = 0\nname = "low"\ncolor = "#000000"\n'
                       '[[classes]]\nvalue = 1\nname = "high"\ncolor = "#ffffff"\n')
    runs = {}
    for name, batch, accumulate in (("big", 2, 1), ("split", 1, 2)):
        train(TrainOptions(model="frozen_tiny", train=root, bands="red,green,blue", classes=classes,
                           out=tmp_path / name, steps=3, batch_size=batch, accumulate=accumulate, crop=32,
                           lr=1e-3, workers=0))
        runs[name] = (load_file(tmp_path / name / "model.safetensors"), _records(tmp_path / name))
    (big, big_log), (split, split_log) = runs["big"], runs["split"]
    assert [r["loss"] for r in big_log] == pytest.approx([r["loss"] for r in split_log], rel=1e-5)
    for key in big:
        torch.testing.assert_close(big[key], split[key], rtol=1e-4, atol=5e-5)  # Adam magnifies rounding
    assert any(not torch.equal(big[k], split[k]) for k in big if k.startswith("head."))  # really two paths


def test_model_band_order_puts_red_green_blue_on_their_kernels():
    from spectralmoe_cli.bands import resolve_all
    from spectralmoe_cli.engine.train.plan import model_band_order
    s2 = resolve_all(["B02", "B03", "B04", "B08", "B11"])
    order = model_band_order(s2, ["red", "green", "blue"])
    assert [b.name for b in order] == ["red", "green", "blue", "nir", "swir16"]
    irrg = resolve_all(["nir", "red", "green"])
    assert [b.name for b in model_band_order(irrg, ["red", "green", "blue"])] == ["nir", "red", "green"]
    assert [b.name for b in model_band_order(resolve_all(["blue", "green", "red"]), ["red", "green", "blue"])] \
        == ["red", "green", "blue"]
