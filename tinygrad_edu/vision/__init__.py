"""`torchvision`'s face: `import torchvision` -> `import tinygrad_edu.vision as torchvision`,
`from torchvision import datasets, transforms, utils` -> `from tinygrad_edu.vision import ...`.

    from tinygrad_edu.vision import datasets, transforms
    train = datasets.MNIST("data", train=True, transform=transforms.ToTensor())
"""
from ..missing import module_getattr
from . import datasets, transforms, utils

__all__ = ["datasets", "transforms", "utils"]


__getattr__ = module_getattr(__name__)
