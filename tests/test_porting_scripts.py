"""PyTorch scripts run on tinygrad_edu with only their imports changed (the import rule of
tests/scripts/port.py), on small subsets: pytorch/examples' mnist/main.py, a course convnet
(Adadelta + StepLR + dropout + nll_loss), a VAE (save_image) and the TensorBoard tutorial
(make_grid, add_graph, add_embedding, add_figure, add_pr_curve).

PyTorch is the witness: the original file, loaded unchanged with torch, builds the same model
from the same weights, and its forward, loss, gradients and optimizer steps must agree with the
ported file's. torchvision is not needed for that (a stub stands in for the names the scripts
import; the models and losses do not use it); with torchvision installed the whole original
script also runs on the same subset, and the two results are compared.
"""
from __future__ import annotations

import importlib.util
import os
import sys
import types
from pathlib import Path

import numpy as np
import pytest

import tinygrad_edu as tg
from tests.scripts.port import load_original, load_ported, port_line, port_source
from tinygrad_edu.data import MNIST, DataError, FashionMNIST

SCRIPTS = Path(__file__).parent / "scripts"
FAST = {"OPENBLAS_NUM_THREADS": "1"}


@pytest.mark.parametrize("line, ported", [
    ("import torch", "import tinygrad_edu as torch"),
    ("import torch.nn as nn", "import tinygrad_edu.nn as nn"),
    ("from torch import nn, optim", "from tinygrad_edu import nn, optim"),
    ("from torch.nn import functional as F", "from tinygrad_edu.nn import functional as F"),
    ("from torch.utils.tensorboard import SummaryWriter",
     "from tinygrad_edu.utils.tensorboard import SummaryWriter"),
    ("import torchvision", "import tinygrad_edu.vision as torchvision"),
    ("import torchvision.transforms as transforms",
     "import tinygrad_edu.vision.transforms as transforms"),
    ("from torchvision.utils import save_image", "from tinygrad_edu.vision.utils import save_image"),
    ("import torch.utils.data", "import tinygrad_edu as torch, tinygrad_edu.utils.data"),
    ("    import torch", "    import tinygrad_edu as torch"),
    ("x = torch.zeros(3)  # import torch", "x = torch.zeros(3)  # import torch"),
    ("import torchaudio", "import torchaudio"),
])
def test_the_import_rule_changes_import_lines_only(line, ported):
    assert port_line(line) == ported


def test_ported_scripts_differ_from_the_originals_in_import_lines_only():
    for path in SCRIPTS.glob("*.py"):
        if path.name in ("port.py", "__init__.py"):
            continue
        before, after = path.read_text().split("\n"), port_source(path.read_text()).split("\n")
        changed = [a for a, b in zip(before, after) if a != b]
        assert changed and all("import" in line for line in changed), path.name


# ---------------------------------------------------------------- helpers


def _mnist(cls=MNIST):
    try:
        return cls(train=False, download=cls is FashionMNIST)
    except DataError as e:
        pytest.skip(f"{cls.__name__} not available: {e}")


def _stub(monkeypatch, name: str) -> None:
    """A module whose every public name fails when used, in place of one not installed."""
    def missing(*args, **kwargs):
        raise NotImplementedError(f"{name} is not installed")

    def getattr_(attr: str):
        if attr.startswith("__"):
            raise AttributeError(attr)
        return missing

    module = types.ModuleType(name)
    module.__getattr__ = getattr_
    monkeypatch.setitem(sys.modules, name, module)
    parent, _, child = name.rpartition(".")
    if parent in sys.modules:
        monkeypatch.setattr(sys.modules[parent], child, module, raising=False)


def _missing_packages_stubbed(monkeypatch) -> None:
    """Without torchvision (or tensorboard, which torch.utils.tensorboard needs): stubs. The
    PyTorch side of the tests only builds models and losses, which never touch them."""
    if importlib.util.find_spec("torchvision") is None:
        for name in ("torchvision", "torchvision.datasets", "torchvision.transforms",
                     "torchvision.utils", "torchvision.transforms.functional"):
            _stub(monkeypatch, name)
    if importlib.util.find_spec("tensorboard") is None:
        _stub(monkeypatch, "torch.utils.tensorboard")


def _scripts(name: str, monkeypatch):
    """(the ported module on tinygrad_edu, the original on torch)."""
    torch = pytest.importorskip("torch")
    _missing_packages_stubbed(monkeypatch)
    ours = load_ported(SCRIPTS / f"{name}.py", f"ported_{name}")
    theirs = load_original(SCRIPTS / f"{name}.py", f"torch_{name}")
    return ours, theirs, torch


