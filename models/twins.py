"""The PyTorch twin of every model and loss in models/, and weight transfer both ways.

One mechanism for all: each network's body is a `...Code` class whose layers come from its
class attribute `nn` (and, where a framework differs beyond layers, another class attribute:
ResNet's `block`, the loss's `as_target`). The tinygrad_edu class mixes it with
tinygrad_edu.nn.Module, the twin below with torch.nn.Module and `nn = torch.nn`: the same code
builds both, with the same names, shapes and initialisation rules. One registry: TWIN_OF maps
each tinygrad_edu class to its twin, and the twins of models.MODELS' names follow from it.

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

from .cnn import CNN2, CNN3, CNN2Code, CNN3Code
from .lenet import LeNet5, LeNet5Code
from .lines import (
    MultiHeadLoss,
    MultiHeadLossCode,
    MultiHeadNet,
    MultiHeadNetCode,
    SpecCNN,
    SpecCNNCode,
)
from .mlp import MLP3, MLP3Code
from .resnet import BasicBlockCode, ResNet18, ResNet18Code


class TorchMLP3(MLP3Code, nn.Module):
    """The PyTorch twin of `models.MLP3`."""

    nn = nn


class TorchCNN2(CNN2Code, nn.Module):
    """The PyTorch twin of `models.CNN2`."""

    nn = nn


class TorchCNN3(CNN3Code, nn.Module):
    """The PyTorch twin of `models.CNN3`."""

    nn = nn


class TorchLeNet5(LeNet5Code, nn.Module):
    """The PyTorch twin of `models.LeNet5`."""

    nn = nn


class TorchBasicBlock(BasicBlockCode, nn.Module):
    """The PyTorch twin of `models.resnet.BasicBlock`."""

    nn = nn


class TorchResNet18(ResNet18Code, nn.Module):
    """The PyTorch twin of `models.ResNet18`."""

    nn, block = nn, TorchBasicBlock


class TorchSpecCNN(SpecCNNCode, nn.Module):
    """The PyTorch twin of `models.lines.SpecCNN`."""

    nn = nn


class TorchMultiHeadNet(MultiHeadNetCode, nn.Module):
    """The PyTorch twin of `models.lines.MultiHeadNet`: returns the same dict of head logits."""

    nn = nn


def torch_target(array: np.ndarray, output: torch.Tensor) -> torch.Tensor:
    """A target array as torch's losses take it: bool in the output's float dtype, class
    indices as int64."""
    target = torch.from_numpy(np.ascontiguousarray(array))
    return target.to(output.dtype) if array.dtype == bool else target


class TorchMultiHeadLoss(MultiHeadLossCode, nn.Module):
    """The PyTorch twin of `models.lines.MultiHeadLoss`, on the twin's outputs."""

    nn, as_target = nn, staticmethod(torch_target)


TWIN_OF = {MLP3: TorchMLP3, CNN2: TorchCNN2, CNN3: TorchCNN3, LeNet5: TorchLeNet5,
           ResNet18: TorchResNet18, SpecCNN: TorchSpecCNN, MultiHeadNet: TorchMultiHeadNet,
           MultiHeadLoss: TorchMultiHeadLoss}
ORIGINAL_OF = {twin: model for model, twin in TWIN_OF.items()}
_TORCH_DTYPES = {np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64}


def twin_factory(entry):
    """The twin of a models.MODELS entry: its class's twin, with the same preset arguments."""
    if isinstance(entry, partial):
        return partial(TWIN_OF[entry.func], *entry.args, **entry.keywords)
    return TWIN_OF[entry]


def _dtype(module) -> np.dtype:
    """The dtype of a module's first parameter (float32 for a module without any)."""
    first = next(iter(module.parameters()), None)
    if first is None:
        return np.dtype(np.float32)
    return np.dtype(first.detach().numpy().dtype)


def to_torch(model: tinygrad_edu.nn.Module) -> nn.Module:
    """The PyTorch twin of `model` with a copy of its weights, dtype and train/eval mode."""
    if type(model) not in TWIN_OF:
        raise TypeError(f"to_torch: no PyTorch twin for {type(model).__name__}; "
                        f"twins exist for {', '.join(c.__name__ for c in TWIN_OF)}")
    twin = TWIN_OF[type(model)](**model.config)
    twin.to(_TORCH_DTYPES[_dtype(model)]).train(model.training)
    copy_weights(model, twin)
    return twin


def from_torch(module: nn.Module) -> tinygrad_edu.nn.Module:
    """The tinygrad_edu model twin of `module` with a copy of its weights, dtype and mode."""
    if type(module) not in ORIGINAL_OF:
        raise TypeError(f"from_torch: {type(module).__name__} is not a twin of a models/ network; "
                        f"expected one of {', '.join(c.__name__ for c in ORIGINAL_OF)}")
    model = ORIGINAL_OF[type(module)](**module.config)
    model.to(_dtype(module)).train(module.training)
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
