"""Data: IDX files, MNIST / Fashion-MNIST, image folders, datasets, DataLoader, transforms.

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
from .image_folder import ImageFolder, stratified_split
from .mnist import MNIST, FashionMNIST, data_root
from .transforms import (
    ColorJitter,
    Compose,
    Normalize,
    OneHot,
    RandomCrop,
    RandomHorizontalFlip,
    ToTensor,
    Transform,
)

__all__ = [
    "MNIST",
    "ArrayDataset",
    "ColorJitter",
    "Compose",
    "DataError",
    "DataLoader",
    "Dataset",
    "FashionMNIST",
    "ImageFolder",
    "Normalize",
    "OneHot",
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
    "stratified_split",
    "transforms",
    "write_idx",
]