def _same_weights(ours, theirs, torch) -> None:
    theirs.load_state_dict({k: torch.from_numpy(np.array(v.data))
                            for k, v in ours.state_dict().items()})


def _close(a, b, atol=1e-5, what=""):
    np.testing.assert_allclose(np.asarray(a.data if hasattr(a, "_ctx") else a),
                               b.detach().numpy() if hasattr(b, "detach") else b,
                               atol=atol, rtol=1e-4, err_msg=what)


def _train_steps(model_ours, model_theirs, opt_ours, opt_theirs, batches, loss_ours, loss_theirs,
                 torch, sched_ours=None, sched_theirs=None):
    """The same optimizer steps on both; parameters must stay equal."""
    for x, y in batches:
        opt_ours.zero_grad()
        opt_theirs.zero_grad()
        lo = loss_ours(model_ours(tg.tensor(x)), tg.tensor(y))
        lt = loss_theirs(model_theirs(torch.from_numpy(x)), torch.from_numpy(y))
        _close(lo, lt, what="loss")
        lo.backward()
        lt.backward()
        opt_ours.step()
        opt_theirs.step()
        if sched_ours is not None:
            sched_ours.step()
            sched_theirs.step()
    for (name, p), q in zip(model_ours.named_parameters(), model_theirs.parameters()):
        _close(p, q, atol=1e-4, what=name)


def _mnist_batches(n_batches=3, size=16, seed=0):
    data = _mnist()
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n_batches):
        idx = rng.choice(len(data), size, replace=False)
        x = ((data.data[idx] / 255 - 0.1307) / 0.3081).astype(np.float32)[:, None]
        out.append((x, data.targets[idx].astype(np.int64)))
    return out


# ---------------------------------------------------------------- pytorch/examples mnist/main.py


def test_mnist_main_matches_torch_step_by_step(monkeypatch):
    ours, theirs, torch = _scripts("mnist_main", monkeypatch)
    tg.manual_seed(0)
    a, b = ours.Net().eval(), theirs.Net().eval()      # eval: dropout off, so steps are exact
    _same_weights(a, b, torch)
    opt_a = tg.optim.Adadelta(a.parameters(), lr=1.0)
    opt_b = torch.optim.Adadelta(b.parameters(), lr=1.0)
    sched_a = tg.optim.lr_scheduler.StepLR(opt_a, step_size=1, gamma=0.7)
    sched_b = torch.optim.lr_scheduler.StepLR(opt_b, step_size=1, gamma=0.7)
    _train_steps(a, b, opt_a, opt_b, _mnist_batches(), tg.nn.functional.nll_loss,
                 torch.nn.functional.nll_loss, torch, sched_a, sched_b)
    assert sched_a.get_last_lr() == pytest.approx(sched_b.get_last_lr())


def test_mnist_main_runs_with_its_imports_changed(monkeypatch, tmp_path, capsys):
    _mnist()
    ours = load_ported(SCRIPTS / "mnist_main.py")
    monkeypatch.chdir(tmp_path)
    accuracy = ours.main(["--epochs", "1", "--subset", "2000", "--log-interval", "20",
                          "--data", str(tmp_path), "--save-model"])
    out = capsys.readouterr().out
    assert "Train Epoch: 1 [0/2000 (0%)]" in out and "Test set: Average loss:" in out
    assert accuracy > 0.8, out
    state = tg.load(tmp_path / "mnist_cnn.pt")
    assert set(state) == set(ours.Net().state_dict())


# ---------------------------------------------------------------- the course convnet


def test_convnet_matches_torch_in_training_mode(monkeypatch):
    ours, theirs, torch = _scripts("convnet", monkeypatch)
    tg.manual_seed(0)
    a, b = ours.ConvNet(), theirs.ConvNet()
    for model in (a, b):            # dropout off, batch norm on batch statistics: exact steps
        model.dropout.p = model.features[6].p = 0.0
    _same_weights(a, b, torch)
    opt_a, opt_b = tg.optim.Adadelta(a.parameters()), torch.optim.Adadelta(b.parameters())
    _train_steps(a, b, opt_a, opt_b, _mnist_batches(), tg.nn.functional.nll_loss,
                 torch.nn.functional.nll_loss, torch)
    x = _mnist_batches(1, 8, seed=1)[0][0]
    _close(a.eval()(tg.tensor(x)), b.eval()(torch.from_numpy(x)), atol=1e-4, what="eval")
    _close(a.features[1].running_var, b.features[1].running_var, what="running_var")


