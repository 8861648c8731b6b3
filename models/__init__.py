"""The MNIST, line-dataset and Caltech-101 networks, built by name, and the PyTorch twin of each
of them and of the multi-head loss (same layer names, same weights; see models/twins.py).

    import models
    model = models.get_model("cnn3")               # or MLP3(), CNN2(gap=True), ...
    twin = models.to_torch(model)                  # needs torch; weights copied
    logits = model(tg.randn(32, 1, 28, 28))        # (32, 10)

Every model has `features` (conv1, relu1, pool1, ... or flatten, fc1, relu1, ...) and
`classifier` (..., fc) Sequentials and a `config` dict that rebuilds it: `type(m)(**m.config)`.
torch is imported only by the functions that need it, so `import models` works without torch.
"""
from __future__ import annotations

from functools import partial

from .cnn import CNN2, CNN3
from .lenet import LeNet5
from .lines import MultiHeadLoss, MultiHeadNet, SpecCNN
from .mlp import MLP3
from .resnet import ResNet18

MODELS = {
    "mlp3": MLP3,
    "cnn2": CNN2,
    "cnn3": CNN3,
    "cnn2_gap": partial(CNN2, gap=True),
    "cnn3_gap": partial(CNN3, gap=True),
    "spec_cnn": SpecCNN,  # the line-dataset networks (models/lines.py)
    "lines_cnn": partial(SpecCNN, in_channels=3, num_classes=96),
    "lines_multihead": MultiHeadNet,
    "lenet5": LeNet5,
    "lenet5_improved": partial(LeNet5, improved=True),
    "resnet18": ResNet18,
}


def _lookup(registry: dict, name: str, caller: str):
    if name not in registry:
        raise ValueError(f"{caller}: unknown model {name!r}; choose one of {', '.join(registry)}")
    return registry[name]


def get_model(name: str, **kwargs):
    """Build the tinygrad_edu model registered as `name` ('mlp3', 'cnn3_gap', ...); keyword
    arguments override its defaults, e.g. get_model('cnn3', channels=(8, 16, 32))."""
    return _lookup(MODELS, name, "get_model")(**kwargs)


def get_torch_model(name: str, **kwargs):
    """Build the PyTorch twin of the model registered as `name`, with fresh (PyTorch-initialised)
    weights."""
    from .twins import twin_factory
    return twin_factory(_lookup(MODELS, name, "get_torch_model"))(**kwargs)


def to_torch(model):
    """The PyTorch twin of a model or loss with a copy of its weights (see models.twins)."""
    from .twins import to_torch
    return to_torch(model)


def from_torch(module):
    """The tinygrad_edu model of a PyTorch twin with a copy of its weights."""
    from .twins import from_torch
    return from_torch(module)


def copy_weights(src, dst) -> None:
    """Copy weights by state_dict name between a model and its twin, either way round."""
    from .twins import copy_weights
    copy_weights(src, dst)


__all__ = ["CNN2", "CNN3", "MLP3", "MODELS", "LeNet5", "MultiHeadLoss", "MultiHeadNet",
           "ResNet18", "SpecCNN", "copy_weights", "from_torch", "get_model", "get_torch_model",
           "to_torch"]
