"""PyTorch's module-level functions (`torch.exp(x)`, `torch.max(x, 1)`, `torch.mm`...) and the
composite ops behind the Tensor methods of the PyTorch surface (flip, roll, topk, sort, norm...).

Each is either a call of the Tensor method of the same name or a composition of engine ops, so
gradients flow through all of them. `tg.exp(x)` is `x.exp()`, as `torch.exp(x)` is `x.exp()`.

    tg.max(logits, 1).indices        # like torch.max(logits, 1)[1]
    tg.einsum("bij,bjk->bik", a, b)
"""
from __future__ import annotations

import builtins  # this module defines torch's abs, max, min, sum, round, all, any
import functools
import math
import string
from collections.abc import Sequence

import numpy as np

from . import ops_extra
from .device import check_cpu
from .generator import Generator, rng_of
from .tensor import Tensor, ValuesIndices, _axes, _const, cat, get_default_dtype, where
from .tensor import arange as arange_
from .tensor import empty as empty_
from .tensor import empty_like as empty_like_
from .tensor import eye as eye_
from .tensor import full as full_
from .tensor import full_like as full_like_
from .tensor import linspace as linspace_
from .tensor import ones as ones_
from .tensor import ones_like as ones_like_
from .tensor import rand as rand_
from .tensor import rand_like as rand_like_
from .tensor import randn as randn_
from .tensor import randn_like as randn_like_
from .tensor import tensor as tensor_
from .tensor import zeros as zeros_
from .tensor import zeros_like as zeros_like_

__all__ = [
    "abs",
    "add",
    "all",
    "allclose",
    "amax",
    "amin",
    "any",
    "arange",
    "argmax",
    "argmin",
    "argsort",
    "as_tensor",
    "bernoulli",
    "bincount",
    "bmm",
    "broadcast_to",
    "bucketize",
    "cdist",
    "ceil",
    "chunk",
    "clamp",
    "clamp_max",
    "clamp_min",
    "clip",
    "concat",
    "cos",
    "cosh",
    "count_nonzero",
    "cumsum",
    "diag",
    "div",
    "dot",
    "einsum",
    "empty",
    "empty_like",
    "equal",
    "exp",
    "expm1",
    "eye",
    "finfo",
    "flatten",
    "flip",
    "floor",
    "full",
    "full_like",
    "gather",
    "iinfo",
    "index_select",
    "is_floating_point",
    "is_tensor",
    "isclose",
    "isfinite",
    "isinf",
    "isnan",
    "lerp",
    "linspace",
    "log",
    "log1p",
    "log2",
    "log10",
    "log_softmax",
    "logical_and",
    "logical_not",
    "logical_or",
    "logsumexp",
    "masked_fill",
    "masked_select",
    "matmul",
    "max",
    "mean",
    "meshgrid",
    "min",
    "mm",
    "movedim",
    "mul",
    "multinomial",
    "narrow",
    "neg",
    "nonzero",
    "norm",
    "normal",
    "numel",
    "ones",
    "ones_like",
    "outer",
    "permute",
    "pow",
    "prod",
    "rand",
    "rand_like",
    "randint",
    "randn",
    "randn_like",
    "randperm",
    "reciprocal",
    "relu",
    "repeat_interleave",
    "reshape",
    "roll",
    "round",
    "rsqrt",
    "scatter",
    "scatter_add",
    "searchsorted",
    "sigmoid",
    "sign",
    "sin",
    "sinh",
    "softmax",
    "sort",
    "split",
    "sqrt",
    "square",
    "squeeze",
    "std",
    "sub",
    "sum",
    "swapaxes",
    "tanh",
    "tensor",
    "tile",
    "topk",
    "trace",
    "transpose",
    "tril",
    "triu",
    "trunc",
    "unbind",
    "unique",
    "unsqueeze",
    "var",
    "zeros",
    "zeros_like",
]