def test_convnet_runs_with_its_imports_changed(tmp_path, capsys):
    _mnist()
    ours = load_ported(SCRIPTS / "convnet.py")
    tg.manual_seed(0)
    accuracy = ours.main(["--epochs", "1", "--subset", "3000", "--workers", "2",
                          "--data", str(tmp_path), "--out", str(tmp_path / "best.pt")])
    out = capsys.readouterr().out
    assert "val_acc" in out and "best epoch 1" in out
    assert accuracy > 0.85, out
    assert tg.load(tmp_path / "best.pt")["epoch"] == 0


# ---------------------------------------------------------------- the VAE


def test_vae_loss_and_steps_match_torch(monkeypatch):
    ours, theirs, torch = _scripts("vae", monkeypatch)
    tg.manual_seed(0)
    a, b = ours.VAE(), theirs.VAE()
    _same_weights(a, b, torch)
    x = np.clip(_mnist_batches(1, 8)[0][0] * 0.3081 + 0.1307, 0, 1)
    mu, logvar = a.encode(tg.tensor(x).view(-1, 784))
    mu_t, logvar_t = b.encode(torch.from_numpy(x).view(-1, 784))
    _close(mu, mu_t, what="mu")
    loss = ours.loss_function(a.decode(mu), tg.tensor(x), mu, logvar)      # z = mu: no noise
    loss_t = theirs.loss_function(b.decode(mu_t), torch.from_numpy(x), mu_t, logvar_t)
    _close(loss, loss_t, atol=1e-2, what="loss")
    loss.backward()
    loss_t.backward()
    for (name, p), q in zip(a.named_parameters(), b.parameters()):
        _close(p.grad, q.grad, atol=1e-3, what=name)
    opt_a, opt_b = tg.optim.Adam(a.parameters(), lr=1e-3), torch.optim.Adam(b.parameters(), 1e-3)
    opt_a.step()
    opt_b.step()
    for (name, p), q in zip(a.named_parameters(), b.parameters()):
        _close(p, q, atol=1e-5, what=name)


def test_vae_runs_with_its_imports_changed(tmp_path, capsys):
    _mnist()
    ours = load_ported(SCRIPTS / "vae.py")
    results = tmp_path / "results"
    losses = ours.main(["--epochs", "2", "--subset", "1024", "--log-interval", "4",
                        "--data", str(tmp_path), "--results", str(results)])
    (train1, test1), (train2, test2) = losses
    assert train2 < train1 < 784 * np.log(2) and test2 < test1 < 350, losses   # nats per image
    from PIL import Image
    with Image.open(results / "reconstruction_2.png") as im:
        assert im.size == (8 * 30 + 2, 2 * 30 + 2)             # make_grid: 8 per row, 2 rows
    with Image.open(results / "sample_2.png") as im:
        assert im.size == (8 * 30 + 2, 8 * 30 + 2)
    assert "====> Test set loss:" in capsys.readouterr().out


# ---------------------------------------------------------------- the TensorBoard tutorial


def test_tensorboard_tutorial_net_matches_torch(monkeypatch):
    ours, theirs, torch = _scripts("tensorboard_tutorial", monkeypatch)
    tg.manual_seed(0)
    a, b = ours.Net(), theirs.Net()
    _same_weights(a, b, torch)
    opt_a = tg.optim.SGD(a.parameters(), lr=0.001, momentum=0.9)
    opt_b = torch.optim.SGD(b.parameters(), lr=0.001, momentum=0.9)
    _train_steps(a, b, opt_a, opt_b, _mnist_batches(4, 4), tg.nn.CrossEntropyLoss(),
                 torch.nn.CrossEntropyLoss(), torch)


def test_tensorboard_tutorial_runs_with_its_imports_changed(tmp_path):
    _mnist(FashionMNIST)
    from tensorboardX.proto.event_pb2 import Event

    from tinygrad_edu.logging import _records, read_events
    ours = load_ported(SCRIPTS / "tensorboard_tutorial.py")
    logdir = tmp_path / "runs"
    tg.manual_seed(0)
    accuracy = ours.main(["--data", str(tmp_path / "data"), "--logdir", str(logdir),
                          "--subset", "2000", "--every", "100", "--workers", "2"])
    assert accuracy > 0.3                       # one epoch of 500 SGD steps at lr 0.001
    events = read_events(str(logdir))
    assert "four_fashion_mnist_images" in events.images
    # tensorboardX writes tags with spaces as underscores (torch's writer keeps them)
    assert "predictions_vs._actuals" in events.images
    assert len(events.scalars["training_loss"]) == 5
    kinds, curves = set(), set()
    for name in sorted(os.listdir(logdir)):
        if name.startswith("events.out"):
            for payload in _records(str(logdir / name)):
                event = Event.FromString(payload)
                kinds.add("graph" if event.graph_def else "summary")
                curves |= {v.tag for v in event.summary.value
                           if v.metadata.plugin_data.plugin_name == "pr_curves"}
    assert "graph" in kinds
    assert curves == set(ours.classes)           # all ten, although the writer closes each time
    assert (logdir / "projector_config.pbtxt").exists()


