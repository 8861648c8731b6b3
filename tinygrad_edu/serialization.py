"""save / load: checkpoints as one .npz file that loading can never turn into running code.

A checkpoint is a nested structure of dicts, lists, tuples, numpy arrays, Tensors, numbers,
strings, bools and None (a model's and an optimizer's state_dict, the epoch, the RNG state...).
Arrays are stored as .npy members under readable flattened keys ("model/fc1.weight"), and the
structure as JSON in the uint8 member "__structure__". In that JSON, strings, bools, None, lists,
int64-sized ints and finite floats stand for themselves; everything else is a one-key object:

    {"dict": [[key, value], ...]}   keys keep their type (an optimizer's state uses int keys)
    {"tuple": [...]}                {"int": "340282366920938463463374607431768211455"}
    {"float": "nan" | "inf" | "-inf"}
    {"array": "model/fc1.weight"}   {"tensor": ...}   {"scalar": ...} (a numpy scalar)

Subclasses of dict (OrderedDict, Counter) come back as plain dicts.

`save` and `load` take torch's arguments (`tg.save(obj, f)`, `tg.load(f, map_location=None,
weights_only=True)`; f a path or a binary file object). A path ending in `.safetensors` is
written as safetensors (a flat dict of tensors: a state_dict). `load` also reads safetensors
files and the tensors of real PyTorch `.pt` files (`torch_format.py`: an allow-list unpickler
that never runs the file's code), so a model trained in PyTorch loads into its twin.
"""
from __future__ import annotations

import io
import json
import math
import os
import tempfile
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np

from .device import check_cpu
from .tensor import Tensor
from .torch_format import TorchFileError, is_torch_zip, read_torch_file

STRUCTURE_KEY = "__structure__"
FORMAT = "tinygrad_edu.checkpoint"
VERSION = 1
_INT64 = (-(2**63), 2**63 - 1)
_TAGS = ("dict", "tuple", "int", "float", "array", "tensor", "scalar")


class CheckpointError(RuntimeError):
    """A checkpoint file could not be read: corrupt, truncated, unsafe or unsupported."""


# ------------------------------------------------------------------ save
def save(obj, f, pickle_module=None, pickle_protocol: int | None = None,
         _use_new_zipfile_serialization: bool = True) -> None:
    """Write `obj` (nested dicts/lists of arrays, Tensors, numbers, strings...) to `f`, a path or
    a binary file object; `pickle_*` are accepted for torch's signature and unused (nothing is
    pickled). A path ending in .safetensors gets the safetensors format (flat dict of tensors).

    Atomic for paths: the file is written next to `f`, synced, then renamed over it, so a crash
    or a kill during `save` leaves the previous file intact.

        tg.save({"model": model.state_dict(), "epoch": 3}, "checkpoint.npz")
    """
    if hasattr(f, "write"):
        _write_npz(f, _arrays_of(obj))
        return
    path = os.fspath(f)
    if path.endswith(".safetensors"):
        _save_safetensors(obj, path)
        return
    arrays = _arrays_of(obj)
    _write_atomic(path, lambda f: _write_npz(f, arrays))


def _arrays_of(obj) -> dict[str, np.ndarray]:
    """The .npz members holding `obj`: its arrays and the JSON structure."""
    arrays: dict[str, np.ndarray] = {STRUCTURE_KEY: np.empty(0, np.uint8)}
    root = _encode(obj, "", arrays)
    text = json.dumps({"format": FORMAT, "version": VERSION, "root": root}, allow_nan=False)
    arrays[STRUCTURE_KEY] = np.frombuffer(text.encode("utf-8"), dtype=np.uint8)
    return arrays


def _save_safetensors(obj, path: str) -> None:
    """A flat {name: Tensor or array} as a .safetensors file, written atomically."""
    from safetensors.numpy import save
    if not isinstance(obj, Mapping) or not all(
            isinstance(k, str) and isinstance(v, (Tensor, np.ndarray)) for k, v in obj.items()):
        raise TypeError("save: a .safetensors file holds a flat dict of tensors (a state_dict); "
                        "save other objects to an .npz or .pt path")
    blob = save({k: np.ascontiguousarray(getattr(v, "data", v)) for k, v in obj.items()})
    _write_atomic(path, lambda f: f.write(blob))