def is_tensor(obj) -> bool:
    """True for a tinygrad_edu Tensor (and Parameter), like `torch.is_tensor`."""
    return isinstance(obj, Tensor)


def numel(x: Tensor) -> int:
    return x.numel()


def as_tensor(data, dtype=None) -> Tensor:
    """A Tensor sharing memory with `data` when it already is one (or a numpy array of `dtype`)."""
    if isinstance(data, Tensor):
        return data if dtype is None else data.to(dtype)
    if isinstance(data, np.ndarray) and (dtype is None or np.dtype(dtype) == data.dtype):
        return Tensor._wrap(data)
    return Tensor(data, dtype=dtype)


# ---------------------------------------------------------------- elementwise


def _method(name: str, doc: str):
    """A module-level function that calls the Tensor method `name` (torch.exp(x) is x.exp())."""
    def call(x: Tensor, *args, **kwargs):
        return getattr(x, name)(*args, **kwargs)
    call.__name__ = call.__qualname__ = name
    call.__doc__ = doc
    return call


exp = _method("exp", "e ** x, elementwise.")
log = _method("log", "Natural logarithm, elementwise.")
sqrt = _method("sqrt", "Square root, elementwise.")
rsqrt = _method("rsqrt", "1 / sqrt(x), elementwise.")
abs = _method("abs", "|x|, elementwise.")
sigmoid = _method("sigmoid", "1 / (1 + exp(-x)), elementwise.")
tanh = _method("tanh", "Hyperbolic tangent, elementwise.")
relu = _method("relu", "max(x, 0), elementwise.")
square = _method("square", "x * x, elementwise.")
neg = _method("neg", "-x.")
reciprocal = _method("reciprocal", "1 / x.")
softmax = _method("softmax", "softmax along `dim`.")
log_softmax = _method("log_softmax", "log of softmax along `dim`, computed stably.")
clamp = _method("clamp", "Clip to [min, max]; either bound may be None.")
clip = clamp
isnan = _method("isnan", "True where x is NaN.")
isfinite = _method("isfinite", "True where x is finite.")
logsumexp = _method("logsumexp", "log(sum(exp(x), dim)), computed stably.")


def log1p(x: Tensor) -> Tensor:
    """log(1 + x), exact for small x."""
    return ops_extra.Log1p.apply(x)


def expm1(x: Tensor) -> Tensor:
    """exp(x) - 1, exact for small x."""
    return ops_extra.Expm1.apply(x)


def sin(x: Tensor) -> Tensor:
    return ops_extra.Sin.apply(x)


def cos(x: Tensor) -> Tensor:
    return ops_extra.Cos.apply(x)


def _piecewise(fn):
    def call(x: Tensor) -> Tensor:
        return ops_extra.Piecewise.apply(x, fn=fn)
    call.__name__ = fn.__name__
    call.__doc__ = f"np.{fn.__name__} elementwise; its gradient is zero, as in torch."
    return call


floor, ceil, round, trunc = _piecewise(np.floor), _piecewise(np.ceil), _piecewise(np.round), \
    _piecewise(np.trunc)
sign = _piecewise(np.sign)


def add(x, y, alpha: float = 1.0) -> Tensor:
    return _const(x, y).add(y, alpha=alpha)


def sub(x, y) -> Tensor:
    return _const(x, y) - y


def mul(x, y) -> Tensor:
    return _const(x, y) * y


def div(x, y) -> Tensor:
    return _const(x, y) / y


def pow(x, exponent) -> Tensor:
    return _const(x, exponent) ** exponent if isinstance(exponent, Tensor) else x ** exponent


def lerp(start: Tensor, end: Tensor, weight) -> Tensor:
    """start + weight * (end - start)."""
    return start + (end - start) * weight


# ---------------------------------------------------------------- reductions


def sum(x: Tensor, dim=None, keepdim: bool = False) -> Tensor:
    return x.sum(dim, keepdim)