@pytest.mark.skipif(importlib.util.find_spec("torchvision") is None,
                    reason="torchvision is not installed: the whole original cannot run")
def test_mnist_main_reaches_torchs_accuracy_on_the_same_subset(tmp_path):
    args = ["--epochs", "1", "--subset", "2000", "--data", str(tmp_path)]
    ours = load_ported(SCRIPTS / "mnist_main.py").main(args)
    theirs = load_original(SCRIPTS / "mnist_main.py").main(args + ["--no-accel"])
    assert abs(ours - theirs) < 0.05


# ---------------------------------------------------------------- the quickstart tutorial


def test_quickstart_matches_torch_step_by_step(monkeypatch):
    ours, theirs, torch = _scripts("quickstart", monkeypatch)
    tg.manual_seed(0)
    a, b = ours.NeuralNetwork(), theirs.NeuralNetwork()
    _same_weights(a, b, torch)
    _train_steps(a, b, tg.optim.SGD(a.parameters(), lr=1e-3),
                 torch.optim.SGD(b.parameters(), lr=1e-3), _mnist_batches(3, 8),
                 tg.nn.CrossEntropyLoss(), torch.nn.CrossEntropyLoss(), torch)


def test_quickstart_runs_with_its_imports_changed(tmp_path, capsys):
    _mnist(FashionMNIST)
    ours = load_ported(SCRIPTS / "quickstart.py")
    tg.manual_seed(0)
    accuracy, predicted, actual = ours.main(["--data", str(tmp_path), "--epochs", "1",
                                             "--out", str(tmp_path / "model.pth")])
    out = capsys.readouterr().out
    assert "Shape of X [N, C, H, W]: (64, 1, 28, 28)" in out and "Using cpu device" in out
    assert accuracy > 0.35 and actual == "Ankle boot", out      # 938 SGD steps at lr 1e-3
    assert f'Predicted: "{predicted}", Actual: "Ankle boot"' in out


# ---------------------------------------------------------------- forward-forward


def test_forward_forward_overlay_and_layer_match_torch(monkeypatch):
    ours, theirs, torch = _scripts("forward_forward", monkeypatch)
    x = np.random.default_rng(0).standard_normal((6, 784)).astype(np.float32)
    y = np.array([3, 1, 4, 1, 5, 9])
    _close(ours.overlay_y_on_x(tg.tensor(x), tg.tensor(y)),
           theirs.overlay_y_on_x(torch.from_numpy(x), torch.from_numpy(y)), what="overlay")
    _close(ours.overlay_y_on_x(tg.tensor(x), 7), theirs.overlay_y_on_x(torch.from_numpy(x), 7))
    args = types.SimpleNamespace(lr=0.03, threshold=2.0, epochs=3, log_interval=10)
    monkeypatch.setattr(ours, "args", args)
    monkeypatch.setattr(theirs, "args", args)
    tg.manual_seed(0)
    a, b = ours.Layer(784, 16), theirs.Layer(784, 16)
    _same_weights(a, b, torch)
    x_neg = np.roll(x, 1, axis=0)
    out_a = a.train(tg.tensor(x), tg.tensor(x_neg))
    out_b = b.train(torch.from_numpy(x), torch.from_numpy(x_neg))
    for o, t in zip(out_a, out_b):
        _close(o, t, atol=1e-4, what="after three Adam steps")


def test_forward_forward_runs_with_its_imports_changed(tmp_path, capsys):
    _mnist()
    ours = load_ported(SCRIPTS / "forward_forward.py")
    train_error, test_error = ours.main(["--epochs", "200", "--train-size", "2000",
                                         "--test-size", "1000", "--hidden", "100",
                                         "--log-interval", "50", "--data", str(tmp_path)])
    assert "training layer:  1" in capsys.readouterr().out
    # torch, same data and settings: train error 0.49, test error 0.55 (chance: 0.9)
    assert train_error < 0.65 and test_error < 0.7, (train_error, test_error)
