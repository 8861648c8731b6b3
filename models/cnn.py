"""CNN2 and CNN3: [Conv-ReLU-MaxPool] blocks then a linear classifier, for 28x28 MNIST digits.

With `gap=True` the head is global average pooling then one Linear, so the classifier weights
turn the last feature maps into Class Activation Maps (CAM, Zhou et al. 2016).
"""
from __future__ import annotations

from collections import OrderedDict

from tinygrad_edu import nn


def check_cnn_config(name: str, blocks: int, channels: tuple[int, ...], kernel_size: int,
                     image_size: int) -> None:
    """Raise a ValueError naming the model if the configuration cannot work."""
    if len(channels) != blocks:
        raise ValueError(f"{name}: expected {blocks} channel counts, one per conv block, "
                         f"got channels={tuple(channels)}")
    if kernel_size % 2 == 0:
        raise ValueError(f"{name}: kernel_size must be odd so that padding={kernel_size // 2} "
                         f"keeps the image size, got {kernel_size}")
    if image_size >> blocks < 1:
        raise ValueError(f"{name}: {blocks} poolings by 2 shrink a {image_size}x{image_size} "
                         f"image to nothing; use a larger image_size")


def cnn_layers(nn, in_channels: int, channels: tuple[int, ...], kernel_size: int,
               num_classes: int, gap: bool, image_size: int):
    """(features, classifier) Sequentials built from `nn`, which is `tinygrad_edu.nn` or
    `torch.nn`: one definition makes the model and its PyTorch twin, with the same names."""
    layers = OrderedDict()
    width, size = in_channels, image_size
    for i, c in enumerate(channels, start=1):
        layers[f"conv{i}"] = nn.Conv2d(width, c, kernel_size, padding=kernel_size // 2)
        layers[f"relu{i}"] = nn.ReLU()
        layers[f"pool{i}"] = nn.MaxPool2d(2)
        width, size = c, size // 2  # 28 -> 14 -> 7 -> 3
    head = OrderedDict()
    if gap:
        head["gap"] = nn.AdaptiveAvgPool2d(1)  # (N, C, H, W) -> (N, C, 1, 1)
    head["flatten"] = nn.Flatten()
    head["fc"] = nn.Linear(width if gap else width * size * size, num_classes)
    return nn.Sequential(layers), nn.Sequential(head)


class CNNCode:
    """The body of CNN2, CNN3 and their twins: `features` (conv1, relu1, pool1, conv2, ...)
    then `classifier` ([gap,] flatten, fc); the subclass names its framework in `nn`."""

    nn = nn
    blocks: int  # how many conv blocks; CNN2Code and CNN3Code set it

    def __init__(self, channels: tuple[int, ...], kernel_size: int, num_classes: int, gap: bool,
                 in_channels: int, image_size: int):
        super().__init__()
        check_cnn_config(type(self).__name__, self.blocks, channels, kernel_size, image_size)
        self.config = {"channels": tuple(channels), "kernel_size": kernel_size,
                       "num_classes": num_classes, "gap": gap, "in_channels": in_channels,
                       "image_size": image_size}
        self.features, self.classifier = cnn_layers(self.nn, **self.config)

    def forward(self, x):
        return self.classifier(self.features(x))


class CNN2Code(CNNCode):
    """CNN2's blocks and defaults, in either framework."""

    blocks = 2

    def __init__(self, channels: tuple[int, ...] = (32, 64), kernel_size: int = 3,
                 num_classes: int = 10, gap: bool = False, in_channels: int = 1,
                 image_size: int = 28):
        super().__init__(channels, kernel_size, num_classes, gap, in_channels, image_size)


class CNN3Code(CNNCode):
    """CNN3's blocks and defaults, in either framework."""

    blocks = 3

    def __init__(self, channels: tuple[int, ...] = (16, 32, 64), kernel_size: int = 3,
                 num_classes: int = 10, gap: bool = False, in_channels: int = 1,
                 image_size: int = 28):
        super().__init__(channels, kernel_size, num_classes, gap, in_channels, image_size)


class CNN2(CNN2Code, nn.Module):
    """Two conv blocks (28 -> 14 -> 7); input (N, 1, 28, 28), output logits (N, num_classes).

        model = CNN2()             # or CNN2(gap=True) for Class Activation Maps
        logits = model(tg.randn(32, 1, 28, 28))   # (32, 10)
    """


class CNN3(CNN3Code, nn.Module):
    """Three conv blocks (28 -> 14 -> 7 -> 3); input (N, 1, 28, 28), output (N, num_classes).

        model = CNN3()             # or CNN3(gap=True) for Class Activation Maps
        logits = model(tg.randn(32, 1, 28, 28))   # (32, 10)
    """