def _encode(obj, where: str, arrays: dict[str, np.ndarray]):
    """The JSON node for `obj`; its arrays go into `arrays` under keys derived from `where`."""
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, int):
        return obj if _INT64[0] <= obj <= _INT64[1] else {"int": str(obj)}
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else {"float": repr(obj)}
    if isinstance(obj, Tensor):
        return {"tensor": _add_array(obj.array, where, arrays)}
    if isinstance(obj, np.ndarray):
        return {"array": _add_array(obj, where, arrays)}
    if isinstance(obj, np.generic):
        return {"scalar": _add_array(np.asarray(obj), where, arrays)}
    if isinstance(obj, Mapping):
        return {"dict": [[_encode_key(k, where), _encode(v, _join(where, k), arrays)]
                         for k, v in obj.items()]}
    if isinstance(obj, tuple) and hasattr(obj, "_fields"):
        raise TypeError(f"save: cannot store the namedtuple {type(obj).__name__} at "
                        f"{_shown(where)}: it would load as a plain tuple; store a dict or a "
                        f"tuple instead")
    if isinstance(obj, (list, tuple)):
        items = [_encode(v, _join(where, i), arrays) for i, v in enumerate(obj)]
        return {"tuple": items} if isinstance(obj, tuple) else items
    raise TypeError(f"save: cannot store a {type(obj).__name__} at {_shown(where)}; checkpoints "
                    f"hold dicts, lists, tuples, numpy arrays, Tensors, numbers, strings, bools "
                    f"and None (call .state_dict() on modules, optimizers and schedulers)")


def _join(where: str, key) -> str:
    """The flattened name of `key` inside `where`: "model" + "fc1.weight" -> "model/fc1.weight"."""
    return f"{where}/{key}" if where else str(key)


def _shown(where: str) -> str:
    return repr(where) if where else "the top level"


def _encode_key(key, where: str):
    """Dict keys may be strings, ints, floats, bools or None; they keep their type."""
    if key is None or isinstance(key, (str, int, float)):
        return _encode(key, where, {})
    raise TypeError(f"save: dict key {key!r} ({type(key).__name__}) at {_shown(where)} is not "
                    f"supported; use strings or ints as keys")


def _add_array(array: np.ndarray, where: str, arrays: dict[str, np.ndarray]) -> str:
    """Store `array` under a free key derived from `where` and return that key."""
    if array.dtype.hasobject:
        raise TypeError(f"save: the array at {_shown(where)} has dtype object, which .npz can "
                        f"only hold as pickled Python objects; convert it to a numeric dtype")
    base = where or "value"
    key, n = base, 1
    while key in arrays:
        n += 1
        key = f"{base}~{n}"
    arrays[key] = array
    return key


def _write_atomic(path: str, write: Callable) -> None:
    """Call `write(f)` on a temporary file beside `path`, fsync, then rename it over `path`."""
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        os.remove(tmp)
        raise
    _fsync_dir(folder)


