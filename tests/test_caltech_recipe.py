"""The improved LeNet-5's training recipe beyond the network: label smoothing of the one-hot
training loss (plain cross-entropy under no_grad, in both frameworks) and horizontal-flip
test-time augmentation of the final evaluation."""
import numpy as np
import pytest

import tinygrad_edu as tg
from experiments.caltech_common import flip_tta, one_hot_cross_entropy
from experiments.caltech_lenet5 import IMPROVED
from tinygrad_edu import nn
from tinygrad_edu.data import ArrayDataset, DataLoader
from tinygrad_edu.data import transforms as T
from tinygrad_edu.nn import functional as F


def logits_and_labels(n: int = 6, c: int = 5):
    rng = np.random.default_rng(0)
    return rng.standard_normal((n, c)).astype(np.float32), rng.integers(0, c, n)


def test_label_smoothing_is_in_the_training_loss_only():
    z, y = logits_and_labels()
    loss = one_hot_cross_entropy(5, "tinygrad_edu", label_smoothing=0.2)
    out, target = tg.Tensor(z, requires_grad=True), tg.Tensor(y)
    smoothed = loss(out, target).item()
    assert np.isclose(smoothed, F.cross_entropy(out, y, label_smoothing=0.2).item())
    with tg.no_grad():
        plain = loss(out, target).item()
    assert np.isclose(plain, F.cross_entropy(out, y).item()) and abs(plain - smoothed) > 1e-3
    assert np.isclose(one_hot_cross_entropy(5, "tinygrad_edu")(out, target).item(), plain)


def test_label_smoothing_matches_the_torch_twin():
    torch = pytest.importorskip("torch")
    z, y = logits_and_labels()
    ours = one_hot_cross_entropy(5, "tinygrad_edu", 0.1)(tg.Tensor(z, requires_grad=True),
                                                          tg.Tensor(y))
    out = torch.tensor(z)  # smoothing depends on grad mode, not on requires_grad
    theirs = one_hot_cross_entropy(5, "torch", 0.1)(out, torch.tensor(y))
    assert np.isclose(ours.item(), float(theirs), atol=1e-6)
    assert np.isclose(float(theirs), float(torch.nn.functional.cross_entropy(
        out, torch.tensor(y), label_smoothing=0.1)), atol=1e-6)
    with torch.no_grad():
        assert np.isclose(float(one_hot_cross_entropy(5, "torch", 0.1)(out, torch.tensor(y))),
                          float(torch.nn.functional.cross_entropy(out, torch.tensor(y))))


def test_flip_tta_averages_the_softmax_of_each_image_and_its_mirror():
    rng = np.random.default_rng(1)
    data = rng.integers(0, 256, (7, 6, 6, 3), np.uint8)  # (N, H, W, C) as ImageFolder holds them
    targets = rng.integers(0, 3, 7)
    val = ArrayDataset(data, targets, transform=T.Compose([T.ToTensor(),
                                                           T.Normalize((0.5,) * 3, (0.25,) * 3)]))
    tg.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 6 * 6, 3))  # not mirror-symmetric
    loader = DataLoader(val, 4)
    _, _, logits, y = tg.train.evaluate(model, loader)
    loss, acc, log_p = flip_tta(lambda data: tg.train.evaluate(model, data), loader, logits, y)
    x = np.stack([val[i][0] for i in range(len(val))])
    flipped = tg.train.predict(model, np.ascontiguousarray(x[..., ::-1]))
    assert not np.allclose(flipped, logits, atol=1e-3)
    p = (F.softmax(tg.Tensor(logits), 1).numpy() + F.softmax(tg.Tensor(flipped), 1).numpy()) / 2
    assert np.allclose(np.exp(log_p), p, atol=1e-6)
    assert acc == np.mean(p.argmax(1) == targets)
    assert np.isclose(loss, -np.mean(np.log(p[np.arange(7), targets])), atol=1e-6)
    assert np.array_equal(val[0][0], x[0])  # the validation set itself is not mirrored


def test_improved_recipe_smooths_labels_and_evaluates_with_flips():
    assert (IMPROVED.label_smoothing, IMPROVED.tta, IMPROVED.epochs) == (0.1, True, 60)
