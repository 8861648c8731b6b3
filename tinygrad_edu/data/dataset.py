"""Datasets like torch.utils.data's: Dataset, TensorDataset, Subset, random_split, ArrayDataset.

A dataset maps an index to a sample, `ds[i] -> (x, y)`, and has a length. Datasets held as whole
arrays also answer `get_batch(indices)` by fancy indexing, so the DataLoader can skip per-item
Python calls; the default `get_batch` collates items one by one.
"""
from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from ..generator import Generator, rng_of
from ..tensor import Tensor
from .transforms import can_batch, split_static


class Dataset:
    """Base class: subclasses define `__getitem__(i)` and `__len__()`."""

    def __getitem__(self, index: int):
        raise NotImplementedError(f"{type(self).__name__} must define __getitem__")

    def __len__(self) -> int:
        raise NotImplementedError(f"{type(self).__name__} must define __len__")

    def get_batch(self, indices: np.ndarray) -> tuple[np.ndarray, ...]:
        """The samples at `indices`, stacked field by field: one array per field."""
        return default_collate([self[int(i)] for i in indices])


class IterableDataset(Dataset):
    """A stream of samples: subclasses define `__iter__` (and may define `__len__`). The
    DataLoader batches consecutive samples; there is no shuffling or sampler for a stream."""

    def __iter__(self):
        raise NotImplementedError(f"{type(self).__name__} must define __iter__")

    def __getitem__(self, index: int):
        raise TypeError(f"{type(self).__name__} is an IterableDataset: iterate over it")


def default_collate(samples: Sequence):
    """[(x0, y0), (x1, y1), ...] -> (stack of x, stack of y); single values (arrays, Tensors,
    numbers) -> one stacked array; dicts field by field; strings -> a list of strings."""
    first = samples[0]
    if isinstance(first, Mapping):
        return {key: default_collate([s[key] for s in samples]) for key in first}
    if isinstance(first, (tuple, list)):
        return tuple(default_collate(field) for field in zip(*samples))
    if isinstance(first, str):
        return list(samples)
    return np.stack([np.asarray(s) for s in samples])


class TensorDataset(Dataset):
    """Samples are the i-th rows of equally long arrays (or Tensors): `ds[i] -> (a[i], b[i])`.

        ds = TensorDataset(x, y)      # x (N, ...), y (N,)
    """

    def __init__(self, *tensors):
        if not tensors:
            raise ValueError("TensorDataset: give at least one array")
        self.arrays = tuple(np.asarray(t) for t in tensors)   # Tensors give their .data
        lengths = [len(t) for t in self.arrays]
        if len(set(lengths)) != 1:
            raise ValueError(f"TensorDataset: all arrays need the same first dimension, got "
                             f"shapes {[t.shape for t in self.arrays]}")

    @property
    def tensors(self) -> tuple:
        """The data as Tensors sharing memory with the arrays, like torch's `.tensors`."""
        return tuple(Tensor._wrap(a) for a in self.arrays)

    def __getitem__(self, index: int) -> tuple:
        return tuple(t[index] for t in self.arrays)

    def __len__(self) -> int:
        return len(self.arrays[0])

    def get_batch(self, indices: np.ndarray) -> tuple[np.ndarray, ...]:
        return tuple(t[indices] for t in self.arrays)


class ArrayDataset(Dataset):
    """Images and targets held as whole arrays, with torchvision-style transforms.

    `data` (N, ...) and `targets` (N,) are kept as given. Deterministic transforms at the front
    of `transform` (ToTensor, Normalize) are applied to the whole array once; random ones run on
    each access, vectorised over the batch in `get_batch`. Assigning `data`, `transform` or
    `target_transform` later (`train_set.transform = augment`, as torch scripts do) takes effect.
    """

    def __init__(self, data: np.ndarray, targets: np.ndarray, transform: Callable | None = None,
                 target_transform: Callable | None = None):
        if len(data) != len(targets):
            raise ValueError(f"{type(self).__name__}: {len(data)} images but {len(targets)} "
                             "targets")
        self._arrays = [np.asarray(data), np.asarray(targets)]
        self._transforms = [transform, target_transform]
        self._prepare()

    def _prepare(self) -> None:
        """Apply the deterministic front of the transform to all the data, once."""
        static, self._dynamic = split_static(self._transforms[0])
        data = self._arrays[0]
        self._inputs = _in_chunks(static, data) if static is not None and len(data) else data
        self._fast = can_batch(self._dynamic) and can_batch(self._transforms[1])

    def split_transform(self) -> tuple[np.ndarray, Callable | None, bool]:
        """(the inputs after the deterministic front of the transform, the rest of the transform,
        whether there was such a front): what __getitem__ and get_batch start from."""
        return self._inputs, self._dynamic, self._inputs is not self._arrays[0]

    @property
    def data(self) -> np.ndarray:
        return self._arrays[0]

    @data.setter
    def data(self, value) -> None:
        self._arrays[0] = np.asarray(value)
        self._prepare()

    @property
    def targets(self) -> np.ndarray:
        return self._arrays[1]

    @targets.setter
    def targets(self, value) -> None:
        self._arrays[1] = np.asarray(value)

    @property
    def transform(self) -> Callable | None:
        return self._transforms[0]

    @transform.setter
    def transform(self, value: Callable | None) -> None:
        self._transforms[0] = value
        self._prepare()

    @property
    def target_transform(self) -> Callable | None:
        return self._transforms[1]

    @target_transform.setter
    def target_transform(self, value: Callable | None) -> None:
        self._transforms[1] = value
        self._prepare()

    def __getitem__(self, index: int) -> tuple:
        x, y = self._inputs[index], self._arrays[1][index].item()
        if self._dynamic is not None:
            x = self._dynamic(x)
        if self._transforms[1] is not None:
            y = self._transforms[1](y)
        return x, y

    def __len__(self) -> int:
        return len(self._arrays[0])

    def get_batch(self, indices: np.ndarray) -> tuple[np.ndarray, ...]:
        if not self._fast:
            return super().get_batch(indices)
        x, y = self._inputs[indices], self._arrays[1][indices]
        if self._dynamic is not None:
            x = self._dynamic.batch(x)
        if self._transforms[1] is not None:
            y = self._transforms[1].batch(y)
        return x, y


