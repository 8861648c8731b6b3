"""PyTorch twins of the models, built by the same layer code, and weight transfer both ways.

Importing this module imports torch; `import models` does not (models/__init__.py imports this
file only when a twin is asked for).

    twin = to_torch(model)              # torch module holding a copy of model's weights
    model2 = from_torch(twin)           # and back
"""
from __future__ import annotations

from functools import partial

import numpy as np
import torch
from torch import nn

import tinygrad_edu.nn
from tinygrad_edu.tensor import Tensor

from .cnn import CNN2, CNN3, check_cnn_config, cnn_layers
from .lenet import LeNet5
from .mlp import MLP3, mlp_layers
from .resnet import ResNet18
from .twins_caltech import TorchLeNet5, TorchResNet18


class TorchMLP3(nn.Module):
    """The PyTorch twin of `models.MLP3`: same layers, names and defaults."""

    def __init__(self, in_features: int = 784, hidden: tuple[int, ...] = (256, 128),
                 num_classes: int = 10):
        super().__init__()
        self.config = {"in_features": in_features, "hidden": tuple(hidden),
                       "num_classes": num_classes}
        self.features, self.classifier = mlp_layers(nn, **self.config)

    def forward(self, x):
        return self.classifier(self.features(x))


class _TorchCNN(nn.Module):
    blocks: int  # how many conv blocks; each subclass sets it

    def __init__(self, channels: tuple[int, ...], kernel_size: int, num_classes: int, gap: bool,
                 in_channels: int, image_size: int):
        super().__init__()
        check_cnn_config(type(self).__name__, self.blocks, channels, kernel_size, image_size)
        self.config = {"channels": tuple(channels), "kernel_size": kernel_size,
                       "num_classes": num_classes, "gap": gap, "in_channels": in_channels,
                       "image_size": image_size}
        self.features, self.classifier = cnn_layers(nn, **self.config)

    def forward(self, x):
        return self.classifier(self.features(x))


class TorchCNN2(_TorchCNN):
    """The PyTorch twin of `models.CNN2`: same layers, names and defaults."""

    blocks = 2

    def __init__(self, channels: tuple[int, ...] = (32, 64), kernel_size: int = 3,
                 num_classes: int = 10, gap: bool = False, in_channels: int = 1,
                 image_size: int = 28):
        super().__init__(channels, kernel_size, num_classes, gap, in_channels, image_size)


class TorchCNN3(_TorchCNN):
    """The PyTorch twin of `models.CNN3`: same layers, names and defaults."""

    blocks = 3

    def __init__(self, channels: tuple[int, ...] = (16, 32, 64), kernel_size: int = 3,
                 num_classes: int = 10, gap: bool = False, in_channels: int = 1,
                 image_size: int = 28):
        super().__init__(channels, kernel_size, num_classes, gap, in_channels, image_size)


TORCH_MODELS = {
    "mlp3": TorchMLP3,
    "cnn2": TorchCNN2,
    "cnn3": TorchCNN3,
    "cnn2_gap": partial(TorchCNN2, gap=True),
    "cnn3_gap": partial(TorchCNN3, gap=True),
    "lenet5": TorchLeNet5,
    "lenet5_improved": partial(TorchLeNet5, improved=True),
    "resnet18": TorchResNet18,
}
TWIN_OF = {MLP3: TorchMLP3, CNN2: TorchCNN2, CNN3: TorchCNN3, LeNet5: TorchLeNet5,
           ResNet18: TorchResNet18}
ORIGINAL_OF = {twin: model for model, twin in TWIN_OF.items()}
_TORCH_DTYPES = {np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64}


def to_torch(model: tinygrad_edu.nn.Module) -> nn.Module:
    """The PyTorch twin of `model` with a copy of its weights, dtype and train/eval mode."""
    if type(model) not in TWIN_OF:
        raise TypeError(f"to_torch: no PyTorch twin for {type(model).__name__}; "
                        f"twins exist for {', '.join(c.__name__ for c in TWIN_OF)}")
    twin = TWIN_OF[type(model)](**model.config)
    twin.to(_TORCH_DTYPES[next(model.parameters()).dtype]).train(model.training)
    copy_weights(model, twin)
    return twin


def from_torch(module: nn.Module) -> tinygrad_edu.nn.Module:
    """The tinygrad_edu model twin of `module` with a copy of its weights, dtype and mode."""
    if type(module) not in ORIGINAL_OF:
        raise TypeError(f"from_torch: {type(module).__name__} is not a twin of a models/ network; "
                        f"expected one of {', '.join(c.__name__ for c in ORIGINAL_OF)}")
    model = ORIGINAL_OF[type(module)](**module.config)
    model.to(next(module.parameters()).detach().numpy().dtype).train(module.training)
    copy_weights(module, model)
    return model


def copy_weights(src, dst) -> None:
    """Copy every state_dict entry of `src` into the entry of the same name in `dst`; each is a
    tinygrad_edu or a torch module (either way round). Values are cast to dst's dtype."""
    state = {name: value.detach().numpy() for name, value in src.state_dict().items()}
    _check_same_layout(state, dst.state_dict(), type(src).__name__, type(dst).__name__)
    if isinstance(dst, nn.Module):
        dst.load_state_dict({name: torch.from_numpy(v) for name, v in state.items()})
    else:
        dst.load_state_dict({name: Tensor(v, dtype=v.dtype) for name, v in state.items()})


def _check_same_layout(state: dict, target: dict, src_name: str, dst_name: str) -> None:
    """Raise one ValueError naming every key that is missing, extra or differently shaped."""
    problems = [f"{k!r} only in {src_name}" for k in state if k not in target]
    problems += [f"{k!r} only in {dst_name}" for k in target if k not in state]
    problems += [f"{k!r} is {tuple(state[k].shape)} in {src_name} but "
                 f"{tuple(target[k].shape)} in {dst_name}"
                 for k in state if k in target and tuple(state[k].shape) != tuple(target[k].shape)]
    if problems:
        raise ValueError(f"copy_weights({src_name} -> {dst_name}): the architectures differ: "
                         + "; ".join(problems)
                         + ". Build both with the same configuration (model.config).")
