"""The line-dataset networks: the specified CNN and the multi-head attribute network.

SpecCNN is the network the exercise specifies (CS231n's "complex model"): a 7x7 convolution with
32 filters, stride 1 - ReLU - BatchNorm - 2x2 max pool, stride 2 - fully connected 1024 - ReLU -
output layer. Its options (kernel size, filters, depth, strided convolution instead of pooling,
dropout) make the variants that experiments/lines_variations.py tries.

MultiHeadNet has the same kind of feature network and four heads, one per line attribute:
length, width and colour with one sigmoid unit each (binary cross-entropy), angle with 12
softmax units (cross-entropy). It returns a dict of logits {head: (N, units)}.

    model = SpecCNN(in_channels=3, num_classes=96)          # logits (N, 96)
    model = MultiHeadNet()
    out = model(x)                                          # {'length': (N, 1), ..., 'angle': (N, 12)}
    loss = MultiHeadLoss()(out, y)                          # y (N, 4) attribute indices

The PyTorch twins are in models/twins.py (same layer code, names and weights):
models.to_torch(model), models.to_torch(MultiHeadLoss()).
"""
from __future__ import annotations

from collections import OrderedDict

import numpy as np

from tinygrad_edu import nn
from tinygrad_edu.data.lines import ATTRIBUTES
from tinygrad_edu.tensor import Tensor

DOWNSAMPLE = ("pool", "stride")
# units per head: one sigmoid unit for a two-valued attribute, a softmax over the others
HEADS = {name: 1 if len(values) == 2 else len(values) for name, values in ATTRIBUTES.items()}
LOSS_WEIGHTS = (1.0, 1.0, 1.0, 1.0)  # length, width, colour, angle


def _conv_size(size: int, kernel_size: int, stride: int, padding: int) -> int:
    return (size + 2 * padding - kernel_size) // stride + 1


def check_feature_config(name: str, config: dict) -> None:
    """Raise a ValueError naming the model if the feature network cannot be built."""
    if config["downsample"] not in DOWNSAMPLE:
        raise ValueError(f"{name}: downsample must be one of {DOWNSAMPLE}, got "
                         f"{config['downsample']!r}")
    if not config["channels"] or min(config["channels"]) < 1:
        raise ValueError(f"{name}: channels must be one or more positive filter counts, one per "
                         f"conv block, got {tuple(config['channels'])}")
    if not 0 <= config["dropout"] < 1:
        raise ValueError(f"{name}: dropout must be in [0, 1), got {config['dropout']}")
    size = config["image_size"]
    for i in range(len(config["channels"])):
        size = _block_size(size, config)
        if size < 1:
            raise ValueError(f"{name}: conv block {i + 1} shrinks a {config['image_size']}x"
                             f"{config['image_size']} image to nothing (kernel_size="
                             f"{config['kernel_size']}, padding={config['padding']}); use fewer "
                             f"blocks, a smaller kernel or more padding")


def _block_size(size: int, config: dict) -> int:
    """The side of a conv block's output: conv, then the 2x2 pool or the stride of 2."""
    stride = 2 if config["downsample"] == "stride" else 1
    size = _conv_size(size, config["kernel_size"], stride, config["padding"])
    return size // 2 if config["downsample"] == "pool" else size


def feature_layers(nn, in_channels: int, image_size: int, channels: tuple[int, ...],
                   kernel_size: int, padding: int, downsample: str, hidden: int,
                   dropout: float) -> tuple[OrderedDict, OrderedDict]:
    """(conv blocks, dense layers) as OrderedDicts of layers from `nn`, which is
    `tinygrad_edu.nn` or `torch.nn`: one definition makes a model and its PyTorch twin.

    Block i: conv{i} - relu{i} - bn{i} - pool{i} (or conv{i} with stride 2 and no pool);
    then flatten - fc1 (hidden units) - relu - [dropout].
    """
    config = {"image_size": image_size, "kernel_size": kernel_size, "padding": padding,
              "downsample": downsample}
    convs, width, size = OrderedDict(), in_channels, image_size
    stride = 2 if downsample == "stride" else 1
    for i, c in enumerate(channels, start=1):
        convs[f"conv{i}"] = nn.Conv2d(width, c, kernel_size, stride=stride, padding=padding)
        convs[f"relu{i}"] = nn.ReLU()
        convs[f"bn{i}"] = nn.BatchNorm2d(c)
        if downsample == "pool":
            convs[f"pool{i}"] = nn.MaxPool2d(2, stride=2)
        width, size = c, _block_size(size, config)  # 28 -> 22 -> 11 for the specified CNN
    dense = OrderedDict(flatten=nn.Flatten(), fc1=nn.Linear(width * size * size, hidden),
                        relu=nn.ReLU())
    if dropout > 0:
        dense["dropout"] = nn.Dropout(dropout)
    return convs, dense