def mean(x: Tensor, dim=None, keepdim: bool = False) -> Tensor:
    return x.mean(dim, keepdim)


def var(x: Tensor, dim=None, keepdim: bool = False, correction: int = 1, unbiased=None):
    return x.var(dim, keepdim, correction, unbiased)


def std(x: Tensor, dim=None, keepdim: bool = False, correction: int = 1, unbiased=None):
    return x.std(dim, keepdim, correction, unbiased)


def max(x: Tensor, dim=None, keepdim: bool = False):
    """`torch.max(x)`, `torch.max(x, dim)` -> (values, indices), or `torch.max(x, other)`."""
    if isinstance(dim, Tensor):
        return x.maximum(dim)
    return x.max(dim, keepdim)


def min(x: Tensor, dim=None, keepdim: bool = False):
    """`torch.min(x)`, `torch.min(x, dim)` -> (values, indices), or `torch.min(x, other)`."""
    if isinstance(dim, Tensor):
        return x.minimum(dim)
    return x.min(dim, keepdim)


def amax(x: Tensor, dim=None, keepdim: bool = False) -> Tensor:
    return x.amax(dim, keepdim)


def amin(x: Tensor, dim=None, keepdim: bool = False) -> Tensor:
    return x.amin(dim, keepdim)


def argmax(x: Tensor, dim=None, keepdim: bool = False) -> Tensor:
    return x.argmax(dim, keepdim)


def argmin(x: Tensor, dim=None, keepdim: bool = False) -> Tensor:
    return x.argmin(dim, keepdim)


def prod(x: Tensor, dim: int | None = None, keepdim: bool = False) -> Tensor:
    """Product of all elements, or along `dim`."""
    axis = None if dim is None else dim % x.ndim
    return ops_extra.Prod.apply(x, axis=axis, keepdims=keepdim and axis is not None)


def cumsum(x: Tensor, dim: int) -> Tensor:
    """Running sum along `dim`."""
    return ops_extra.Cumsum.apply(x, axis=dim % x.ndim)


def any(x: Tensor, dim: int | None = None, keepdim: bool = False) -> Tensor:
    return Tensor._wrap(np.asarray(x.array.any(axis=dim, keepdims=keepdim)))


def all(x: Tensor, dim: int | None = None, keepdim: bool = False) -> Tensor:
    return Tensor._wrap(np.asarray(x.array.all(axis=dim, keepdims=keepdim)))


def count_nonzero(x: Tensor, dim=None) -> Tensor:
    return Tensor._wrap(np.asarray(np.count_nonzero(x.array, axis=dim), np.int64))


def norm(x: Tensor, p="fro", dim=None, keepdim: bool = False) -> Tensor:
    """Vector p-norm (2 by default; 'fro' is 2 over all elements), inf / -inf for max / min |x|,
    like `torch.norm` and `Tensor.norm`."""
    if p == "fro" or p is None:
        p = 2
    if p == 2:  # sqrt(sum x^2); at a zero norm the gradient is 0, as in torch
        squared = (x * x).sum(dim, keepdim)
        positive = squared.array > 0
        return where(positive, where(positive, squared, 1.0).sqrt(), 0.0)
    if p == math.inf:
        return x.abs().amax(dim, keepdim)
    if p == -math.inf:
        return x.abs().amin(dim, keepdim)
    if p == 0:
        return Tensor._wrap(np.asarray((x.array != 0).sum(axis=_axes(dim, x.ndim),
                                                         keepdims=keepdim), x.dtype))
    if p == 1:
        return x.abs().sum(dim, keepdim)
    return (x.abs() ** p).sum(dim, keepdim) ** (1.0 / p)


# ---------------------------------------------------------------- linear algebra


def matmul(x: Tensor, y: Tensor) -> Tensor:
    return x.matmul(y)


