"""Read the tensors of a PyTorch `.pt` / `.pth` file without PyTorch and without running its pickle.

`torch.save` writes a zip: `<name>/data.pkl` (a pickle of the structure) and one raw storage per
tensor in `<name>/data/<key>`. The pickle is read by an allow-list unpickler, as torch's
`weights_only=True` does: it may only rebuild dicts (OrderedDict), tensors (`_rebuild_tensor_v2`,
`_rebuild_parameter`) from typed storages, and plain values; any other global in the file (a
class, a function: code) stops the load with one sentence instead of being imported and run.

    state = read_torch_file("mnist_cnn.pt")      # {"conv1.weight": Tensor, ...}
"""
from __future__ import annotations

import collections
import io
import pickle
import zipfile

import numpy as np

from .tensor import Tensor

_STORAGE_DTYPES = {
    "FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
    "BFloat16Storage": "bfloat16", "LongStorage": np.int64, "IntStorage": np.int32,
    "ShortStorage": np.int16, "CharStorage": np.int8, "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


class TorchFileError(RuntimeError):
    """A .pt file that cannot be read safely (or is not a zip-format PyTorch file)."""


class _Storage:
    """A typed storage: its numpy dtype (None for bfloat16, converted later) and its key."""

    def __init__(self, dtype, key: str):
        self.dtype, self.key = dtype, key


def _rebuild_tensor_v2(storage: np.ndarray, offset: int, size, stride, requires_grad=False,
                       backward_hooks=None, metadata=None) -> Tensor:
    """torch._utils._rebuild_tensor_v2: a strided view of the storage, copied to own memory."""
    itemsize = storage.itemsize
    view = np.lib.stride_tricks.as_strided(storage[offset:], shape=tuple(size),
                                           strides=tuple(s * itemsize for s in stride))
    out = Tensor(np.array(view), dtype=storage.dtype)
    if requires_grad and out.dtype.kind == "f":
        out.requires_grad_(True)
    return out


def _rebuild_parameter(data: Tensor, requires_grad: bool, backward_hooks=None) -> Tensor:
    """torch._utils._rebuild_parameter: a Parameter's data (state_dicts hold plain tensors)."""
    if requires_grad and data.dtype.kind == "f":
        data.requires_grad_(True)
    return data


_ALLOWED = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("builtins", "tuple"): tuple,
    ("builtins", "list"): list,
    ("builtins", "dict"): dict,
}


class _AllowListUnpickler(pickle.Unpickler):
    """Rebuilds only what `_ALLOWED` names; storages come from the zip's data/ members."""

    def __init__(self, file, archive: zipfile.ZipFile, prefix: str, path: str):
        super().__init__(file)
        self.archive, self.prefix, self.path = archive, prefix, path
        self.storages: dict[str, np.ndarray] = {}

    def find_class(self, module: str, name: str):
        if module == "torch" and name in _STORAGE_DTYPES:
            return _STORAGE_DTYPES[name]
        if (module, name) in _ALLOWED:
            return _ALLOWED[(module, name)]
        raise TorchFileError(f"load: refusing {self.path}: it holds {module}.{name}, which only "
                             f"running code from the file could rebuild; tinygrad_edu reads "
                             f"tensors, dicts and lists only (save the model's state_dict())")

    def persistent_load(self, pid):
        kind, dtype, key, _location, numel = pid
        if kind != "storage":
            raise TorchFileError(f"load: {self.path} has an unknown persistent id {kind!r}")
        if key not in self.storages:
            raw = self.archive.read(f"{self.prefix}data/{key}")
            self.storages[key] = _storage_array(raw, dtype, int(numel))
        return self.storages[key]


def _storage_array(raw: bytes, dtype, numel: int) -> np.ndarray:
    """The storage's bytes as a little-endian numpy array (bfloat16 widened to float32)."""
    if dtype == "bfloat16":
        halves = np.frombuffer(raw, dtype="<u2", count=numel)
        return (halves.astype(np.uint32) << 16).view(np.float32)
    return np.frombuffer(raw, dtype=np.dtype(dtype).newbyteorder("<"), count=numel).astype(
        np.dtype(dtype), copy=False)


def is_torch_zip(archive: zipfile.ZipFile) -> bool:
    return any(n.endswith("data.pkl") for n in archive.namelist())


def read_torch_file(path: str, archive: zipfile.ZipFile):
    """The object `torch.save` stored in the zip `archive`, with Tensors for torch tensors."""
    pkl = next(n for n in archive.namelist() if n.endswith("data.pkl"))
    prefix = pkl[:-len("data.pkl")]
    order = archive.read(f"{prefix}byteorder").decode() if f"{prefix}byteorder" in \
        archive.namelist() else "little"
    if order != "little":
        raise TorchFileError(f"load: {path} was written on a big-endian machine; re-save it on "
                             f"a little-endian one")
    unpickler = _AllowListUnpickler(io.BytesIO(archive.read(pkl)), archive, prefix, path)
    try:
        return unpickler.load()
    except TorchFileError:
        raise
    except (pickle.UnpicklingError, ValueError, KeyError, TypeError, EOFError) as e:
        raise TorchFileError(f"load: {path} is not a readable PyTorch file "
                             f"({type(e).__name__}: {e})") from e
