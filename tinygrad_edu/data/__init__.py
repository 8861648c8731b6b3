"""Data: IDX files, MNIST / Fashion-MNIST, datasets, the DataLoader and image transforms.

    from tinygrad_edu.data import MNIST, DataLoader, transforms as T
    train = MNIST(train=True, transform=T.Compose([T.ToTensor(), T.Normalize((0.1307,), (0.3081,))]))
    for x, y in DataLoader(train, batch_size=32, shuffle=True):
        ...
"""
from . import transforms
from .dataloader import DataLoader
from .dataset import ArrayDataset, Dataset, Subset, TensorDataset, default_collate, random_split
from .errors import DataError
from .idx import read_idx, write_idx
from .mnist import MNIST, FashionMNIST, data_root
from .transforms import Compose, Normalize, RandomCrop, RandomHorizontalFlip, ToTensor, Transform

__all__ = [
    "MNIST",
    "ArrayDataset",
    "Compose",
    "DataError",
    "DataLoader",
    "Dataset",
    "FashionMNIST",
    "Normalize",
    "RandomCrop",
    "RandomHorizontalFlip",
    "Subset",
    "TensorDataset",
    "ToTensor",
    "Transform",
    "data_root",
    "default_collate",
    "random_split",
    "read_idx",
    "transforms",
    "write_idx",
]