def mm(x: Tensor, y: Tensor) -> Tensor:
    """Product of two matrices (2-D only, like torch.mm)."""
    if x.ndim != 2 or y.ndim != 2:
        raise RuntimeError(f"mm: expected two matrices, got shapes {x.shape} and {y.shape}; "
                           f"use matmul for other shapes")
    return x.matmul(y)


def bmm(x: Tensor, y: Tensor) -> Tensor:
    """Batched product of (B, N, M) and (B, M, P) (3-D only, like torch.bmm)."""
    if x.ndim != 3 or y.ndim != 3 or x.shape[0] != y.shape[0]:
        raise RuntimeError(f"bmm: expected (B, N, M) and (B, M, P), got shapes {x.shape} and "
                           f"{y.shape}")
    return x.matmul(y)


def dot(x: Tensor, y: Tensor) -> Tensor:
    if x.ndim != 1 or y.ndim != 1:
        raise RuntimeError(f"dot: expected two 1-D tensors, got shapes {x.shape} and {y.shape}")
    return x.matmul(y)


def outer(x: Tensor, y: Tensor) -> Tensor:
    return x.reshape(-1, 1) * y.reshape(1, -1)


def einsum(equation: str, *operands) -> Tensor:
    """Einstein summation, like `torch.einsum("ij,jk->ik", a, b)` (operands may be one list).

    Each label appears at most once per operand, and "..." is not supported.
    """
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = tuple(operands[0])
    equation = equation.replace(" ", "")
    if "..." in equation:
        raise NotImplementedError("einsum: '...' is not supported by tinygrad_edu; write the "
                                  "dimensions out with letters")
    inputs, arrow, output = equation.partition("->")
    inputs = inputs.split(",")
    if not arrow:  # implicit output: the labels seen once, in alphabetical order
        counts = "".join(inputs)
        output = "".join(sorted(c for c in set(counts) if counts.count(c) == 1))
    if len(inputs) != len(operands):
        raise RuntimeError(f"einsum: {equation!r} names {len(inputs)} operands, got "
                           f"{len(operands)}")
    for labels, t in zip(inputs, operands):
        if len(set(labels)) != len(labels) or not set(labels) <= set(string.ascii_letters):
            raise NotImplementedError(f"einsum: operand labels {labels!r}: each letter may "
                                      f"appear once per operand in tinygrad_edu")
        if len(labels) != t.ndim:
            raise RuntimeError(f"einsum: {labels!r} has {len(labels)} labels for an operand of "
                               f"shape {t.shape}")
    return ops_extra.Einsum.apply(*operands, inputs=tuple(inputs), output=output)


def tril(x: Tensor, diagonal: int = 0) -> Tensor:
    """The lower triangle of the last two dims (the rest zeroed)."""
    keep = np.tril(np.ones(x.shape[-2:], bool), diagonal)
    return where(keep, x, 0.0 if x.dtype.kind == "f" else 0)


def triu(x: Tensor, diagonal: int = 0) -> Tensor:
    keep = np.triu(np.ones(x.shape[-2:], bool), diagonal)
    return where(keep, x, 0.0 if x.dtype.kind == "f" else 0)


# ---------------------------------------------------------------- shape and indexing


def flatten(x: Tensor, start_dim: int = 0, end_dim: int = -1) -> Tensor:
    return x.flatten(start_dim, end_dim)


def reshape(x: Tensor, shape) -> Tensor:
    return x.reshape(shape)


def transpose(x: Tensor, dim0: int, dim1: int) -> Tensor:
    return x.transpose(dim0, dim1)


def permute(x: Tensor, dims) -> Tensor:
    return x.permute(dims)


def squeeze(x: Tensor, dim=None) -> Tensor:
    return x.squeeze(dim)


def unsqueeze(x: Tensor, dim: int) -> Tensor:
    return x.unsqueeze(dim)


def chunk(x: Tensor, chunks: int, dim: int = 0):
    return x.chunk(chunks, dim)


def split(x: Tensor, split_size, dim: int = 0):
    return x.split(split_size, dim)


