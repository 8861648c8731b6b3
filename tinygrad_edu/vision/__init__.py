"""`torchvision`'s face: a script's torchvision imports name `tinygrad_edu.vision` instead
(the module itself as `torchvision`, or its `datasets`, `transforms` and `utils`).

    from tinygrad_edu.vision import datasets, transforms
    train = datasets.MNIST("data", train=True, transform=transforms.ToTensor())
"""
from ..missing import module_getattr
from . import datasets, transforms, utils

__all__ = ["datasets", "transforms", "utils"]


__getattr__ = module_getattr(__name__)
