"""LeNet-5 for 64x64 RGB images (Caltech-101), as the assignment specifies it, and an improved one.

    conv 5x5, 32 filters, ReLU - max pool 4/4 - conv 5x5, 64 filters, ReLU - max pool 4/4
    - FC 1021, ReLU - FC 84, ReLU - FC num_classes          (the softmax is in the loss)

The convolutions pad by 2 ("same"), which the assignment leaves open: 64 -> 16 -> 4, so the
pools divide evenly and FC 1021 sees 64 * 4 * 4 = 1024 features. `LeNet5(improved=True)` keeps
these layers and adds batch normalisation to every conv block and hidden FC, dropout before the
hidden FCs, and Xavier-uniform weights; augmentation, weight decay, label smoothing and the
learning-rate schedule belong to training, flip test-time augmentation to evaluation (see
experiments/caltech_lenet5.py and docs/caltech.md: 78.5% validation). Its conv blocks run conv -
pool - BN - ReLU: pooling before BN normalises 16x fewer values (the block costs about half as
much on a CPU), and max pooling commutes with ReLU, so only BN's statistics differ from
conv - BN - ReLU - pool.
"""
from __future__ import annotations

from collections import OrderedDict

from tinygrad_edu import nn


def check_lenet_config(name: str, image_size: int) -> None:
    if image_size % 16 or image_size < 16:
        raise ValueError(f"{name}: image_size must be a multiple of 16 (two 4x4 poolings), "
                         f"got {image_size}")


def lenet_layers(nn, in_channels: int, num_classes: int, image_size: int, improved: bool,
                 dropout: float):
    """(features, classifier) Sequentials built from `nn`, which is `tinygrad_edu.nn` or
    `torch.nn`: one definition makes the model and its PyTorch twin, with the same names."""
    f = OrderedDict()
    width = in_channels
    for i, c in enumerate((32, 64), start=1):
        f[f"conv{i}"] = nn.Conv2d(width, c, 5, stride=1, padding=2, bias=not improved)
        if improved:  # pool first: max pooling commutes with ReLU, and BN sees 16x fewer values
            f[f"pool{i}"] = nn.MaxPool2d(4, stride=4)
            f[f"bn{i}"] = nn.BatchNorm2d(c)
            f[f"relu{i}"] = nn.ReLU()
        else:
            f[f"relu{i}"] = nn.ReLU()
            f[f"pool{i}"] = nn.MaxPool2d(4, stride=4)
        width = c
    side = image_size // 16  # 64 -> 16 -> 4
    head = OrderedDict(flatten=nn.Flatten())  # (N, 64, 4, 4) -> (N, 1024)
    width = 64 * side * side
    for i, h in enumerate((1021, 84), start=1):
        if improved:
            head[f"drop{i}"] = nn.Dropout(dropout)
        head[f"fc{i}"] = nn.Linear(width, h, bias=not improved)
        if improved:
            head[f"bn_fc{i}"] = nn.BatchNorm1d(h)
        head[f"relu_fc{i}"] = nn.ReLU()
        width = h
    head["fc3"] = nn.Linear(width, num_classes)
    return nn.Sequential(f), nn.Sequential(head)


def xavier_init(nn, model) -> None:
    """Xavier-uniform weights (gain for ReLU) and zero biases in every conv and linear layer;
    `nn` is tinygrad_edu.nn or torch.nn, so both frameworks initialise the same way."""
    gain = nn.init.calculate_gain("relu")
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.xavier_uniform_(m.weight, gain=gain)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


class LeNet5Code:
    """The body of LeNet5 and its twin; the subclass names its framework in `nn`."""

    nn = nn

    def __init__(self, num_classes: int = 101, in_channels: int = 3, image_size: int = 64,
                 improved: bool = False, dropout: float = 0.3):
        super().__init__()
        check_lenet_config(type(self).__name__, image_size)
        self.config = {"in_channels": in_channels, "num_classes": num_classes,
                       "image_size": image_size, "improved": improved, "dropout": dropout}
        self.features, self.classifier = lenet_layers(self.nn, **self.config)
        if improved:
            xavier_init(self.nn, self)

    def forward(self, x):
        return self.classifier(self.features(x))


class LeNet5(LeNet5Code, nn.Module):
    """LeNet-5 on (N, 3, 64, 64) images -> logits (N, num_classes); `improved=True` adds batch
    norm, dropout and Xavier initialisation around the same conv and FC layers.

        model = LeNet5()                       # or LeNet5(improved=True)
        logits = model(tg.randn(8, 3, 64, 64))  # (8, 101)
    """
