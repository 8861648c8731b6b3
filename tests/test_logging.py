"""Logger writes runs that read back (event files and metrics.json); image helpers it draws with."""
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from tinygrad_edu.logging import Logger, read_events
from tinygrad_edu.viz.images import blues, heatmap_image, jet, make_grid, overlay, save_png, to_rgb

CLASSES = ["zero", "one", "two"]


def write_run(logdir):
    """A small run with every kind of record; returns what went in."""
    rng = np.random.default_rng(0)
    weights = rng.standard_normal((8, 4))
    cm = np.array([[0.8, 0.2, 0.0], [0.1, 0.9, 0.0], [0.0, 0.5, 0.5]])
    images = rng.random((3, 2, 1, 6, 6))  # (C, k, 1, H, W)
    with Logger(logdir=logdir) as log:
        for step in range(3):
            log.scalar("train/loss", 1.0 / (step + 1), step)
        log.scalars({"loss": np.float32(0.5), "accuracy": np.array(0.75)}, step=2, prefix="val")
        log.image("inputs", np.zeros((5, 7, 3), np.uint8), step=1)
        log.histogram("fc.weight", weights, step=2)
        log.confusion_matrix("val/confusion", cm, CLASSES, step=2)
        log.topk_grid("val/top2", images, np.full((3, 2), 0.5), CLASSES, step=2)
        log.text("notes", "hello *world*", step=0)
        log.hparams({"lr": 0.1, "batch_size": np.int64(32), "optim": "sgd"},
                    {"hparam/accuracy": 0.75})
        log.summary["test_accuracy"] = np.float64(0.75)
    return weights, cm


def test_run_reads_back_from_event_file(tmp_path):
    weights, cm = write_run(str(tmp_path))
    ev = read_events(str(tmp_path))
    assert ev.scalars["train/loss"] == [(0, 1.0), (1, 0.5), (2, pytest.approx(1 / 3))]
    assert ev.scalars["val/loss"] == [(2, 0.5)] and ev.scalars["val/accuracy"] == [(2, 0.75)]
    assert ev.scalars["hparam/accuracy"] == [(0, 0.75)]
    [(step, image)] = ev.images["inputs"]
    assert step == 1 and image.shape == (5, 7, 3)
    [(step, hist)] = ev.histograms["fc.weight"]
    assert step == 2 and hist["num"] == weights.size
    assert hist["min"] == pytest.approx(weights.min()) and hist["max"] == pytest.approx(weights.max())
    assert sum(hist["bucket"]) == weights.size
    [(_, confusion)] = ev.images["val/confusion"]
    expected = heatmap_image(cm, labels=CLASSES, title="val/confusion (step 2)", vmin=0, vmax=1)
    np.testing.assert_array_equal(confusion, expected)
    [(_, grid)] = ev.images["val/top2"]
    assert grid.shape[2] == 3 and grid.shape[0] > 3 * 12 and grid.shape[1] > 2 * 12
    assert ev.texts["notes/text_summary"] == [(0, "hello *world*")]
    assert ev.hparams == {"lr": 0.1, "batch_size": 32.0, "optim": "sgd"}


def test_metrics_json_holds_every_scalar_and_the_summary(tmp_path):
    write_run(str(tmp_path))
    with open(tmp_path / "metrics.json") as f:
        saved = json.load(f)
    assert saved["scalars"]["train/loss"] == [[0, 1.0], [1, 0.5], [2, pytest.approx(1 / 3)]]
    assert saved["scalars"]["val/accuracy"] == [[2, 0.75]]
    assert saved["summary"] == {"test_accuracy": 0.75}
    assert saved["hparams"] == {"lr": 0.1, "batch_size": 32, "optim": "sgd"}
    assert [p for p in os.listdir(tmp_path) if p.endswith(".tmp")] == []


