"""Read and write IDX files, the format of MNIST and Fashion-MNIST (raw or gzip-compressed).

An IDX file is a header and the array's bytes, big-endian:
    bytes 0-1  zero
    byte  2    dtype code (0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32, 0x0D float32, 0x0E float64)
    byte  3    rank (number of dimensions)
    then one uint32 size per dimension, then the data in C order.
"""
from __future__ import annotations

import gzip
import os
import uuid
import zlib
from pathlib import Path

import numpy as np

from .errors import DataError

DTYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
CODES = {dtype.newbyteorder("="): code for code, dtype in DTYPES.items()}
GZIP_MAGIC = b"\x1f\x8b"


def read_idx(path: str | os.PathLike, ndim: int | None = None) -> np.ndarray:
    """Read an IDX file (raw or .gz) into a writable native-endian array; check it is whole.

    `ndim`, if given, is the rank the caller expects. Raises `DataError` naming the file and the
    problem when the file is corrupt or truncated.

        images = read_idx("train-images-idx3-ubyte.gz", ndim=3)   # (60000, 28, 28) uint8
    """
    path = Path(path)
    buf = read_bytes(path)
    dtype, shape, offset = _parse_header(buf, path)
    if ndim is not None and len(shape) != ndim:
        raise DataError(f"{path}: expected an IDX file of rank {ndim}, got rank {len(shape)} "
                        f"(shape {shape}); is this the right file?")
    count = int(np.prod(shape, dtype=np.int64))
    expected = offset + count * dtype.itemsize
    if len(buf) < expected:
        raise DataError(f"{path}: truncated: the header promises shape {shape} of {dtype.name} "
                        f"({expected} bytes), the file has {len(buf)}. Delete it and fetch it again.")
    if len(buf) > expected:
        raise DataError(f"{path}: {len(buf) - expected} bytes more than the header's shape {shape} "
                        f"of {dtype.name} ({expected} bytes): the file is corrupt.")
    array = np.frombuffer(buf, dtype=dtype, count=count, offset=offset).reshape(shape)
    return array.astype(dtype.newbyteorder("="), copy=False)


def write_idx(path: str | os.PathLike, array: np.ndarray, compress: bool | None = None) -> None:
    """Write `array` as an IDX file, atomically; gzip it when `compress` (default: name ends .gz)."""
    path = Path(path)
    array = np.ascontiguousarray(array)
    code = CODES.get(array.dtype.newbyteorder("="))
    if code is None:
        raise DataError(f"{path}: IDX cannot store dtype {array.dtype}; use one of "
                        f"{sorted(str(d) for d in CODES)}")
    header = bytes([0, 0, code, array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
    data = header + array.astype(DTYPES[code], copy=False).tobytes()
    if compress is None:
        compress = path.name.endswith(".gz")
    if compress:
        data = gzip.compress(data, mtime=0)
    write_atomic(path, data)


def write_atomic(path: Path, data: bytes) -> None:
    """Write `data` to `path` through a temporary file, so `path` is never seen half-written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "xb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def read_bytes(path: Path) -> bytearray:
    """The file's bytes, decompressed if it is gzip (recognised by content, not by name)."""
    with open(path, "rb") as f:
        buf = bytearray(f.read())
    if buf[:2] != GZIP_MAGIC:
        return buf
    try:
        return bytearray(gzip.decompress(buf))
    except (OSError, EOFError, zlib.error) as e:
        raise DataError(f"{path}: corrupt or truncated gzip data ({e}). "
                        "Delete it and fetch it again.") from None


def _parse_header(buf: bytearray, path: Path) -> tuple[np.dtype, tuple[int, ...], int]:
    """(dtype, shape, data offset) from an IDX header, or a DataError saying what is wrong."""
    if len(buf) < 4:
        raise DataError(f"{path}: only {len(buf)} bytes, too short for an IDX header (4 bytes).")
    if buf[0] != 0 or buf[1] != 0:
        raise DataError(f"{path}: not an IDX file: magic number {bytes(buf[:4]).hex()} should "
                        "start with two zero bytes (00 00 <dtype> <rank>).")
    code, rank = buf[2], buf[3]
    if code not in DTYPES:
        known = ", ".join(f"0x{c:02X}" for c in DTYPES)
        raise DataError(f"{path}: unknown IDX dtype code 0x{code:02X} (known: {known}).")
    offset = 4 + 4 * rank
    if len(buf) < offset:
        raise DataError(f"{path}: truncated header: rank {rank} needs {offset} header bytes, "
                        f"the file has {len(buf)}.")
    shape = tuple(int(s) for s in np.frombuffer(buf, dtype=">u4", count=rank, offset=4))
    return DTYPES[code], shape, offset