class ConcatDataset(Dataset):
    """The samples of several datasets one after the other."""

    def __init__(self, datasets: Sequence):
        self.datasets = list(datasets)
        self.cumulative_sizes = np.cumsum([len(d) for d in self.datasets]).tolist()

    def __getitem__(self, index: int):
        if index < 0:
            index += len(self)
        part = int(np.searchsorted(self.cumulative_sizes, index, side="right"))
        start = self.cumulative_sizes[part - 1] if part else 0
        return self.datasets[part][index - start]

    def __len__(self) -> int:
        return self.cumulative_sizes[-1] if self.cumulative_sizes else 0


class Subset(Dataset):
    """The samples of `dataset` at `indices`, in that order."""

    def __init__(self, dataset, indices: Sequence[int]):
        self.dataset = dataset
        self.indices = np.asarray(indices, dtype=np.int64)

    def __getitem__(self, index: int):
        return self.dataset[int(self.indices[index])]

    def __len__(self) -> int:
        return len(self.indices)

    def get_batch(self, indices: np.ndarray) -> tuple[np.ndarray, ...]:
        inner = getattr(self.dataset, "get_batch", None)
        if inner is None:
            return super().get_batch(indices)
        return inner(self.indices[indices])


def random_split(dataset, lengths: Sequence[int | float], generator: Generator | None = None,
                 seed: int | None = None) -> list[Subset]:
    """Split into non-overlapping random Subsets of the given sizes, like `torch.utils.data`'s.

    `lengths` are counts summing to len(dataset), or fractions summing to 1 (the remainder of
    rounding down goes one by one to the first parts). The order is drawn from `seed`, else
    from `generator`, else from the global generator.

        train, val = random_split(ds, [0.9, 0.1], generator=tg.Generator().manual_seed(0))
    """
    n = len(dataset)
    counts = _split_counts(n, lengths)
    rng = np.random.default_rng(seed) if seed is not None else rng_of(generator)
    order = rng.permutation(n)
    bounds = np.cumsum([0] + counts)
    return [Subset(dataset, order[a:b]) for a, b in itertools.pairwise(bounds)]


def _split_counts(n: int, lengths: Sequence[int | float]) -> list[int]:
    """Counts from counts or fractions, checked against the data set's size `n`."""
    if all(isinstance(x, (int, np.integer)) for x in lengths):
        counts = [int(x) for x in lengths]
    elif math.isclose(sum(lengths), 1.0, abs_tol=1e-6) and all(0 <= x <= 1 for x in lengths):
        counts = [math.floor(n * x) for x in lengths]
        for k in range(n - sum(counts)):
            counts[k % len(counts)] += 1
    else:
        raise ValueError(f"random_split: lengths must be counts summing to {n} or fractions "
                         f"summing to 1, got {list(lengths)}")
    if sum(counts) != n or min(counts) < 0:
        raise ValueError(f"random_split: lengths {list(lengths)} sum to {sum(counts)}, but the "
                         f"dataset has {n} samples")
    return counts


def _in_chunks(transform, data: np.ndarray, chunk: int = 2048) -> np.ndarray:
    """`transform.batch(data)` a chunk at a time into one output array: the temporaries stay
    small, so a 60000-image data set costs one big allocation instead of one per step."""
    first = transform.batch(data[:chunk])
    out = np.empty((len(data),) + first.shape[1:], first.dtype)
    out[:len(first)] = first
    for start in range(chunk, len(data), chunk):
        out[start:start + chunk] = transform.batch(data[start:start + chunk])
    return out
