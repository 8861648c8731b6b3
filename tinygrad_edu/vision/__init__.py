"""`torchvision`'s face: `import torchvision` -> `import tinygrad_edu.vision as torchvision`,
`from torchvision import datasets, transforms, utils` -> `from tinygrad_edu.vision import ...`.

    from tinygrad_edu.vision import datasets, transforms
    train = datasets.MNIST("data", train=True, transform=transforms.ToTensor())
"""
from ..missing import missing as _missing
from . import datasets, transforms, utils

__all__ = ["datasets", "transforms", "utils"]


def __getattr__(name: str):
    """A torchvision name tinygrad_edu lacks: an AttributeError that says what to do instead."""
    raise _missing(__name__, name)
