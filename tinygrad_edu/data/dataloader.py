"""DataLoader: iterate over a dataset in (shuffled) batches of Tensors, like torch's.

When the dataset holds whole arrays (`get_batch`: TensorDataset, MNIST, ArrayDataset and
Subsets of them) a batch is one fancy-indexing call per field instead of one Python call per item.
With `num_workers > 0`, batches are fetched by that many worker processes (worth it when fetching
decodes images); the sampler stays in the main process, so the batches and their order are the
same as with `num_workers=0`.
"""
from __future__ import annotations

import multiprocessing
import queue
import traceback
from collections.abc import Callable, Iterator, Mapping
from typing import NamedTuple

import numpy as np

from ..generator import Generator
from ..random import get_rng, manual_seed
from ..tensor import Tensor
from .dataset import IterableDataset, default_collate
from .sampler import BatchSampler, RandomSampler, SequentialSampler


class DataLoader:
    """Batches of `dataset`: floating fields become float Tensors, integer fields int64 Tensors.

    torch's options: `shuffle`, `sampler`, `batch_sampler`, `drop_last`, `collate_fn` (receives
    the list of samples; its result is yielded as it is), `generator`, `num_workers`,
    `worker_init_fn`, `persistent_workers`, `prefetch_factor`, `timeout`; `pin_memory` is
    accepted and does nothing (there is no GPU to copy to). `shuffle` draws a new order every
    epoch from `seed` (a private generator, so the sequence of epochs is repeatable;
    `state_dict()` holds its state), else from `generator`, else from the global generator.

        loader = DataLoader(train_set, batch_size=32, shuffle=True, seed=0)
        for x, y in loader:      # x (32, 1, 28, 28) float32, y (32,) int64
            ...
    """

    def __init__(self, dataset, batch_size: int | None = 1, shuffle: bool | None = None,
                 sampler=None, batch_sampler=None, num_workers: int = 0,
                 collate_fn: Callable | None = None, pin_memory: bool = False,
                 drop_last: bool = False, timeout: float = 0, worker_init_fn: Callable | None = None,
                 multiprocessing_context=None, generator: Generator | None = None, *,
                 prefetch_factor: int | None = None, persistent_workers: bool = False,
                 pin_memory_device: str = "", in_order: bool = True, seed: int | None = None):
        _check_options(batch_size, shuffle, sampler, batch_sampler, drop_last, num_workers,
                       prefetch_factor, persistent_workers)
        self.stream = isinstance(dataset, IterableDataset)
        if self.stream:
            _check_stream_options(shuffle, sampler, batch_sampler, num_workers)
        self.dataset, self.num_workers, self.collate_fn = dataset, num_workers, collate_fn
        self.pin_memory, self.timeout, self.worker_init_fn = pin_memory, timeout, worker_init_fn
        self.generator, self.persistent_workers = generator, persistent_workers
        self.prefetch_factor = 2 if prefetch_factor is None and num_workers else prefetch_factor
        self.multiprocessing_context = multiprocessing_context
        self._rng = np.random.default_rng(seed) if seed is not None else None
        if sampler is None and batch_sampler is None and not self.stream:
            rng = self._rng if self._rng is not None else generator
            sampler = RandomSampler(dataset, generator=rng) if shuffle else \
                SequentialSampler(dataset)
        self.sampler = sampler
        if batch_sampler is None and batch_size is not None and not self.stream:
            batch_sampler = BatchSampler(sampler, int(batch_size), drop_last)
        self.batch_sampler = batch_sampler
        self.batch_size = None if batch_size is None else int(batch_size)
        self.drop_last = drop_last
        self.shuffle = bool(shuffle)
        self._pool: _WorkerPool | None = None

    def __len__(self) -> int:
        if self.stream:  # torch's rule: the batches the stream's length gives, if it has one
            n, b = len(self.dataset), self.batch_size or 1
            return n // b if self.drop_last else -(-n // b)
        return len(self.batch_sampler if self.batch_sampler is not None else self.sampler)

    def __iter__(self) -> Iterator:
        if self.stream:
            return self._from_stream()
        batches = self._index_batches()
        if self.num_workers == 0:
            return (self._convert(self.fetch(b)) for b in batches)
        return self._from_workers(batches)

    def _index_batches(self) -> list:
        """This epoch's batches of indices (an int per sample when batch_size is None)."""
        if self.batch_sampler is None:
            return list(iter(self.sampler))
        return list(iter(self.batch_sampler))

    def _from_stream(self) -> Iterator:
        """Consecutive samples of an IterableDataset, batch_size at a time."""
        if self.batch_size is None:
            for sample in self.dataset:
                yield sample if self.collate_fn is None else self.collate_fn(sample)
            return
        batch = []
        for sample in self.dataset:
            batch.append(sample)
            if len(batch) == self.batch_size:
                yield self._collate(batch)
                batch = []
        if batch and not self.drop_last:
            yield self._collate(batch)

    def _collate(self, samples: list):
        if self.collate_fn is not None:
            return self.collate_fn(samples)
        return to_tensors(default_collate(samples))

    def fetch(self, indices):
        """The collated samples at `indices` as numpy arrays (what a worker returns)."""
        if self.batch_sampler is None:  # no batching: one sample at a time, as torch does
            sample = self.dataset[int(indices)]
            return sample if self.collate_fn is None else self.collate_fn(sample)
        if self.collate_fn is not None:
            return self.collate_fn([self.dataset[int(i)] for i in indices])
        get_batch = getattr(self.dataset, "get_batch", None)
        indices = np.asarray(indices, dtype=np.int64)
        if get_batch is not None:
            return get_batch(indices)
        return default_collate([self.dataset[int(i)] for i in indices])

    def _convert(self, fields):
        """Arrays to Tensors (recursively); a collate_fn's result is yielded as it is."""
        if self.collate_fn is not None:
            return fields
        return to_tensors(fields)

    def _from_workers(self, batches: list) -> Iterator:
        pool = self._pool or _WorkerPool(self)
        self._pool = pool if self.persistent_workers else None
        try:
            seed = int((self._rng or get_rng()).integers(2**62))
            for fields in pool.run(batches, seed):
                yield self._convert(fields)
        finally:
            if not self.persistent_workers:
                pool.close()

    def state_dict(self) -> dict:
        """The private shuffle generator's state (empty without `seed`): `tg.train.fit` saves it
        in its checkpoints, so that a resumed run shuffles as the uninterrupted one would."""
        return {} if self._rng is None else {"rng": self._rng.bit_generator.state}

    def load_state_dict(self, state: dict) -> None:
        """Restore a `state_dict()`; a loader without `seed` has nothing to restore."""
        if self._rng is not None and "rng" in state:
            self._rng.bit_generator.state = state["rng"]

    def __del__(self):
        if getattr(self, "_pool", None) is not None:
            self._pool.close()