def test_reusing_a_logdir_continues_metrics_json(tmp_path):
    with Logger(logdir=str(tmp_path)) as log:
        log.scalar("loss", 2.0, 0)
    with Logger(logdir=str(tmp_path)) as log:
        log.scalar("loss", 1.0, 1)
    with open(tmp_path / "metrics.json") as f:
        assert json.load(f)["scalars"]["loss"] == [[0, 2.0], [1, 1.0]]
    assert read_events(str(tmp_path)).scalars["loss"] == [(0, 2.0), (1, 1.0)]


def test_default_run_dirs_are_named_and_unique(tmp_path):
    with Logger(name="mnist", root=str(tmp_path)) as a, Logger(name="mnist", root=str(tmp_path)) as b:
        assert a.logdir != b.logdir
    for log in (a, b):
        assert re.fullmatch(r"mnist-\d{8}-\d{6}(-\d+)?", os.path.basename(log.logdir))
        assert os.path.dirname(log.logdir) == str(tmp_path)


def test_closed_logger_and_bad_values_raise(tmp_path):
    log = Logger(logdir=str(tmp_path))
    with pytest.raises(ValueError, match="3 of 4 values are NaN or inf"):
        log.histogram("w", [1.0, np.nan, np.inf, -np.inf], step=0)
    with pytest.raises(ValueError, match="expected a single number"):
        log.scalar("loss", np.ones(2), 0)
    with pytest.raises(ValueError, match=r"expected images \(C, k, ...\)"):
        log.topk_grid("top", np.zeros((3, 2, 4, 4)), np.zeros((3, 3)), CLASSES, 0)
    log.close()
    log.close()  # a second close does nothing
    with pytest.raises(RuntimeError, match="is closed"):
        log.scalar("loss", 1.0, 0)


def test_open_logger_is_flushed_at_interpreter_exit(tmp_path):
    code = ("from tinygrad_edu.logging import Logger\n"
            f"log = Logger(logdir={str(tmp_path)!r})\n"
            "log.scalar('loss', 0.5, 7)\n")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    subprocess.run([sys.executable, "-c", code], check=True, cwd=root)
    assert read_events(str(tmp_path)).scalars["loss"] == [(7, 0.5)]
    with open(tmp_path / "metrics.json") as f:
        assert json.load(f)["scalars"]["loss"] == [[7, 0.5]]


def test_importing_logging_does_not_import_torch():
    code = "import sys, tinygrad_edu.logging; assert 'torch' not in sys.modules"
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    subprocess.run([sys.executable, "-c", code], check=True, cwd=root)


def test_read_events_stops_at_truncated_tail_and_rejects_corruption(tmp_path):
    with Logger(logdir=str(tmp_path)) as log:
        for step in range(5):
            log.scalar("x", float(step), step)
    [path] = [tmp_path / p for p in os.listdir(tmp_path) if p.startswith("events.out")]
    data = path.read_bytes()
    path.write_bytes(data[:-3])  # last record cut short, as while a writer is writing
    assert read_events(str(tmp_path)).scalars["x"] == [(s, float(s)) for s in range(4)]
    path.write_bytes(data[:-6] + bytes([data[-6] ^ 1]) + data[-5:])  # flip a bit in the payload
    with pytest.raises(ValueError, match="corrupt"):
        read_events(str(tmp_path))
    with pytest.raises(FileNotFoundError, match="no events.out.tfevents"):
        read_events(str(tmp_path / "missing"))


# ---- viz.images: the pictures the logger writes --------------------------------------------

