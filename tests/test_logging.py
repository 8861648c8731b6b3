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


def test_histogram_of_huge_or_non_finite_values_never_crashes(tmp_path):
    with Logger(logdir=str(tmp_path)) as log:
        with pytest.warns(RuntimeWarning, match="3 of 4 values are NaN or inf at step 0"):
            log.histogram("w", [1.0, np.nan, np.inf, -np.inf], step=0)
        log.histogram("huge", np.array([-1e308, 0.0, 1e308, 1e308]), step=1)
        log.histogram("same", np.full(5, 2.5), step=2)
        with pytest.warns(RuntimeWarning, match="2 of 2"):
            log.histogram("none", [np.nan, np.inf], step=3)          # nothing left to draw
    hist = read_events(str(tmp_path)).histograms
    assert hist["w"][0][1]["num"] == 1 and hist["w"][0][1]["min"] == 1.0
    huge = hist["huge"][0][1]
    assert (huge["min"], huge["max"], huge["num"]) == (-1e308, 1e308, 4)
    assert sum(huge["bucket"]) == 4 and huge["bucket"][0] == 1 and huge["bucket"][-1] == 2
    assert sum(hist["same"][0][1]["bucket"]) == 5
    assert "none" not in hist


# ---------------------------------------------------------------- SummaryWriter's face


def _event_files(folder) -> list[str]:
    return sorted(p for p in os.listdir(folder) if p.startswith("events.out.tfevents"))


def test_summary_writer_takes_our_tensors(tmp_path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    import tinygrad_edu as tg
    from tinygrad_edu.utils.tensorboard import SummaryWriter

    tg.manual_seed(0)
    with SummaryWriter(str(tmp_path / "run")) as w:
        assert w.get_logdir() == str(tmp_path / "run")
        w.add_scalar("loss", tg.tensor(0.25), 3)
        w.add_scalar("lr", 0.1)
        w.add_histogram("weights", tg.randn(100), 1)
        w.add_image("one", tg.rand(3, 8, 8), 0)
        w.add_image("hwc", tg.rand(8, 8, 3), 0, dataformats="HWC")
        w.add_images("batch", tg.rand(4, 1, 8, 8), 0)
        fig = plt.figure()
        plt.plot([0, 1])
        w.add_figure("figure", fig, 0)
        w.add_text("note", "hello", 0)
    ev = read_events(str(tmp_path / "run"))
    assert ev.scalars["loss"] == [(3, 0.25)] and ev.scalars["lr"][0][0] == 0
    assert set(ev.images) == {"one", "hwc", "batch", "figure"}
    assert ev.images["one"][0][1].shape[:2] == (8, 8)
    assert ev.histograms["weights"][0][1]["num"] == 100
    assert ev.texts["note/text_summary"] == [(0, "hello")]
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["scalars"]["loss"] == [[3, 0.25]]


def test_summary_writer_reopened_in_the_same_second_keeps_earlier_files(tmp_path):
    """The PyTorch TensorBoard tutorial closes its writer after every PR curve; each reopening
    must go to a new event file, so all ten curves survive."""
    from tensorboardX.proto.event_pb2 import Event

    import tinygrad_edu as tg
    from tinygrad_edu.logging import _records
    from tinygrad_edu.utils.tensorboard import SummaryWriter

    w = SummaryWriter(str(tmp_path))
    for c in range(10):
        w.add_pr_curve(f"class{c}", tg.tensor([0, 1, 1, 0, 1]) == 1, tg.rand(5), 0)
        w.close()
    tags = set()
    for name in _event_files(tmp_path):
        for payload in _records(str(tmp_path / name)):
            tags |= {v.tag for v in Event.FromString(payload).summary.value}
    assert tags == {f"class{c}" for c in range(10)}
    assert len(_event_files(tmp_path)) == 10


def test_summary_writer_graph_embedding_hparams(tmp_path):
    from tensorboardX.proto.event_pb2 import Event
    from tensorboardX.proto.graph_pb2 import GraphDef

    import tinygrad_edu as tg
    from tinygrad_edu import nn
    from tinygrad_edu.logging import _records
    from tinygrad_edu.utils.tensorboard import SummaryWriter

    model = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    with SummaryWriter(str(tmp_path)) as w:
        w.add_graph(model, tg.randn(2, 4))
        w.add_embedding(tg.randn(6, 3), metadata=list("abcdef"), label_img=tg.rand(6, 1, 4, 4))
        w.add_hparams({"lr": 0.1, "opt": "sgd"}, {"hparam/accuracy": 0.9})
        w.add_scalars("curves", {"train": 1.0, "val": tg.tensor(2.0)}, 1)
    graphs = [GraphDef.FromString(Event.FromString(p).graph_def)
              for name in _event_files(tmp_path) for p in _records(str(tmp_path / name))
              if Event.FromString(p).graph_def]
    names = {n.name for n in graphs[0].node}
    assert {"0/weight", "0/bias", "2/weight"} <= names
    assert any(n.op == "Linear" for n in graphs[0].node)
    assert (tmp_path / "projector_config.pbtxt").exists()
    assert os.path.exists(tmp_path / "00000" / "default" / "tensors.tsv")
    assert os.path.isdir(tmp_path / "curves_train") and os.path.isdir(tmp_path / "curves_val")


def test_logging_and_the_graphdef_never_load_torch(tmp_path):
    """tensorboardX imports torch when it is installed; tinygrad_edu keeps PyTorch out: a run
    that logs, reads its events back and builds a TensorBoard graph has no torch module."""
    import subprocess
    import sys
    code = f"""
import sys
import tinygrad_edu as tg
from tinygrad_edu.logging import Logger, read_events
from tinygrad_edu.utils.tensorboard import SummaryWriter
log = Logger({str(tmp_path / "run")!r})
log.scalar("loss", 1.0, 0)
log.close()
read_events(log.logdir)
model = tg.nn.Sequential(tg.nn.Linear(3, 2))
w = SummaryWriter({str(tmp_path / "tb")!r})
w.add_graph(model, tg.randn(1, 3))
w.close()
print("torch" in sys.modules)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False", out.stderr
