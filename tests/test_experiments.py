"""End-to-end MNIST experiments on a small subset: run directory contents, TensorBoard events,
report, comparison, and the one-sentence errors with exit code 2."""
import json
import os
import sys
from pathlib import Path

import pytest

from experiments import compare, mnist_cnn2, mnist_cnn3, mnist_mlp3
from tests.helpers import mnist_available
from tinygrad_edu.logging import read_events

needs_mnist = pytest.mark.skipif(not mnist_available(),
                                 reason="real MNIST not in the data cache (python -m "
                                        "tinygrad_edu.data download mnist)")
SMALL = ["--epochs", "1", "--subset", "2000", "--batch-size", "32", "--no-progress"]


@needs_mnist
def test_cnn3_run_directory_is_complete(tmp_path):
    summary = mnist_cnn3.main(SMALL + ["--logdir", str(tmp_path)])
    run_dir = summary["run_dir"]
    for name in ("metrics.json", "checkpoint.npz", "report.html"):
        assert os.path.exists(os.path.join(run_dir, name)), name
    saved = json.loads(Path(run_dir, "metrics.json").read_text())["summary"]
    assert saved["status"] == "finished" and saved["test_accuracy"] > 0.5
    events = read_events(run_dir)
    for tag in ("train/loss", "train/accuracy", "val/loss", "val/accuracy", "test/f1_macro"):
        assert tag in events.scalars, tag
    assert {"test/confusion_matrix", "test/top3_per_class"} <= set(events.images)
    html = Path(run_dir, "report.html").read_text()
    assert "<svg" in html and "data:image/png;base64" in html and "F-scores" in html


@needs_mnist
def test_compare_collects_both_frameworks(tmp_path):
    pytest.importorskip("torch")
    args = SMALL + ["--logdir", str(tmp_path)]
    mnist_mlp3.main(args)
    mnist_mlp3.main(args + ["--framework", "torch"])
    compare.main(["--collect", "--logdir", str(tmp_path), "--networks", "mlp3"])
    out = [d for d in os.listdir(tmp_path) if d.startswith("compare-")]
    md = Path(tmp_path, out[0], "comparison.md").read_text()
    assert "| mlp3 | tinygrad_edu |" in md and "| mlp3 | torch |" in md
    assert "| adam lr 0.001, cosine, 1 epochs, batch 32, mnist |" in md


@needs_mnist
def test_compare_trains_with_the_given_optimizer_and_says_so(tmp_path):
    compare.main(SMALL + ["--logdir", str(tmp_path), "--networks", "mlp3", "--frameworks",
                          "tinygrad_edu", "--optimizer", "sgd", "--lr", "0.05", "--momentum",
                          "0.5", "--schedule", "none"])
    (run_dir,) = tmp_path.glob("compare-*/mlp3-tinygrad_edu-*")  # the runs go inside
    config = json.loads((run_dir / "run.json").read_text())["config"]
    assert (config["optimizer"], config["lr"], config["momentum"], config["schedule"]) == (
        "sgd", 0.05, 0.5, "none")
    (out,) = [d for d in tmp_path.iterdir() if d.name.startswith("compare-")]
    assert "sgd lr 0.05 momentum 0.5, none, 1 epochs" in (out / "comparison.md").read_text()


def test_sgd_momentum_defaults_to_pytorchs_zero():
    from experiments.common import make_optimizer
    from experiments.mnist_common import MNISTConfig
    from models import MLP3
    opt = make_optimizer(MNISTConfig(optimizer="sgd"), MLP3().parameters())
    assert opt.param_groups[0]["momentum"] == 0.0
    opt = make_optimizer(MNISTConfig(optimizer="sgd", momentum=0.9), MLP3().parameters())
    assert opt.param_groups[0]["momentum"] == 0.9


def _exit_code(main, argv, capsys) -> tuple[int, str]:
    with pytest.raises(SystemExit) as e:
        main(argv)
    return e.value.code, capsys.readouterr().err


def test_missing_data_dir_is_one_sentence(tmp_path, capsys):
    code, err = _exit_code(mnist_cnn2.main, ["--data-dir", str(tmp_path / "nope"),
                                             "--logdir", str(tmp_path)], capsys)
    assert code == 2 and "is not a directory" in err and "Traceback" not in err
    assert not any(p.name.startswith("mnist") for p in tmp_path.iterdir())


