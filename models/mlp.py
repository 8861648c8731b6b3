"""MLP3: the fully connected baseline for MNIST (784 -> 256 -> 128 -> 10)."""
from __future__ import annotations

from collections import OrderedDict

from tinygrad_edu import nn


def mlp_layers(nn, in_features: int, hidden: tuple[int, ...], num_classes: int):
    """(features, classifier) Sequentials built from `nn`, which is `tinygrad_edu.nn` or
    `torch.nn`: one definition makes the model and its PyTorch twin, with the same names."""
    layers = OrderedDict(flatten=nn.Flatten())
    width = in_features
    for i, h in enumerate(hidden, start=1):
        layers[f"fc{i}"] = nn.Linear(width, h)
        layers[f"relu{i}"] = nn.ReLU()
        width = h
    return nn.Sequential(layers), nn.Sequential(OrderedDict(fc=nn.Linear(width, num_classes)))


class MLP3Code:
    """The body of MLP3 and its twin; the subclass names its framework in `nn`."""

    nn = nn

    def __init__(self, in_features: int = 784, hidden: tuple[int, ...] = (256, 128),
                 num_classes: int = 10):
        super().__init__()
        self.config = {"in_features": in_features, "hidden": tuple(hidden),
                       "num_classes": num_classes}
        self.features, self.classifier = mlp_layers(self.nn, **self.config)

    def forward(self, x):
        return self.classifier(self.features(x))


class MLP3(MLP3Code, nn.Module):
    """Linear-ReLU-Linear-ReLU-Linear on flattened images; returns logits (the softmax is in
    the loss). Input (N, 1, 28, 28) or (N, 784), output (N, num_classes).

        model = MLP3()
        logits = model(tg.randn(32, 1, 28, 28))   # (32, 10)
    """