def unbind(x: Tensor, dim: int = 0) -> tuple:
    """The slices along `dim`, each without that dim."""
    return x.unbind(dim)


def narrow(x: Tensor, dim: int, start: int, length: int) -> Tensor:
    return x.narrow(dim, start, length)


def concat(tensors: Sequence[Tensor], dim: int = 0) -> Tensor:
    return cat(tensors, dim)


def flip(x: Tensor, dims) -> Tensor:
    """Reverse the order of elements along `dims` (a copy, as in torch)."""
    dims = {d % x.ndim for d in ((dims,) if isinstance(dims, int) else dims)}
    return x[tuple(slice(None, None, -1) if d in dims else slice(None) for d in range(x.ndim))]


def roll(x: Tensor, shifts, dims=None) -> Tensor:
    """Shift elements along `dims` cyclically; without dims, over the flattened tensor."""
    if dims is None:
        return roll(x.flatten(), shifts, 0).reshape(x.shape)
    shifts = (shifts,) if isinstance(shifts, int) else tuple(shifts)
    dims = (dims,) if isinstance(dims, int) else tuple(dims)
    for shift, dim in zip(shifts, dims):
        n = x.shape[dim]
        order = (np.arange(n) - shift) % n
        x = index_select(x, dim, order)
    return x


def index_select(x: Tensor, dim: int, index) -> Tensor:
    """The entries of `index` (1-D) along `dim`."""
    idx = np.asarray(index.array if isinstance(index, Tensor) else index, np.int64)
    if idx.ndim != 1:
        raise IndexError(f"index_select: index must be 1-D, got shape {idx.shape}")
    dim = dim % x.ndim
    return x[(slice(None),) * dim + (idx,)]


def masked_fill(x: Tensor, mask, value) -> Tensor:
    """x with `value` where `mask` (broadcast to x) is True; no gradient flows to those places."""
    return x.masked_fill(mask, value)


def masked_select(x: Tensor, mask) -> Tensor:
    m = np.broadcast_to(np.asarray(mask.array if isinstance(mask, Tensor) else mask, bool),
                        x.shape)
    return x[np.nonzero(m)]


def gather(x: Tensor, dim: int, index) -> Tensor:
    return x.gather(dim, index)


def scatter(x: Tensor, dim: int, index, src=None, value=None, reduce: str | None = None):
    """x with src[i][j] (or `value`) written at index[i][j] along `dim`, out of place."""
    if reduce not in (None, "add"):
        raise NotImplementedError(f"scatter: reduce={reduce!r} is not supported; use 'add' or "
                                  f"None")
    if src is None:
        src = value
    idx = np.asarray(index.array if isinstance(index, Tensor) else index, np.int64)
    if idx.ndim == 0:  # torch reads a 0-d index (and src) as one element
        idx = idx.reshape(1)
        src = src.reshape(1) if isinstance(src, Tensor) else src
    if not isinstance(src, Tensor):
        src = Tensor._wrap(np.full(idx.shape, src, x.dtype))
    return ops_extra.Scatter.apply(x, src, index=idx, axis=dim % x.ndim, add=reduce == "add")


def scatter_add(x: Tensor, dim: int, index, src: Tensor) -> Tensor:
    return scatter(x, dim, index, src, reduce="add")


def nonzero(x: Tensor, as_tuple: bool = False):
    """(n, ndim) int64 indices of the non-zero elements, or one index tensor per dim."""
    found = np.nonzero(x.array)
    if as_tuple:
        return tuple(Tensor._wrap(i.astype(np.int64)) for i in found)
    return Tensor._wrap(np.stack(found, axis=1).astype(np.int64))


def argsort(x: Tensor, dim: int = -1, descending: bool = False, stable: bool = False) -> Tensor:
    """Indices that sort x along `dim` (stable, so ties keep their order)."""
    data = -x.array if descending and x.dtype.kind != "b" else x.array
    order = np.argsort(data, axis=dim, kind="stable")
    if descending and x.dtype.kind == "b":
        order = np.flip(np.argsort(x.array, axis=dim, kind="stable"), dim)
    return Tensor._wrap(order.astype(np.int64))