def _check_options(batch_size, shuffle, sampler, batch_sampler, drop_last, num_workers,
                   prefetch_factor, persistent_workers) -> None:
    """torch's refusals, in its words."""
    if batch_size is not None and (int(batch_size) != batch_size or batch_size < 1):
        raise ValueError(f"DataLoader: batch_size must be a positive integer, got {batch_size}")
    if sampler is not None and shuffle:
        raise ValueError("DataLoader: sampler option is mutually exclusive with shuffle")
    if batch_sampler is not None and (batch_size != 1 or shuffle or sampler is not None
                                      or drop_last):
        raise ValueError("DataLoader: batch_sampler option is mutually exclusive with "
                         "batch_size, shuffle, sampler, and drop_last")
    if num_workers < 0:
        raise ValueError(f"DataLoader: num_workers option should be non-negative, got "
                         f"{num_workers}")
    if num_workers == 0 and (prefetch_factor is not None or persistent_workers):
        raise ValueError("DataLoader: prefetch_factor and persistent_workers need "
                         "num_workers > 0")


def _check_stream_options(shuffle, sampler, batch_sampler, num_workers) -> None:
    """What torch refuses for an IterableDataset, and the worker processes we do not run."""
    for name, value in (("shuffle", shuffle), ("sampler", sampler),
                        ("batch_sampler", batch_sampler)):
        if value:
            raise ValueError(f"DataLoader with IterableDataset: expected unspecified {name} "
                             f"option, but got {name}={value!r}")
    if num_workers:
        raise NotImplementedError("DataLoader: tinygrad_edu runs an IterableDataset in the main "
                                  "process only; use num_workers=0 (or a map-style Dataset)")


def to_tensors(fields):
    """Floats take the default float dtype (float32), integers become int64 like torch's labels;
    tuples, lists and dicts are converted element by element, strings stay strings."""
    if isinstance(fields, tuple):
        return tuple(to_tensors(f) for f in fields)
    if isinstance(fields, Mapping):
        return {k: to_tensors(v) for k, v in fields.items()}
    if isinstance(fields, (list, str)):
        return fields
    array = np.asarray(fields)
    if array.dtype.kind in "iu":
        array = array.astype(np.int64, copy=False)
    return Tensor(array)