def spec_cnn_layers(nn, num_classes: int, **features):
    """(features, classifier) Sequentials of SpecCNN, built from `nn` (see feature_layers)."""
    convs, dense = feature_layers(nn, **features)
    dense["fc"] = nn.Linear(features["hidden"], num_classes)
    return nn.Sequential(convs), nn.Sequential(dense)


def multihead_layers(nn, **features):
    """(features, heads) of MultiHeadNet: one Sequential, and a ModuleDict of Linear heads."""
    convs, dense = feature_layers(nn, **features)
    heads = nn.ModuleDict({name: nn.Linear(features["hidden"], units)
                           for name, units in HEADS.items()})
    return nn.Sequential(OrderedDict(list(convs.items()) + list(dense.items()))), heads


def feature_config(name: str, in_channels: int, image_size: int, channels, kernel_size: int,
                   padding: int, downsample: str, hidden: int, dropout: float) -> dict:
    """The feature network's options as a checked dict (channels as a tuple)."""
    config = {"in_channels": in_channels, "image_size": image_size, "channels": tuple(channels),
              "kernel_size": kernel_size, "padding": padding, "downsample": downsample,
              "hidden": hidden, "dropout": dropout}
    check_feature_config(name, config)
    return config


class SpecCNNCode:
    """The body of SpecCNN and its twin; the subclass names its framework in `nn`."""

    nn = nn

    def __init__(self, in_channels: int = 1, num_classes: int = 10, image_size: int = 28,
                 channels: tuple[int, ...] = (32,), kernel_size: int = 7, padding: int = 0,
                 downsample: str = "pool", hidden: int = 1024, dropout: float = 0.0):
        super().__init__()
        self.config = feature_config(type(self).__name__, in_channels, image_size, channels,
                                     kernel_size, padding, downsample, hidden, dropout)
        self.config["num_classes"] = num_classes
        self.features, self.classifier = spec_cnn_layers(self.nn, **self.config)

    def forward(self, x):
        return self.classifier(self.features(x))


class SpecCNN(SpecCNNCode, nn.Module):
    """The specified CNN: [conv 7x7/32 - ReLU - BatchNorm - max pool 2x2] - fc 1024 - ReLU - fc.

    Input (N, in_channels, 28, 28), output logits (N, num_classes). channels gives one conv
    block per entry; downsample="stride" replaces each pool by a stride-2 convolution.

        model = SpecCNN()                                   # MNIST: (N, 1, 28, 28) -> (N, 10)
        model = SpecCNN(in_channels=3, num_classes=96)      # the line dataset
    """


class MultiHeadNetCode:
    """The body of MultiHeadNet and its twin; the subclass names its framework in `nn`."""

    nn = nn

    def __init__(self, in_channels: int = 3, image_size: int = 28,
                 channels: tuple[int, ...] = (32,), kernel_size: int = 7, padding: int = 0,
                 downsample: str = "pool", hidden: int = 1024, dropout: float = 0.0):
        super().__init__()
        self.config = feature_config(type(self).__name__, in_channels, image_size, channels,
                                     kernel_size, padding, downsample, hidden, dropout)
        self.features, self.heads = multihead_layers(self.nn, **self.config)

    def forward(self, x) -> dict:
        z = self.features(x)  # (N, hidden)
        return {name: head(z) for name, head in self.heads.items()}