def sort(x: Tensor, dim: int = -1, descending: bool = False, stable: bool = False):
    """(values, indices) sorted along `dim`; gradients flow to the values' places."""
    indices = argsort(x, dim, descending)
    return ValuesIndices(x.gather(dim % x.ndim, indices), indices)


def topk(x: Tensor, k: int, dim: int = -1, largest: bool = True, sorted: bool = True):
    """(values, indices) of the k largest (or smallest) entries along `dim`, largest first."""
    if not 0 <= k <= x.shape[dim]:
        raise RuntimeError(f"topk: k={k} is out of range for dim {dim} of shape {x.shape}")
    indices = argsort(x, dim, descending=largest)
    dim = dim % x.ndim
    indices = Tensor._wrap(np.take(indices.array, range(k), axis=dim))
    return ValuesIndices(x.gather(dim, indices), indices)


def bincount(x: Tensor, weights=None, minlength: int = 0) -> Tensor:
    w = None if weights is None else np.asarray(getattr(weights, "data", weights))
    return Tensor._wrap(np.bincount(x.array, w, minlength))


def equal(x: Tensor, y: Tensor) -> bool:
    return x.shape == y.shape and bool((x.array == y.array).all())


def allclose(x: Tensor, y, rtol: float = 1e-5, atol: float = 1e-8) -> bool:
    return x.allclose(y, rtol, atol)


# ---------------------------------------------------------------- random, with torch's overloads


def randint(*args, size=None, generator: Generator | None = None, dtype=np.int64,
            requires_grad: bool = False) -> Tensor:
    """`randint(high, size)` or `randint(low, high, size)`: integers in [low, high)."""
    if size is None:
        *bounds, size = args
    else:
        bounds = list(args)
    low, high = (0, bounds[0]) if len(bounds) == 1 else bounds
    size = (size,) if isinstance(size, int) else tuple(size)
    return Tensor._wrap(rng_of(generator).integers(low, high, size).astype(dtype))


def randperm(n: int, generator: Generator | None = None, dtype=np.int64) -> Tensor:
    """A random permutation of 0..n-1."""
    return Tensor._wrap(rng_of(generator).permutation(n).astype(dtype))


def multinomial(probs: Tensor, num_samples: int, replacement: bool = False,
                generator: Generator | None = None) -> Tensor:
    """Class indices drawn with the given (unnormalised) weights; rows are independent."""
    rng = rng_of(generator)
    p = np.atleast_2d(probs.array.astype(np.float64))
    rows = [rng.choice(p.shape[1], num_samples, replace=replacement, p=row / row.sum())
            for row in p]
    out = np.asarray(rows, np.int64)
    return Tensor._wrap(out if probs.ndim == 2 else out[0])


def bernoulli(probs: Tensor, generator: Generator | None = None) -> Tensor:
    return Tensor._wrap((rng_of(generator).random(probs.shape) < probs.array).astype(probs.dtype))


def normal(mean, std, size=None, generator: Generator | None = None) -> Tensor:
    """Draws from N(mean, std): tensors broadcast, or numbers with a `size`."""
    m, s = np.asarray(getattr(mean, "data", mean)), np.asarray(getattr(std, "data", std))
    shape = tuple(size) if size is not None else np.broadcast_shapes(m.shape, s.shape)
    dtype = next((t.dtype for t in (mean, std) if isinstance(t, Tensor)), np.float32)
    return Tensor._wrap((m + s * rng_of(generator).standard_normal(shape)).astype(dtype))


def isinf(x: Tensor) -> Tensor:
    """True where x is +inf or -inf."""
    return Tensor._wrap(np.isinf(x.array))


# ---------------------------------------------------------------- more of torch's namespace


