"""ResNet-18 as in "Deep Residual Learning for Image Recognition" (He et al. 2015, Table 1).

    conv1  7x7, 64, stride 2 - BN - ReLU - 3x3 max pool, stride 2
    conv2_x  2 basic blocks, 64      conv3_x  2 basic blocks, 128 (first one stride 2)
    conv4_x  2 basic blocks, 256 (first one stride 2)    conv5_x  2 basic blocks, 512 (ditto)
    global average pool - FC num_classes

A basic block is conv3x3-BN-ReLU-conv3x3-BN plus a shortcut, then ReLU; the first block of
conv3_x to conv5_x halves the size and projects the shortcut with a 1x1 conv (stride 2) and BN
(the paper's option B). The assignment's text asks for stride 2 in every conv of conv2_x; on a
64x64 input that leaves 64 -> 32 (conv1) -> 16 (pool) -> 1x1 after conv2_x and nothing for the
later stages, so this follows the paper: 64 -> 32 -> 16 -> 16 -> 8 -> 4 -> 2 -> 1 (pool).
Layer names follow torchvision's (layer1..layer4, blocks 0 and 1, conv1/bn1/conv2/bn2).
"""
from __future__ import annotations

from collections import OrderedDict

from tinygrad_edu import nn

STAGES = ((64, 1), (128, 2), (256, 2), (512, 2))  # (filters, stride of the first block)


class BasicBlockCode:
    """The body of a basic block in either framework; the subclass names it in `nn`."""

    nn = nn

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1):
        super().__init__()
        nn = self.nn
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        if stride != 1 or in_channels != out_channels:  # projection shortcut (option B)
            self.shortcut = nn.Sequential(OrderedDict(
                conv=nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                bn=nn.BatchNorm2d(out_channels)))
        else:
            self.shortcut = nn.Identity()
        self.relu2 = nn.ReLU()

    def forward(self, x):
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu2(out + self.shortcut(x))


class BasicBlock(BasicBlockCode, nn.Module):
    """Two 3x3 convs with a residual connection: (N, C_in, H, W) -> (N, C_out, H/s, W/s)."""


def resnet18_layers(nn, block, in_channels: int, num_classes: int):
    """(features, classifier) Sequentials built from `nn` (tinygrad_edu.nn or torch.nn) and its
    `block` class, with the same names in both frameworks."""
    f = OrderedDict()
    f["conv1"] = nn.Conv2d(in_channels, 64, 7, stride=2, padding=3, bias=False)
    f["bn1"] = nn.BatchNorm2d(64)
    f["relu"] = nn.ReLU()
    f["maxpool"] = nn.MaxPool2d(3, stride=2, padding=1)
    width = 64
    for i, (filters, stride) in enumerate(STAGES, start=1):
        f[f"layer{i}"] = nn.Sequential(block(width, filters, stride), block(filters, filters, 1))
        width = filters
    head = OrderedDict(avgpool=nn.AdaptiveAvgPool2d(1),  # (N, 512, h, w) -> (N, 512, 1, 1)
                       flatten=nn.Flatten(), fc=nn.Linear(width, num_classes))
    return nn.Sequential(f), nn.Sequential(head)


def kaiming_init(nn, model) -> None:
    """He-normal conv weights (fan_out, as torchvision's ResNet), BN weight 1 and bias 0."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


class ResNet18Code:
    """The body of ResNet18 and its twin; the subclass names its framework and block class."""

    nn, block = nn, BasicBlock

    def __init__(self, num_classes: int = 101, in_channels: int = 3):
        super().__init__()
        self.config = {"num_classes": num_classes, "in_channels": in_channels}
        self.features, self.classifier = resnet18_layers(self.nn, self.block, **self.config)
        kaiming_init(self.nn, self)

    def forward(self, x):
        return self.classifier(self.features(x))


class ResNet18(ResNet18Code, nn.Module):
    """ResNet-18 on (N, 3, H, W) images (H, W >= 32) -> logits (N, num_classes).

        model = ResNet18(num_classes=101)
        logits = model(tg.randn(8, 3, 64, 64))   # (8, 101)
    """