class MultiHeadNet(MultiHeadNetCode, nn.Module):
    """A feature network (as SpecCNN's, without its output layer) and four heads.

    Input (N, 3, 28, 28); output {'length': (N, 1), 'width': (N, 1), 'colour': (N, 1),
    'angle': (N, 12)} logits. Train with `multihead_loss`; read predictions with
    `predict_attributes`.

        model = MultiHeadNet()
        out = model(x)
    """


# ---- loss and predictions --------------------------------------------------------------------

def _numpy(t) -> np.ndarray:
    """The values of a tinygrad_edu Tensor, a torch tensor or an array-like."""
    if isinstance(t, Tensor):
        return t.array
    if hasattr(t, "detach"):  # torch
        return t.detach().cpu().numpy()
    return np.asarray(t)


def _targets(targets, num_heads: int) -> np.ndarray:
    """(N, 4) attribute indices from a Tensor or array, checked."""
    y = _numpy(targets)
    if y.ndim != 2 or y.shape[1] != num_heads or y.dtype.kind not in "iu":
        raise ValueError(f"multihead_loss: expected targets (N, {num_heads}) of attribute "
                         f"indices [length, width, colour, angle], got {y.shape} {y.dtype}; load "
                         f"the data with LineDataset(target_type='attributes')")
    return y


def scratch_target(array: np.ndarray, output):
    """A target array as tinygrad_edu's losses take it: bool in the output's float dtype,
    class indices as they are."""
    return array.astype(output.array.dtype) if array.dtype == bool else array


class MultiHeadLossCode:
    """The body of MultiHeadLoss and its twin: `nn` names the framework, and
    `as_target(array, output)` turns a target array (bool for a one-unit head, int64 class
    indices otherwise) into what that framework's losses take."""

    nn = nn
    as_target = staticmethod(scratch_target)

    def __init__(self, weights: tuple[float, ...] = LOSS_WEIGHTS):
        super().__init__()
        if len(weights) != len(HEADS):
            raise ValueError(f"multihead_loss: expected {len(HEADS)} weights (length, width, "
                             f"colour, angle), got {tuple(weights)}")
        self.config = {"weights": tuple(float(w) for w in weights)}
        self.bce, self.ce = self.nn.BCEWithLogitsLoss(), self.nn.CrossEntropyLoss()

    def head_losses(self, outputs: dict, targets) -> dict:
        """The loss of each head: binary cross-entropy (on logits) for the one-unit heads,
        cross-entropy for the others."""
        y = _targets(targets, len(HEADS))
        losses = {}
        for k, (name, units) in enumerate(HEADS.items()):
            out = outputs[name]
            if units == 1:  # (N, 1) target, 1 for the attribute's second value
                losses[name] = self.bce(out, self.as_target(y[:, k:k + 1] == 1, out))
            else:
                losses[name] = self.ce(out, self.as_target(y[:, k].astype(np.int64), out))
        return losses

    def forward(self, outputs: dict, targets):
        """The weighted sum of the four head losses (a scalar tensor)."""
        losses = self.head_losses(outputs, targets)
        return sum(w * loss for w, loss in zip(self.config["weights"], losses.values()))


class MultiHeadLoss(MultiHeadLossCode, nn.Module):
    """What MultiHeadNet minimises: a weighted sum of its four head losses.

        loss_fn = MultiHeadLoss(weights=(1, 1, 1, 2))
        loss = loss_fn(model(x), y)                 # y (N, 4) attribute indices
    """


def head_losses(outputs: dict, targets) -> dict:
    """MultiHeadLoss().head_losses: the loss of each head."""
    return MultiHeadLoss().head_losses(outputs, targets)


def multihead_loss(outputs: dict, targets, weights=LOSS_WEIGHTS):
    """MultiHeadLoss(weights)(outputs, targets): what the network minimises."""
    return MultiHeadLoss(weights)(outputs, targets)


def predict_attributes(outputs: dict) -> np.ndarray:
    """(N, 4) predicted attribute indices from the heads' logits (tensors or arrays): a sigmoid
    unit says 1 when its logit is positive, a softmax head its largest logit."""
    columns = []
    for name, units in HEADS.items():
        logits = _numpy(outputs[name])
        columns.append((logits[:, 0] > 0).astype(np.int64) if units == 1 else logits.argmax(1))
    return np.stack(columns, axis=1)
