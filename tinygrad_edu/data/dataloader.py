"""DataLoader: iterate over a dataset in (shuffled) batches of Tensors, like torch's.

When the dataset holds whole arrays (`get_batch`: TensorDataset, MNIST, ArrayDataset and
Subsets of them) a batch is one fancy-indexing call per field instead of one Python call per item.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np

from ..random import get_rng
from ..tensor import Tensor
from .dataset import default_collate


class DataLoader:
    """Batches of `dataset`: floating fields become float Tensors, integer fields int64 Tensors.

    `shuffle` draws a new order every epoch from `seed` (a private generator, so the sequence of
    epochs is repeatable; `state_dict()` holds its state) or, when `seed` is None, from
    `tinygrad_edu.random.get_rng()`.
    A `collate_fn` receives the list of samples and its result is yielded as it is.

        loader = DataLoader(train_set, batch_size=32, shuffle=True, seed=0)
        for x, y in loader:      # x (32, 1, 28, 28) float32, y (32,) int64
            ...
    """

    def __init__(self, dataset, batch_size: int = 1, shuffle: bool = False, drop_last: bool = False,
                 seed: int | None = None, collate_fn: Callable | None = None):
        if int(batch_size) != batch_size or batch_size < 1:
            raise ValueError(f"DataLoader: batch_size must be a positive integer, got {batch_size}")
        self.dataset = dataset
        self.batch_size = int(batch_size)
        self.shuffle, self.drop_last = shuffle, drop_last
        self.collate_fn = collate_fn
        self._rng = np.random.default_rng(seed) if seed is not None else None

    def __len__(self) -> int:
        n, b = len(self.dataset), self.batch_size
        return n // b if self.drop_last else -(-n // b)

    def __iter__(self) -> Iterator:
        n = len(self.dataset)
        order = self._order(n)
        for start in range(0, len(self) * self.batch_size, self.batch_size):
            yield self._batch(order[start:start + self.batch_size])

    def state_dict(self) -> dict:
        """The private shuffle generator's state (empty without `seed`): `tg.train.fit` saves it
        in its checkpoints, so that a resumed run shuffles as the uninterrupted one would."""
        return {} if self._rng is None else {"rng": self._rng.bit_generator.state}

    def load_state_dict(self, state: dict) -> None:
        """Restore a `state_dict()`; a loader without `seed` has nothing to restore."""
        if self._rng is not None and "rng" in state:
            self._rng.bit_generator.state = state["rng"]

    def _order(self, n: int) -> np.ndarray:
        """This epoch's sample order."""
        if not self.shuffle:
            return np.arange(n)
        return (self._rng if self._rng is not None else get_rng()).permutation(n)

    def _batch(self, indices: np.ndarray):
        if self.collate_fn is not None:
            return self.collate_fn([self.dataset[int(i)] for i in indices])
        get_batch = getattr(self.dataset, "get_batch", None)
        if get_batch is not None:
            fields = get_batch(indices)
        else:
            fields = default_collate([self.dataset[int(i)] for i in indices])
        if isinstance(fields, tuple):
            return tuple(_to_tensor(f) for f in fields)
        return _to_tensor(fields)


def _to_tensor(array: np.ndarray) -> Tensor:
    """Floats take the default float dtype (float32), integers become int64 like torch's labels."""
    array = np.asarray(array)
    if array.dtype.kind in "iu":
        array = array.astype(np.int64, copy=False)
    return Tensor(array)