finfo, iinfo = np.finfo, np.iinfo   # torch.finfo(torch.float32).eps: numpy's answers are torch's
logical_not = _method("logical_not", "Elementwise not (no gradient).")
logical_and = _method("logical_and", "Elementwise and (no gradient).")
logical_or = _method("logical_or", "Elementwise or (no gradient).")


def is_floating_point(x: Tensor) -> bool:
    return x.dtype.kind == "f"


def clamp_min(x: Tensor, min: float) -> Tensor:
    return x.clamp(min=min)


def clamp_max(x: Tensor, max: float) -> Tensor:
    return x.clamp(max=max)


def log2(x: Tensor) -> Tensor:
    return x.log() / math.log(2)


def log10(x: Tensor) -> Tensor:
    return x.log() / math.log(10)


def sinh(x: Tensor) -> Tensor:
    return (x.exp() - (-x).exp()) / 2


def cosh(x: Tensor) -> Tensor:
    return (x.exp() + (-x).exp()) / 2


def broadcast_to(x: Tensor, shape) -> Tensor:
    return x.expand(tuple(shape))


def swapaxes(x: Tensor, dim0: int, dim1: int) -> Tensor:
    return x.transpose(dim0, dim1)


def movedim(x: Tensor, source: int, destination: int) -> Tensor:
    """Move dim `source` to position `destination`, the others keeping their order."""
    order = [d for d in range(x.ndim) if d != source % x.ndim]
    order.insert(destination % x.ndim, source % x.ndim)
    return x.permute(order)


def tile(x: Tensor, dims) -> Tensor:
    """`repeat`, with dims padded with ones in front when shorter than x's, as in torch."""
    dims = tuple(dims)
    return x.repeat((1,) * (x.ndim - len(dims)) + dims)


def repeat_interleave(x: Tensor, repeats, dim: int | None = None) -> Tensor:
    """Each element (along `dim`; of the flattened x without one) repeated `repeats` times."""
    if dim is None:
        x, dim = x.flatten(), 0
    counts = np.asarray(getattr(repeats, "data", repeats))
    return index_select(x, dim, np.repeat(np.arange(x.shape[dim]), counts))


def meshgrid(*tensors, indexing: str = "ij") -> tuple:
    """Coordinate grids of 1-D tensors; indexing 'ij' (matrix) or 'xy' (Cartesian)."""
    if len(tensors) == 1 and isinstance(tensors[0], (list, tuple)):
        tensors = tuple(tensors[0])
    if indexing not in ("ij", "xy"):
        raise ValueError(f"meshgrid: indexing must be 'ij' or 'xy', got {indexing!r}")
    shape = [t.numel() for t in tensors]
    if indexing == "xy" and len(tensors) > 1:
        shape[0], shape[1] = shape[1], shape[0]
    grids = []
    for k, t in enumerate(tensors):
        axis = (1 - k if k < 2 else k) if indexing == "xy" and len(tensors) > 1 else k
        view = [1] * len(tensors)
        view[axis] = -1
        grids.append(t.reshape(view).expand(shape))
    return tuple(grids)


def diag(x: Tensor, diagonal: int = 0) -> Tensor:
    """A 1-D x as the `diagonal`-th diagonal of a square matrix; a 2-D x's diagonal."""
    if x.ndim == 1:
        n = x.shape[0] + builtins.abs(diagonal)
        rows = np.arange(x.shape[0]) + builtins.max(-diagonal, 0)
        cols = np.arange(x.shape[0]) + builtins.max(diagonal, 0)
        return scatter(Tensor._wrap(np.zeros(n * n, x.dtype)), 0,
                       Tensor._wrap(rows * n + cols), x).reshape(n, n)
    if x.ndim == 2:
        return diagonal_of(x, diagonal)
    raise RuntimeError(f"diag: expected a 1-D or 2-D tensor, got shape {x.shape}")


