"""PyTorch twins of the line-dataset networks, built by the same layer code as models/lines.py.

Importing this module imports torch (models/lines.py does not, so `import models` stays light).
Weights move between a model and its twin with `models.copy_weights`:

    twin = TorchMultiHeadNet(**model.config)
    models.copy_weights(model, twin)
    loss = torch_multihead_loss(twin(x), y)
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .lines import (
    LOSS_WEIGHTS,
    MultiHeadNet,
    MultiHeadNetCode,
    SpecCNN,
    SpecCNNCode,
    multihead_loss,
)


class TorchSpecCNN(SpecCNNCode, nn.Module):
    """The PyTorch twin of `models.lines.SpecCNN`: same layers, names and defaults."""

    nn = nn


class TorchMultiHeadNet(MultiHeadNetCode, nn.Module):
    """The PyTorch twin of `models.lines.MultiHeadNet`: returns the same dict of head logits."""

    nn = nn


def _torch_target(array: np.ndarray, output: torch.Tensor) -> torch.Tensor:
    """Bool targets in the output's float dtype; class indices as int64."""
    target = torch.from_numpy(np.ascontiguousarray(array))
    return target.to(output.dtype) if array.dtype == bool else target


def torch_multihead_loss(outputs: dict, targets, weights=LOSS_WEIGHTS) -> torch.Tensor:
    """`models.lines.multihead_loss` computed by torch on the twin's outputs."""
    return multihead_loss(outputs, targets, weights, F=nn.functional, as_target=_torch_target)


TWIN_OF = {SpecCNN: TorchSpecCNN, MultiHeadNet: TorchMultiHeadNet}