def test_corrupt_data_dir_is_reported(tmp_path, capsys):
    (tmp_path / "train-images-idx3-ubyte").write_bytes(b"\x00\x00\x08\x03garbage")
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(b"\x00\x00\x08\x01")
    code, err = _exit_code(mnist_cnn2.main, ["--data-dir", str(tmp_path),
                                             "--logdir", str(tmp_path / "runs")], capsys)
    assert code == 2 and "train-images-idx3-ubyte" in err
    assert not (tmp_path / "runs").exists()


@needs_mnist
def test_subset_larger_than_data(tmp_path, capsys):
    code, err = _exit_code(mnist_cnn3.main, ["--subset", "70000", "--logdir", str(tmp_path)],
                           capsys)
    assert code == 2 and "--subset 70000" in err
    assert not os.listdir(tmp_path)


def test_torch_framework_without_torch(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # makes `import torch` fail
    code, err = _exit_code(mnist_mlp3.main, ["--framework", "torch", "--logdir", str(tmp_path)],
                           capsys)
    assert code == 2 and "pip install torch==2.13.0" in err


FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")  # apt-get install dataset-fashion-mnist


@pytest.mark.skipif(not FASHION_DIR.is_dir(), reason="Debian's dataset-fashion-mnist is not "
                    "installed (apt-get install dataset-fashion-mnist)")
def test_fashion_mnist_trains_on_fashion_mnist(tmp_path, capsys):
    from tinygrad_edu.data import FashionMNIST
    summary = mnist_mlp3.main(SMALL + ["--dataset", "fashion-mnist", "--data-dir",
                                       str(FASHION_DIR), "--logdir", str(tmp_path)])
    run = json.loads(Path(summary["run_dir"], "run.json").read_text())
    assert run["dataset"] == "fashion-mnist" and run["class_names"] == list(FashionMNIST.classes)
    assert run["preprocessing"]["mean"] == [0.286] and os.path.basename(
        summary["run_dir"]).startswith("fashion-mnist_mlp3-tinygrad_edu-")
    assert summary["test_accuracy"] > 0.6  # clothes: an MLP on 2000 images, one epoch
    assert "Fashion-MNIST mlp3" in Path(summary["run_dir"], "report.html").read_text()
    code, err = _exit_code(mnist_mlp3.main, SMALL + ["--data-dir", str(FASHION_DIR),
                                                     "--logdir", str(tmp_path / "b")], capsys)
    assert code == 2 and "holds FashionMNIST, not MNIST" in err and not (tmp_path / "b").exists()


@needs_mnist
def test_a_torch_run_resumes_to_the_uninterrupted_weights(tmp_path, monkeypatch):
    """--resume of a --framework torch run continues its last.npz (the twin's loop checkpoints
    too): one epoch, then one more, ends where two epochs in one go end."""
    pytest.importorskip("torch")
    import numpy as np

    import tinygrad_edu as tg
    from experiments import torch_backend
    real_fit, resumes = torch_backend.fit, []

    def fit(*args, **kwargs):
        resumes.append(kwargs["resume"])
        return real_fit(*args, **kwargs)
    monkeypatch.setattr(torch_backend, "fit", fit)
    args = SMALL + ["--framework", "torch", "--schedule", "none"]
    whole = mnist_mlp3.main(args + ["--epochs", "2", "--logdir", str(tmp_path / "a")])
    first = mnist_mlp3.main(args + ["--logdir", str(tmp_path / "b")])
    resumed = mnist_mlp3.main(["--resume", first["run_dir"], "--epochs", "2", "--override",
                               "--no-progress"])
    assert resumes == [False, False, True]
    assert resumed["run_dir"] == first["run_dir"] and len(resumed["history"]["train_loss"]) == 2
    weights = [tg.load(os.path.join(r["run_dir"], "checkpoint.npz"))["model"]
               for r in (whole, resumed)]
    for name in weights[0]:
        np.testing.assert_array_equal(weights[0][name].data, weights[1][name].data, name)
