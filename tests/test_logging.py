"""Logger writes runs that read back (event files and metrics.json)."""
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from tinygrad_edu.logging import Logger, read_events
from tinygrad_edu.viz.images import heatmap_image

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