# ---------------------------------------------------------------- worker processes


class _WorkerPool:
    """`num_workers` processes, each with its own queue of (batch number, indices); results come
    back on one queue and are put back in order. Worker w seeds tinygrad_edu's generator with
    base_seed + w and then calls `worker_init_fn(w)`, as torch's workers do."""

    def __init__(self, loader: DataLoader):
        ctx = multiprocessing.get_context(loader.multiprocessing_context or "fork")
        self.loader = loader
        self.results = ctx.Queue()
        self.inboxes = [ctx.Queue() for _ in range(loader.num_workers)]
        self.epoch = 0
        self.procs = [ctx.Process(target=_worker_loop, args=(loader, w, inbox, self.results),
                                  daemon=True) for w, inbox in enumerate(self.inboxes)]
        for p in self.procs:
            p.start()

    def run(self, batches: list, seed: int) -> Iterator:
        """This epoch's batches, in order. Jobs and results carry the epoch's number, so what
        an abandoned earlier epoch left in the queues (a `break`, a `next(iter(loader))` on
        persistent workers) is dropped, never mistaken for this epoch's batches."""
        self.epoch += 1
        for inbox in self.inboxes:
            _drain(inbox)
            inbox.put(("seed", self.epoch, seed))
        n, ahead = len(batches), self.loader.prefetch_factor * len(self.procs)
        done: dict[int, object] = {}
        sent = 0
        for want in range(n):
            while sent < min(n, want + ahead):
                self.inboxes[sent % len(self.inboxes)].put((self.epoch, sent, batches[sent]))
                sent += 1
            while want not in done:
                epoch, number, payload = self._get()
                if epoch == self.epoch:
                    done[number] = payload
            payload = done.pop(want)
            if isinstance(payload, _WorkerError):
                raise payload.error(want)
            yield payload

    def _get(self):
        """The next result; a dead worker or a timeout ends the epoch with one sentence."""
        waited = 0.0
        while True:
            try:
                return self.results.get(timeout=1.0)
            except queue.Empty:
                waited += 1.0
                dead = [w for w, p in enumerate(self.procs) if not p.is_alive()]
                if dead:
                    raise RuntimeError(f"DataLoader worker {dead[0]} exited unexpectedly "
                                       f"(exit code {self.procs[dead[0]].exitcode})") from None
                if self.loader.timeout and waited >= self.loader.timeout:
                    raise RuntimeError(f"DataLoader timed out after {self.loader.timeout} s "
                                       f"waiting for a batch") from None

    def close(self) -> None:
        for inbox in self.inboxes:
            inbox.put(None)
        for p in self.procs:
            p.join(timeout=5)
            if p.is_alive():
                p.terminate()
        self.procs = []


def _drain(q) -> None:
    """Drop what is waiting in a queue (jobs of an abandoned epoch)."""
    while True:
        try:
            q.get_nowait()
        except queue.Empty:
            return


class WorkerInfo(NamedTuple):
    """What `get_worker_info()` returns inside a worker process."""
    id: int
    num_workers: int
    seed: int
    dataset: object


_worker_info: WorkerInfo | None = None


def get_worker_info() -> WorkerInfo | None:
    """In a DataLoader worker process: its id, the number of workers, its seed and its copy of
    the dataset (to open files per worker, say); None in the main process, as in torch."""
    return _worker_info


class _WorkerError:
    """An exception raised in a worker, carried back as its formatted traceback."""

    def __init__(self, worker: int, text: str):
        self.worker, self.text = worker, text

    def error(self, batch: int) -> RuntimeError:
        return RuntimeError(f"DataLoader worker {self.worker} failed on batch {batch}:\n"
                            f"{self.text}")


def _worker_loop(loader: DataLoader, worker: int, inbox, results) -> None:
    """Fetch the batches sent to this worker until told to stop (None)."""
    global _worker_info
    initialised = False
    while True:
        job = inbox.get()
        if job is None:
            return
        if job[0] == "seed":  # ("seed", epoch, base seed), at the start of each epoch
            seed = job[2] + worker
            _worker_info = WorkerInfo(worker, loader.num_workers, seed, loader.dataset)
            manual_seed(seed)
            if not initialised and loader.worker_init_fn is not None:
                loader.worker_init_fn(worker)
            initialised = True
            continue
        epoch, number, indices = job
        try:
            results.put((epoch, number, loader.fetch(indices)))
        except Exception:  # noqa: BLE001 (carried to the main process and raised there)
            results.put((epoch, number, _WorkerError(worker, traceback.format_exc())))
