"""`torchvision.datasets`' face: MNIST, FashionMNIST and ImageFolder as torchvision has them.

`.data` and `.targets` are Tensors; `ds[i]` is (image, label) with the image a Tensor after
ToTensor; a transform gets a PIL image, as in torchvision, unless it starts with ToTensor() and
holds only tinygrad_edu transforms: then the deterministic front (ToTensor, Normalize) is applied
to the whole array once and batches are transformed in one vectorised call (same values).
MNIST files are looked for in `root` (torchvision's layout root/MNIST/raw), then in tinygrad_edu's
data cache, before `download` fetches them into `root`.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from ..data import mnist
from ..data.dataset import Dataset
from ..data.errors import DataError
from ..data.image_folder import scan_folder
from ..missing import module_getattr
from ..tensor import Tensor

__all__ = ["MNIST", "FashionMNIST", "ImageFolder"]


class _TorchvisionArrays:
    """What MNIST-like datasets show torchvision users: Tensors, and PIL images into transforms."""

    @property
    def data(self) -> Tensor:
        return Tensor._wrap(super().data)

    @data.setter
    def data(self, value) -> None:
        mnist.MNIST.data.fset(self, np.asarray(value))

    @property
    def targets(self) -> Tensor:
        return Tensor._wrap(super().targets)

    @targets.setter
    def targets(self, value) -> None:
        mnist.MNIST.targets.fset(self, np.asarray(value))

    @property
    def class_to_idx(self) -> dict[str, int]:
        return {c: i for i, c in enumerate(self.classes)}

    def __getitem__(self, index: int) -> tuple:
        inputs, rest, prepared = self.split_transform()
        if prepared:  # the ToTensor (+ Normalize) front was applied to all images at once
            x = Tensor._wrap(inputs[int(index)])
        else:
            x, rest = Image.fromarray(inputs[int(index)]), self.transform
        if rest is not None:
            x = rest(x)
        y = int(super().targets[int(index)])
        if self.target_transform is not None:
            y = self.target_transform(y)
        return x, y

    def get_batch(self, indices: np.ndarray):
        """Vectorised when the transform allows it (see the module docstring), else per item;
        without a transform a batch is the uint8 images (torch's collate would refuse PIL
        images)."""
        if self.split_transform()[2] or self.transform is None:
            return super().get_batch(indices)
        return Dataset.get_batch(self, indices)

    def _load(self, root, train: bool, download: bool, **transforms) -> None:
        """Read the split from `root`, else from tinygrad_edu's data cache, else download it
        into `root` (when `download`)."""
        try:
            super().__init__(root, train=train, download=False, **transforms)
        except DataError:
            try:
                super().__init__(None, train=train, download=False, **transforms)
            except DataError:
                super().__init__(root, train=train, download=download, **transforms)


class MNIST(_TorchvisionArrays, mnist.MNIST):
    """torchvision.datasets.MNIST(root, train=True, transform=None, target_transform=None,
    download=False)."""

    def __init__(self, root: str | os.PathLike, train: bool = True,
                 transform: Callable | None = None, target_transform: Callable | None = None,
                 download: bool = False):
        self._load(root, train, download, transform=transform, target_transform=target_transform)


class FashionMNIST(_TorchvisionArrays, mnist.FashionMNIST):
    """torchvision.datasets.FashionMNIST(root, train=True, transform=None, ...)."""

    def __init__(self, root: str | os.PathLike, train: bool = True,
                 transform: Callable | None = None, target_transform: Callable | None = None,
                 download: bool = False):
        self._load(root, train, download, transform=transform, target_transform=target_transform)


class ImageFolder(Dataset):
    """torchvision.datasets.ImageFolder: images in root/<class>/<file>, opened one by one with
    Pillow (as RGB) when indexed, at their own size; resize them in `transform`.

    Attributes: classes, class_to_idx, samples / imgs [(path, index)], targets [index].
    Unlike tinygrad_edu.data.ImageFolder nothing is decoded ahead or cached, so the
    DataLoader's `num_workers` processes share the decoding.
    """

    def __init__(self, root: str | os.PathLike, transform: Callable | None = None,
                 target_transform: Callable | None = None, loader: Callable | None = None,
                 is_valid_file: Callable | None = None, allow_empty: bool = False):
        self.root = Path(root).expanduser()
        self.classes, files = scan_folder(self.root, set())
        self.class_to_idx = {c: i for i, c in enumerate(self.classes)}
        self.samples = [(str(self.root / p), t) for p, t in files
                        if is_valid_file is None or is_valid_file(str(self.root / p))]
        if not self.samples and not allow_empty:
            raise DataError(f"ImageFolder: found no valid image files in {self.root}")
        self.imgs, self.targets = self.samples, [t for _, t in self.samples]
        self.transform, self.target_transform = transform, target_transform
        self.loader = loader or pil_loader

    def __getitem__(self, index: int) -> tuple:
        path, target = self.samples[index]
        x = self.loader(path)
        if self.transform is not None:
            x = self.transform(x)
        if self.target_transform is not None:
            target = self.target_transform(target)
        return x, target

    def __len__(self) -> int:
        return len(self.samples)


def pil_loader(path: str) -> Image.Image:
    """Open an image file as an RGB PIL image (torchvision's default loader)."""
    with open(path, "rb") as f:
        return Image.open(f).convert("RGB")


__getattr__ = module_getattr(__name__)