def test_to_rgb_accepts_hw_chw_hwc_and_scales_floats():
    gray = np.linspace(0, 1, 12).reshape(3, 4)
    rgb = to_rgb(gray)
    assert rgb.shape == (3, 4, 3) and rgb.dtype == np.uint8
    assert rgb[0, 0].tolist() == [0, 0, 0] and rgb[-1, -1].tolist() == [255, 255, 255]
    np.testing.assert_array_equal(to_rgb(gray[None]), rgb)  # (1, H, W)
    chw = np.random.default_rng(0).random((3, 4, 5))
    np.testing.assert_array_equal(to_rgb(chw), to_rgb(chw.transpose(1, 2, 0)))
    np.testing.assert_array_equal(to_rgb(gray * 10 - 3, normalize=True), rgb)
    with pytest.raises(ValueError, match="expected an image of shape"):
        to_rgb(np.zeros((4, 5, 2)))


def test_jet_and_blues_colour_maps():
    np.testing.assert_array_equal(jet([0.0, 0.5, 1.0, 2.0]),
                                  [[0, 0, 128], [132, 255, 123], [128, 0, 0], [128, 0, 0]])
    assert jet(np.zeros((2, 3))).shape == (2, 3, 3)
    assert blues(0.0).sum() > blues(1.0).sum()  # light for low values, dark for high
    with pytest.raises(ValueError, match="NaN or inf"):
        jet([0.2, np.nan])


def test_overlay_blends_and_resizes_the_heat_map():
    image = np.full((8, 8), 0.5)
    heat = np.ones((2, 2))
    np.testing.assert_array_equal(overlay(image, heat, alpha=0.0), to_rgb(image))
    np.testing.assert_array_equal(overlay(image, heat, alpha=1.0), jet(np.ones((8, 8))))
    assert overlay(image, heat, alpha=0.5)[0, 0].tolist() == [128, 64, 64]


def test_make_grid_layout_and_captions():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (5, 1, 6, 7), dtype=np.uint8)
    grid = make_grid(images, nrow=3, padding=2)
    assert grid.shape == (2 + 2 * (6 + 2), 2 + 3 * (7 + 2), 3)
    np.testing.assert_array_equal(grid[10:16, 11:18, 0], images[4, 0])  # row 1, column 1
    assert grid[:2].max() == 0  # padding
    captioned = make_grid(images, nrow=3, captions=[f"p {i}" for i in range(5)])
    assert captioned.shape[0] > grid.shape[0] and captioned.shape[1] > grid.shape[1]
    assert (captioned == 255).all(axis=2).any()  # white caption text on black
    with pytest.raises(ValueError, match="2 captions for 5 images"):
        make_grid(images, captions=["a", "b"])
    with pytest.raises(ValueError, match="same size"):
        make_grid([np.zeros((4, 4)), np.zeros((5, 4))])


def test_heatmap_image_draws_cells_values_and_labels():
    cm = np.eye(10) * 0.9 + 0.01
    img = heatmap_image(cm, labels=[f"class{i}" for i in range(10)], title="cm", vmin=0, vmax=1)
    assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3
    assert img.shape[0] > 10 * 24 and img.shape[1] > 10 * 24
    colours = {tuple(c) for c in img.reshape(-1, 3)}
    assert tuple(blues(0.91)) in colours and tuple(blues(0.01)) in colours
    other = heatmap_image(cm.T[::-1], labels=[f"class{i}" for i in range(10)], title="cm",
                          vmin=0, vmax=1)
    assert img.shape == other.shape and not np.array_equal(img, other)
    counts = heatmap_image(np.array([[3, 1], [0, 4]]), fmt="d")
    assert counts.shape[2] == 3 and len({tuple(c) for c in counts.reshape(-1, 3)}) > 10
    with pytest.raises(ValueError, match="3 labels for a 2x2 matrix"):
        heatmap_image(np.eye(2), labels=CLASSES)


def test_save_png_round_trips_and_leaves_no_temporary_file(tmp_path):
    image = np.random.default_rng(0).integers(0, 256, (5, 6, 3), dtype=np.uint8)
    path = tmp_path / "sub" / "x.png"
    save_png(path, image)
    np.testing.assert_array_equal(np.asarray(Image.open(path)), image)
    assert os.listdir(tmp_path / "sub") == ["x.png"]