def _write_npz(f, arrays: dict[str, np.ndarray]) -> None:
    """The layout np.savez writes: one uncompressed <key>.npy member per array."""
    with zipfile.ZipFile(f, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
        for key, array in arrays.items():
            with zf.open(f"{key}.npy", "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.asanyarray(array), allow_pickle=False)


def _fsync_dir(folder: str) -> None:
    """Make the rename itself durable (where the OS lets us open a directory)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# ------------------------------------------------------------------ load
def load(f, map_location=None, pickle_module=None, *, weights_only: bool = True, mmap=None,
         **pickle_load_args):
    """Read what `save` wrote, a .safetensors file, or the tensors of a PyTorch .pt file, from a
    path or a binary file object; Tensors come back as Tensors, arrays as arrays.

    `map_location` may name the CPU (or be a dict or function, as in torch: everything lands on
    the CPU anyway). Never unpickles code, whatever `weights_only` says: a file that needs it
    is refused.

        ckpt = tg.load("checkpoint.npz"); model.load_state_dict(ckpt["model"])
        model.load_state_dict(tg.load("mnist_cnn.pt", map_location="cpu"))   # from PyTorch
    """
    _check_map_location(map_location)
    name = getattr(f, "name", None) or "the file" if hasattr(f, "read") else os.fspath(f)
    data = f.read() if hasattr(f, "read") else None
    source = io.BytesIO(data) if data is not None else name
    magic = data[:8] if data is not None else _head(name)
    if _is_safetensors(magic):
        return _load_safetensors(source)
    if magic.startswith(b"PK"):
        try:
            with zipfile.ZipFile(source) as archive:
                if is_torch_zip(archive):
                    return read_torch_file(name, archive)
        except TorchFileError as e:
            raise CheckpointError(str(e)) from None
        except zipfile.BadZipFile as e:
            raise _corrupt(name, e) from e
        if data is not None:
            source.seek(0)
    _check_magic(name, magic)
    arrays = _read_npz(source, name)
    try:
        header = json.loads(arrays.pop(STRUCTURE_KEY).tobytes().decode("utf-8"))
        if header.get("format") != FORMAT or header.get("version") != VERSION:
            raise ValueError(f"format {header.get('format')!r} version {header.get('version')!r}")
        return _decode(header["root"], arrays)
    except (ValueError, KeyError, TypeError, AttributeError, IndexError) as e:
        raise CheckpointError(f"load: the structure description in {name} is damaged or from an "
                              f"unsupported version ({type(e).__name__}: {e}); re-create the "
                              f"checkpoint with tg.save") from e


def _check_map_location(map_location) -> None:
    """Only the CPU exists: 'cpu', device('cpu'), dicts onto 'cpu' and functions are fine."""
    if map_location is None or callable(map_location):
        return
    targets = map_location.values() if isinstance(map_location, Mapping) else [map_location]
    for target in targets:
        check_cpu(target, "map_location")


def _head(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read(8)


def _is_safetensors(magic: bytes) -> bool:
    """A little-endian u64 header size, then the JSON header's '{'."""
    return len(magic) == 8 and 0 < int.from_bytes(magic, "little") < 100_000_000 and \
        not magic.startswith((b"PK", b"\x80", b"\x93NUMPY"))


def _load_safetensors(source) -> dict[str, Tensor]:
    from safetensors.numpy import load as load_bytes
    blob = source.getvalue() if isinstance(source, io.BytesIO) else Path(source).read_bytes()
    try:
        return {k: Tensor(v, dtype=v.dtype) for k, v in load_bytes(blob).items()}
    except Exception as e:  # safetensors raises its own SafetensorError
        raise CheckpointError(f"load: the safetensors file is damaged ({type(e).__name__}: "
                              f"{e})") from e


def _read_npz(source, path: str) -> dict[str, np.ndarray]:
    """Every array of the .npz at `source` (named `path`), read eagerly so that damage shows up
    here."""
    try:
        with np.load(source, allow_pickle=False) as npz:
            if STRUCTURE_KEY not in npz.files:
                raise CheckpointError(f"load: {path} is a zip file but not a tinygrad_edu "
                                      f"checkpoint (it has no {STRUCTURE_KEY!r} entry); read "
                                      f"plain .npz files with np.load")
            return {key: npz[key] for key in npz.files}
    except ValueError as e:
        if "pickle" in str(e):
            raise _unsafe(path) from e
        raise _corrupt(path, e) from e
    except (OSError, EOFError, zipfile.BadZipFile, KeyError) as e:
        raise _corrupt(path, e) from e


def _check_magic(path: str, magic: bytes) -> None:
    """Refuse what is not a zip file by its first bytes, before numpy guesses at it."""
    if magic.startswith(b"PK"):
        return
    if magic.startswith(b"\x80"):
        raise _unsafe(path)
    if magic.startswith(b"\x93NUMPY"):
        raise CheckpointError(f"load: {path} holds a single .npy array, not a checkpoint; read "
                              f"it with np.load")
    raise _corrupt(path, ValueError(f"it starts with {magic!r}, not with a zip header"))


def _unsafe(path: str) -> CheckpointError:
    return CheckpointError(f"load: refusing {path}: it contains pickled Python objects, and "
                           f"unpickling can run arbitrary code. tinygrad_edu checkpoints hold "
                           f"only arrays; re-save it with tg.save from the program that made it")


def _corrupt(path: str, error: Exception) -> CheckpointError:
    return CheckpointError(f"load: {path} is corrupt or truncated ({type(error).__name__}: "
                           f"{error}); it was probably not written completely. Use an earlier "
                           f"checkpoint or start training again")


def _decode(node, arrays: dict[str, np.ndarray]):
    """The Python value of one JSON node (see the module docstring)."""
    if node is None or isinstance(node, (bool, str, int, float)):
        return node
    if isinstance(node, list):
        return [_decode(v, arrays) for v in node]
    if not isinstance(node, dict) or len(node) != 1 or next(iter(node)) not in _TAGS:
        raise ValueError(f"unknown node {str(node)[:80]}")
    (tag, value), = node.items()
    if tag == "dict":
        return {_decode(k, arrays): _decode(v, arrays) for k, v in value}
    if tag == "tuple":
        return tuple(_decode(v, arrays) for v in value)
    if tag == "int":
        return int(value)
    if tag == "float":
        return float(value)
    if tag == "array":
        return arrays[value]
    if tag == "tensor":
        return Tensor(arrays[value], dtype=arrays[value].dtype)
    return arrays[value][()]  # "scalar": a 0-d array back to a numpy scalar