def diagonal_of(x: Tensor, offset: int = 0) -> Tensor:
    """The `offset`-th diagonal of the last two dims of x."""
    h, w = x.shape[-2:]
    rows = np.arange(builtins.max(-offset, 0), builtins.min(h, w - offset))
    return x[..., rows, rows + offset]


def trace(x: Tensor) -> Tensor:
    return diagonal_of(x).sum()


def cdist(x1: Tensor, x2: Tensor, p: float = 2.0) -> Tensor:
    """Pairwise p-norm distances between the rows of x1 (..., P, M) and x2 (..., R, M)."""
    return norm(x1.unsqueeze(-2) - x2.unsqueeze(-3), p, dim=-1)


def isclose(x: Tensor, y, rtol: float = 1e-5, atol: float = 1e-8, equal_nan: bool = False):
    return Tensor._wrap(np.isclose(x.array, np.asarray(getattr(y, "data", y)), rtol, atol,
                                   equal_nan))


def unique(x: Tensor, sorted: bool = True, return_inverse: bool = False,
           return_counts: bool = False, dim: int | None = None):
    """The distinct values (sorted), and optionally the inverse indices and the counts."""
    if dim is not None:
        raise NotImplementedError("unique: dim is not supported by tinygrad_edu")
    values, inverse, counts = np.unique(x.array, return_inverse=True, return_counts=True)
    out = [Tensor._wrap(values)]
    if return_inverse:
        out.append(Tensor._wrap(inverse.reshape(x.shape).astype(np.int64)))
    if return_counts:
        out.append(Tensor._wrap(counts.astype(np.int64)))
    return out[0] if len(out) == 1 else tuple(out)


def searchsorted(sorted_sequence: Tensor, values, right: bool = False) -> Tensor:
    side = "right" if right else "left"
    v = np.asarray(getattr(values, "data", values))
    return Tensor._wrap(np.searchsorted(sorted_sequence.array, v, side).astype(np.int64))


def bucketize(values: Tensor, boundaries: Tensor, right: bool = False) -> Tensor:
    """Index of the bucket of each value: boundaries[i-1] < v <= boundaries[i] (right=False)."""
    return searchsorted(boundaries, values, right=right)


# ---------------------------------------------------------------- creation with torch's device=


def _on_device(fn):
    """`fn` taking torch's `device=` (only the CPU exists: others raise), `pin_memory=` and
    `layout=` (accepted: there is one memory and one layout)."""
    @functools.wraps(fn)
    def create(*args, device=None, pin_memory: bool = False, layout=None, **kwargs):
        check_cpu(device)
        return fn(*args, **kwargs)
    return create


def _seeded(fn, draw: str):
    """`fn(*shape)` drawing from a Generator when one is given (`torch.randn(3, generator=g)`)."""
    @functools.wraps(fn)
    def create(*shape, generator: Generator | None = None, dtype=None,
               requires_grad: bool = False):
        if generator is None:
            return fn(*shape, dtype=dtype, requires_grad=requires_grad)
        size = tuple(shape[0]) if len(shape) == 1 and isinstance(shape[0], (tuple, list)) \
            else shape
        values = getattr(generator.rng, draw)(size)
        return tensor_(values, dtype=get_default_dtype() if dtype is None else dtype,
                       requires_grad=requires_grad)
    return create


tensor, zeros, ones, empty, full, arange, linspace, eye = (
    _on_device(tensor_), _on_device(zeros_), _on_device(ones_), _on_device(empty_),
    _on_device(full_), _on_device(arange_), _on_device(linspace_), _on_device(eye_))
rand = _on_device(_seeded(rand_, "random"))
randn = _on_device(_seeded(randn_, "standard_normal"))
zeros_like, ones_like, empty_like, full_like, rand_like, randn_like = (
    _on_device(zeros_like_), _on_device(ones_like_), _on_device(empty_like_),
    _on_device(full_like_), _on_device(rand_like_), _on_device(randn_like_))
randint, randperm = _on_device(randint), _on_device(randperm)
