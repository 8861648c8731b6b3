"""PyTorch twins of LeNet5 and ResNet18: the same code as models/lenet.py and models/resnet.py,
built with torch.nn, so layer names, shapes and initialisation rules match. Imports torch."""
from __future__ import annotations

from torch import nn

from .lenet import LeNet5Code
from .resnet import BasicBlockCode, ResNet18Code


class TorchLeNet5(LeNet5Code, nn.Module):
    """The PyTorch twin of `models.LeNet5`: same layers, names and defaults."""

    nn = nn


class TorchBasicBlock(BasicBlockCode, nn.Module):
    """The PyTorch twin of `models.resnet.BasicBlock`."""

    nn = nn


class TorchResNet18(ResNet18Code, nn.Module):
    """The PyTorch twin of `models.ResNet18`: same layers, names and defaults."""

    nn, block = nn, TorchBasicBlock
