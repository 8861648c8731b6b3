"""Tensor: a numpy array with a gradient, the op that made it, and PyTorch's methods."""
from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import NamedTuple

import numpy as np

from . import autograd, inplace, ops
from .autograd import Function
from .device import dtype_of_to
from .random import get_rng

_default_dtype = np.dtype(np.float32)


def set_default_dtype(dtype) -> None:
    """Floating dtype for new tensors (float32 unless changed), like `torch.set_default_dtype`."""
    global _default_dtype
    dtype = np.dtype(dtype)
    if dtype.kind != "f":
        raise TypeError(f"set_default_dtype: only floating dtypes are allowed, got {dtype}")
    _default_dtype = dtype


def get_default_dtype() -> np.dtype:
    return _default_dtype


def _as_array(data, dtype) -> np.ndarray:
    """numpy array of `data`; floats become the default dtype unless `dtype` says otherwise."""
    if dtype is not None:
        return np.asarray(data, dtype=np.dtype(dtype))
    arr = np.asarray(data)
    if arr.dtype.kind not in "biuf":
        _refuse_dtype(arr)
    if arr.dtype.kind == "f" and arr.dtype != _default_dtype:
        arr = arr.astype(_default_dtype)
    return arr


def check_float_input(layer: str, x: Tensor, weight: Tensor) -> None:
    """A layer with floating weights refuses an integer or bool input, naming itself and both
    dtypes (torch refuses too; numpy would silently compute in the input's dtype)."""
    if x.array.dtype.kind != "f" and weight.array.dtype.kind == "f":
        raise TypeError(f"{layer}: input of dtype {x.array.dtype} but weights of dtype "
                        f"{weight.array.dtype}; convert the input first, e.g. x.float()")


def _refuse_dtype(arr: np.ndarray) -> None:
    """torch's refusals of data that is not numbers: strings, None and other objects."""
    kind = arr.dtype.kind
    if kind in "USa":
        raise TypeError("tensor: invalid data type 'str': a tensor holds numbers or bools only")
    if kind == "c":
        raise TypeError("tensor: complex numbers are not supported by tinygrad_edu")
    items = arr.reshape(-1).tolist() if kind == "O" else []
    bad = next((v for v in items if not isinstance(v, (bool, int, float, np.generic))), None)
    raise RuntimeError(f"tensor: could not infer dtype of {type(bad).__name__} (a tensor holds "
                       f"numbers or bools only)")


def _axes(dim, ndim: int):
    """Normalise a dim argument (None, int or sequence) to None or a sorted tuple of axes."""
    if dim is None:
        return None
    dims = (dim,) if isinstance(dim, (int, np.integer)) else tuple(dim)
    return tuple(sorted(d % ndim if ndim else 0 for d in dims))


class Tensor:
    """An n-dimensional array that records the ops applied to it, for reverse-mode autograd.

        x = tg.tensor([1.0, 2.0], requires_grad=True)
        (x * x).sum().backward();  x.grad  # tensor([2., 4.])
    """

    __slots__ = ("__weakref__", "_ctx", "_hooks", "_retain", "_vc", "_view", "array", "grad",
                 "requires_grad")
    __array_priority__ = 1000  # numpy defers `ndarray op Tensor` to Tensor's reflected ops

    def __init__(self, data, dtype=None, requires_grad: bool = False):
        self.array = _as_array(data.array if isinstance(data, Tensor) else data, dtype)
        self.grad: Tensor | None = None
        self._ctx = self._view = self._hooks = None
        self._retain = False
        self._vc = autograd.Version()
        self.requires_grad = False
        if requires_grad:
            self.requires_grad_(True)

    @classmethod
    def _wrap(cls, arr: np.ndarray) -> Tensor:
        """Wrap an array with no copy, no conversion and no graph (the fast internal path)."""
        t = Tensor.__new__(Tensor)
        if type(arr) is not np.ndarray:  # numpy returns scalars for 0-d results; keep arrays
            arr = np.asarray(arr)
        t.array, t.grad, t._ctx, t._retain, t.requires_grad = arr, None, None, False, False
        t._view = t._hooks = None
        t._vc = autograd.Version()
        return t

    @classmethod
    def _from_node(cls, arr: np.ndarray, node: Function) -> Tensor:
        """A tensor standing for the output of graph node `node` (double backward's view of a
        saved value): gradients that reach it flow into the node."""
        t = Tensor._wrap(arr)
        t._ctx, t.requires_grad = node, True
        return t

    # ------------------------------------------------------------ properties
    @property
    def data(self) -> Tensor:
        """torch's `.data`: the same memory as a Tensor outside the graph, with a version counter
        of its own, so autograd does not see writes through it (`w.data.normal_(0, 0.02)`,
        `p.data -= lr * p.grad.data`); `detach()` shares the counter and is the safe choice.
        `.array` is the numpy array itself."""
        return Tensor._wrap(self.array)

    @data.setter
    def data(self, value: Tensor) -> None:
        """`t.data = other`: t now holds other's memory (any shape), keeping its own graph
        flags."""
        if not isinstance(value, Tensor):
            raise TypeError(f"data has to be a Tensor, but got {type(value).__name__}; wrap "
                            f"it first: t.data = tg.as_tensor(value)")
        self.array = value.array

    @property
    def shape(self) -> tuple:
        return self.array.shape

    @property
    def ndim(self) -> int:
        return self.array.ndim

    @property
    def dtype(self) -> np.dtype:
        return self.array.dtype

    @property
    def T(self) -> Tensor:
        return self.permute(*reversed(range(self.ndim)))

    @property
    def mT(self) -> Tensor:
        return self.transpose(-2, -1)

    @property
    def is_leaf(self) -> bool:
        self._sync_view()
        return self._ctx is None

    @property
    def grad_fn(self):
        self._sync_view()
        return self._ctx

    @property
    def _version(self) -> int:
        """How many in-place ops changed this tensor's memory (shared with its views)."""
        return self._vc.value

    @property
    def _base(self) -> Tensor | None:
        """The tensor this one is a view of, as `torch.Tensor._base`."""
        return None if self._view is None else self._view[0]

    def _is_view(self) -> bool:
        return self._view is not None

    def size(self, dim: int | None = None):
        return self.shape if dim is None else self.shape[dim]

    def numel(self) -> int:
        return self.array.size

    def dim(self) -> int:
        return self.ndim

    def __len__(self) -> int:
        return len(self.array)

    def __repr__(self) -> str:
        body = np.array2string(self.array, separator=", ", precision=4, prefix="tensor(")
        extra = ""
        if self.array.dtype not in (_default_dtype, np.int64, np.bool_):
            extra += f", dtype={self.array.dtype}"
        if self._ctx is not None:
            extra += f", grad_fn=<{type(self._ctx).__name__}Backward>"
        elif self.requires_grad:
            extra += ", requires_grad=True"
        return f"tensor({body}{extra})"

    __hash__ = object.__hash__

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    def __bool__(self) -> bool:
        return bool(self.array)

    def __float__(self) -> float:
        return float(self.array)

    def __int__(self) -> int:
        return int(self.array)

    def __index__(self) -> int:
        return int(self.array)

    def __array__(self, dtype=None, copy=None):
        return self.array if dtype is None else self.array.astype(dtype)

    # ------------------------------------------------------------ autograd
    def requires_grad_(self, requires_grad: bool = True) -> Tensor:
        if requires_grad and self.array.dtype.kind != "f":
            raise RuntimeError(f"requires_grad: only floating point tensors can require "
                               f"gradients, got a tensor of dtype {self.array.dtype}; convert it "
                               f"first with .float()")
        if not requires_grad and self._ctx is not None:
            raise RuntimeError("requires_grad_(False): you can only change requires_grad flags "
                               "of leaf variables; use .detach() for a tensor without a graph")
        self.requires_grad = requires_grad
        return self

    def backward(self, gradient=None, retain_graph: bool | None = None,
                 create_graph: bool = False, inputs=None) -> None:
        """Accumulate d(self)/d(leaf) into `.grad` of every leaf that requires grad.

        create_graph=True records the backward pass itself, so `.grad` can be differentiated
        again (Hessian-vector products, gradient penalties); `inputs` limits the accumulation
        to those tensors, as in torch.
        """
        self._sync_view()
        autograd.backward([self], [gradient], retain_graph, create_graph, inputs)

    def retain_grad(self) -> None:
        """Keep `.grad` on this non-leaf tensor after backward (e.g. for Grad-CAM)."""
        self._sync_view()
        self._retain = True
        if self._ctx is not None:  # the graph holds nodes: the node hands the gradient over
            self._ctx.retained = self

    @property
    def retains_grad(self) -> bool:
        return self._ctx is not None and self._retain

    def register_hook(self, hook) -> autograd.RemovableHandle:
        """`hook(grad) -> Tensor | None` runs when this tensor's gradient is computed, before it
        is accumulated or passed on; a returned tensor replaces the gradient. Returns a handle
        whose `remove()` unregisters it (like `torch.Tensor.register_hook`)."""
        self._sync_view()
        if not self.requires_grad:
            raise RuntimeError("register_hook: cannot register a hook on a tensor that doesn't "
                               "require gradient")
        if self._ctx is None:
            self._hooks, handle = autograd.add_hook(self._hooks, hook)
        else:
            self._ctx.hooks, handle = autograd.add_hook(self._ctx.hooks, hook)
        return handle

    def detach(self) -> Tensor:
        """The same memory without a graph; it shares the version counter, so an in-place write
        to either is seen by backward's checks (as in torch)."""
        t = Tensor._wrap(self.array)
        t._vc = self._vc
        return t

    def detach_(self) -> Tensor:
        if self._view is not None:
            raise RuntimeError("detach_: can't detach views in-place; use detach() instead")
        self._ctx, self.requires_grad = None, False
        return self

    def clone(self) -> Tensor:
        return ops_reshape(self, self.shape, copy=True)

    def _sync_view(self) -> None:
        inplace.sync_view(self)

    # ------------------------------------------------------------ conversion
    def numpy(self, force: bool = False) -> np.ndarray:
        """The array itself (shared memory, like torch); refused while the tensor requires grad,
        so that a write to it cannot bypass autograd: use `.detach().numpy()`."""
        if self.requires_grad and not force:
            raise RuntimeError("Can't call numpy() on Tensor that requires grad. Use "
                               "tensor.detach().numpy() instead.")
        return self.array

    def item(self):
        if self.array.size != 1:
            raise ValueError(f"item: only one-element tensors can be converted, got shape "
                             f"{self.shape}")
        return self.array.item()

    def tolist(self):
        return self.array.tolist()

    def to(self, *args, dtype=None, device=None, non_blocking: bool = False,
           copy: bool = False) -> Tensor:
        """Cast to a dtype (a Cast in the graph when it needs grad), like torch's `to`; it also
        takes a device (only the CPU exists: others raise) or a tensor, whose dtype it takes."""
        dtype = dtype_of_to(args, dtype, device)
        if dtype is None or np.dtype(dtype) == self.array.dtype:
            return self.clone() if copy else self
        dtype = np.dtype(dtype)
        if self.requires_grad and dtype.kind == "f":
            return ops.Cast.apply(self, dtype=dtype)
        return Tensor._wrap(self.array.astype(dtype))

    def type(self, dtype) -> Tensor:
        return self.to(dtype)

    def float(self) -> Tensor:
        return self.to(np.float32)

    def double(self) -> Tensor:
        return self.to(np.float64)

    def long(self) -> Tensor:
        return self.to(np.int64)

    def int(self) -> Tensor:
        return self.to(np.int32)

    def bool(self) -> Tensor:
        return self.to(np.bool_)

    # ------------------------------------------------------------ in-place ops (recorded)
    def _inplace(self, op: str, compute) -> Tensor:
        return inplace.apply(self, op, compute)

    def _setitem(self, index, value, op: str) -> Tensor:
        """`self[index] = value` through autograd (value broadcast and cast to self's dtype)."""
        index = _index(index)
        if isinstance(value, Tensor):
            v = value.to(self.array.dtype)
        else:
            try:
                v = Tensor._wrap(np.asarray(value, dtype=self.array.dtype))
            except (TypeError, ValueError):
                raise TypeError(f"{op}: can't assign a {type(value).__name__} to a tensor of "
                                f"dtype {self.array.dtype}") from None
        return self._inplace(op, lambda s: ops.IndexPut.apply(s, v, index=index))

    def __setitem__(self, index, value) -> None:
        self._setitem(index, value, "__setitem__")

    def zero_(self) -> Tensor:
        return self._setitem(Ellipsis, 0, "zero_")

    def fill_(self, value) -> Tensor:
        if isinstance(value, Tensor) and value.ndim:
            raise RuntimeError(f"fill_: only supports 0-dimension value tensor but got tensor "
                               f"with {value.ndim} dimensions")
        return self._setitem(Ellipsis, value, "fill_")

    def copy_(self, src) -> Tensor:
        """Copy src's values (broadcast, cast) into self; the gradient flows to src."""
        src = src if isinstance(src, Tensor) else Tensor(src)
        try:
            np.broadcast_shapes(src.shape, self.shape)
        except ValueError:
            raise RuntimeError(f"copy_: the size of src {list(src.shape)} must be broadcastable "
                               f"to {list(self.shape)}") from None
        return self._setitem(Ellipsis, src, "copy_")

    def masked_fill_(self, mask, value) -> Tensor:
        """Write `value` where `mask` (a bool tensor broadcast to self's shape) is True."""
        m = np.asarray(mask.array if isinstance(mask, Tensor) else mask)
        if m.dtype != np.bool_:
            raise RuntimeError(f"masked_fill_: expected a bool mask, got dtype {m.dtype}")
        if isinstance(value, Tensor) and value.ndim:
            raise RuntimeError(f"masked_fill_: only supports a 0-dimensional value tensor, but "
                               f"got one with {value.ndim} dimension(s)")
        try:
            m = np.broadcast_to(m, self.shape)
        except ValueError:
            raise RuntimeError(f"masked_fill_: the mask of shape {list(m.shape)} must be "
                               f"broadcastable to {list(self.shape)}") from None
        return self._setitem(m, value, "masked_fill_")

    def masked_fill(self, mask, value) -> Tensor:
        return self.clone().masked_fill_(mask, value)

    def uniform_(self, a: float = 0.0, b: float = 1.0) -> Tensor:
        return self._setitem(Ellipsis, get_rng().uniform(a, b, self.shape), "uniform_")

    def normal_(self, mean: float = 0.0, std: float = 1.0) -> Tensor:
        return self._setitem(Ellipsis, get_rng().normal(mean, std, self.shape), "normal_")

    def add_(self, other, alpha: float = 1.0) -> Tensor:
        other = other if alpha == 1 else other * alpha
        return self._inplace("add_", lambda s: s + other)

    def sub_(self, other, alpha: float = 1.0) -> Tensor:
        other = other if alpha == 1 else other * alpha
        return self._inplace("sub_", lambda s: s - other)

    def mul_(self, other) -> Tensor:
        return self._inplace("mul_", lambda s: s * other)

    def div_(self, other) -> Tensor:
        return self._inplace("div_", lambda s: s / other)

    def pow_(self, exponent) -> Tensor:
        return self._inplace("pow_", lambda s: s ** exponent)

    def addcmul_(self, tensor1, tensor2, value: float = 1.0) -> Tensor:
        step = tensor1 * tensor2 * value
        return self._inplace("addcmul_", lambda s: s + step)

    def addcdiv_(self, tensor1, tensor2, value: float = 1.0) -> Tensor:
        step = tensor1 / tensor2 * value
        return self._inplace("addcdiv_", lambda s: s + step)

    def lerp_(self, end, weight) -> Tensor:
        return self._inplace("lerp_", lambda s: s + (end - s) * weight)

    def clamp_(self, min=None, max=None) -> Tensor:
        return self._inplace("clamp_", lambda s: s.clamp(min, max))

    clip_ = clamp_

    def clamp_min_(self, min) -> Tensor:
        return self._inplace("clamp_min_", lambda s: s.clamp(min, None))

    def clamp_max_(self, max) -> Tensor:
        return self._inplace("clamp_max_", lambda s: s.clamp(None, max))

    def neg_(self) -> Tensor:
        return self._inplace("neg_", lambda s: -s)

    def exp_(self) -> Tensor:
        return self._inplace("exp_", lambda s: s.exp())

    def log_(self) -> Tensor:
        return self._inplace("log_", lambda s: s.log())

    def sqrt_(self) -> Tensor:
        return self._inplace("sqrt_", lambda s: s.sqrt())

    def rsqrt_(self) -> Tensor:
        return self._inplace("rsqrt_", lambda s: s.rsqrt())

    def abs_(self) -> Tensor:
        return self._inplace("abs_", lambda s: s.abs())

    def square_(self) -> Tensor:  # as s ** 2: s * s would pass self as the other operand too
        return self._inplace("square_", lambda s: s ** 2)

    def reciprocal_(self) -> Tensor:
        return self._inplace("reciprocal_", lambda s: s ** -1)

    def sign_(self) -> Tensor:
        return self._inplace("sign_", lambda s: s.sign())

    def relu_(self) -> Tensor:
        return self._inplace("relu_", lambda s: s.relu())

    def leaky_relu_(self, negative_slope: float = 0.01) -> Tensor:
        return self._inplace("leaky_relu_", lambda s: s.leaky_relu(negative_slope))

    def sigmoid_(self) -> Tensor:
        return self._inplace("sigmoid_", lambda s: s.sigmoid())

    def tanh_(self) -> Tensor:
        return self._inplace("tanh_", lambda s: s.tanh())

    def log1p_(self) -> Tensor:
        return self._inplace("log1p_", lambda s: s.log1p())

    def expm1_(self) -> Tensor:
        return self._inplace("expm1_", lambda s: s.expm1())

    def sin_(self) -> Tensor:
        return self._inplace("sin_", lambda s: s.sin())

    def cos_(self) -> Tensor:
        return self._inplace("cos_", lambda s: s.cos())

    def floor_(self) -> Tensor:
        return self._inplace("floor_", lambda s: s.floor())

    def ceil_(self) -> Tensor:
        return self._inplace("ceil_", lambda s: s.ceil())

    def round_(self) -> Tensor:
        return self._inplace("round_", lambda s: s.round())

    def trunc_(self) -> Tensor:
        return self._inplace("trunc_", lambda s: s.trunc())

    def tril_(self, diagonal: int = 0) -> Tensor:
        return self._inplace("tril_", lambda s: s.tril(diagonal))

    def triu_(self, diagonal: int = 0) -> Tensor:
        return self._inplace("triu_", lambda s: s.triu(diagonal))

    def cumsum_(self, dim: int) -> Tensor:
        return self._inplace("cumsum_", lambda s: s.cumsum(dim))

    def index_fill_(self, dim: int, index, value) -> Tensor:
        """Fill the entries at `index` along `dim` with `value` (a number or a 0-d tensor)."""
        return self._setitem(_along(dim % self.ndim, index), value, "index_fill_")

    def index_copy_(self, dim: int, index, source: Tensor) -> Tensor:
        """Copy source's slices into the slices `index` of `dim` (as torch.index_copy_)."""
        return self._setitem(_along(dim % self.ndim, index), source, "index_copy_")

    def index_add_(self, dim: int, index, source: Tensor, alpha: float = 1.0) -> Tensor:
        """Add alpha * source's slices into the slices `index` of `dim`; repeated indices add
        up (as torch.index_add_)."""
        return self._inplace("index_add_", lambda s: s.index_add(dim, index, source, alpha))

    def index_add(self, dim: int, index, source: Tensor, alpha: float = 1.0) -> Tensor:
        dim = dim % self.ndim
        idx = np.asarray(index.array if isinstance(index, Tensor) else index)
        shape = [1] * source.ndim
        shape[dim] = -1
        full = np.broadcast_to(idx.reshape(shape), source.shape)  # index of every source entry
        return self.scatter_add(dim, Tensor._wrap(np.ascontiguousarray(full)),
                                source if alpha == 1 else source * alpha)

    def index_fill(self, dim: int, index, value) -> Tensor:
        return self.clone().index_fill_(dim, index, value)

    def index_copy(self, dim: int, index, source: Tensor) -> Tensor:
        return self.clone().index_copy_(dim, index, source)

    def __iadd__(self, other):
        return self.add_(other)

    def __isub__(self, other):
        return self.sub_(other)

    def __imul__(self, other):
        return self.mul_(other)

    def __itruediv__(self, other):
        return self.div_(other)

    def __ipow__(self, other):
        return self.pow_(other)

    # ------------------------------------------------------------ arithmetic
    def __add__(self, other):
        return ops.Add.apply(*_operands(self, other))

    def __radd__(self, other):
        return ops.Add.apply(*_operands(self, other, reverse=True))

    def __sub__(self, other):
        return ops.Sub.apply(*_operands(self, other))

    def __rsub__(self, other):
        return ops.Sub.apply(*_operands(self, other, reverse=True))

    def __mul__(self, other):
        return ops.Mul.apply(*_operands(self, other))

    def __rmul__(self, other):
        return ops.Mul.apply(*_operands(self, other, reverse=True))

    def __truediv__(self, other):
        return ops.Div.apply(*_operands(self, other, floating=True))

    def __rtruediv__(self, other):
        return ops.Div.apply(*_operands(self, other, floating=True, reverse=True))

    def __pow__(self, other):
        return ops.Pow.apply(*_operands(self, other))

    def __rpow__(self, other):
        return ops.Pow.apply(*_operands(self, other, reverse=True))

    def __neg__(self):
        return ops.Neg.apply(self)

    def __matmul__(self, other):
        return self.matmul(other)

    def __rmatmul__(self, other):
        return _const(other, self).matmul(self)

    def add(self, other, alpha: float = 1.0):
        return self + (other if alpha == 1 else other * alpha)

    def sub(self, other):
        return self - other

    def mul(self, other):
        return self * other

    def div(self, other):
        return self / other

    def pow(self, exponent):
        return self ** exponent

    def neg(self):
        return -self

    def matmul(self, other: Tensor) -> Tensor:
        """Matrix product with numpy/PyTorch rules (1-D, 2-D, batched and broadcast)."""
        other = _const(other, self)
        a, b = self.shape, other.shape
        if not a or not b:
            raise RuntimeError(f"matmul: both arguments need at least 1 dimension, got {a} and {b}")
        if (self.array.dtype.kind == "f") != (other.array.dtype.kind == "f"):
            raise TypeError(f"matmul: expected both operands to have the same dtype, got "
                            f"{self.array.dtype} and {other.array.dtype}; convert one with "
                            f".float() or .to(...)")
        k_a, k_b = a[-1], (b[0] if len(b) == 1 else b[-2])
        if k_a != k_b:
            raise RuntimeError(f"matmul: shapes {a} and {b} cannot be multiplied "
                               f"({k_a} != {k_b} in the contracted dimension)")
        try:
            return ops.MatMul.apply(self, other)
        except ValueError:  # the only other failure: batch dims; checked here at no cost
            raise RuntimeError(f"matmul: the batch dimensions of shapes {a} and {b} do not "
                               f"broadcast") from None

    def dot(self, other):
        return self.matmul(other)

    # ------------------------------------------------------------ comparisons (no gradient)
    def _compare(self, other, fn) -> Tensor:
        if not isinstance(other, (Tensor, np.ndarray, np.generic, int, float, bool, list, tuple)):
            return NotImplemented  # let the other side answer (pytest.approx, ...)
        return Tensor._wrap(np.asarray(fn(self.array, other.array if isinstance(other, Tensor)
                                          else other)))

    def __eq__(self, other):
        return self._compare(other, np.equal)

    def __ne__(self, other):
        return self._compare(other, np.not_equal)

    def __lt__(self, other):
        return self._compare(other, np.less)

    def __le__(self, other):
        return self._compare(other, np.less_equal)

    def __gt__(self, other):
        return self._compare(other, np.greater)

    def __ge__(self, other):
        return self._compare(other, np.greater_equal)

    def eq(self, other):
        return self == other

    def ne(self, other):
        return self != other

    def lt(self, other):
        return self < other

    def le(self, other):
        return self <= other

    def gt(self, other):
        return self > other

    def ge(self, other):
        return self >= other

    def __and__(self, other):
        return self._compare(other, np.logical_and)

    def __or__(self, other):
        return self._compare(other, np.logical_or)

    def __xor__(self, other):
        return self._compare(other, np.logical_xor)

    def __invert__(self):
        return Tensor._wrap(np.logical_not(self.array) if self.array.dtype == np.bool_
                            else np.invert(self.array))

    def logical_and(self, other):
        return self & other

    def logical_or(self, other):
        return self | other

    def logical_xor(self, other):
        return self ^ other

    def logical_not(self):
        return Tensor._wrap(np.logical_not(self.array))

    def isnan(self):
        return Tensor._wrap(np.isnan(self.array))

    def isfinite(self):
        return Tensor._wrap(np.isfinite(self.array))

    def all(self, dim=None, keepdim: bool = False) -> Tensor:
        return Tensor._wrap(np.asarray(self.array.all(axis=_axes(dim, self.ndim),
                                                     keepdims=keepdim)))

    def any(self, dim=None, keepdim: bool = False) -> Tensor:
        return Tensor._wrap(np.asarray(self.array.any(axis=_axes(dim, self.ndim),
                                                     keepdims=keepdim)))

    def allclose(self, other, rtol=1e-5, atol=1e-8) -> bool:
        return bool(np.allclose(self.array, np.asarray(other), rtol=rtol, atol=atol))

    # ------------------------------------------------------------ elementwise math
    def exp(self):
        return ops.Exp.apply(self)

    def log(self):
        return ops.Log.apply(self)

    def sqrt(self):
        return ops.Sqrt.apply(self)

    def rsqrt(self):
        return 1 / self.sqrt()

    def abs(self):
        return ops.Abs.apply(self)

    def square(self):
        return self * self

    def sign(self):
        return Tensor._wrap(np.sign(self.array))

    def reciprocal(self):
        return 1 / self

    def maximum(self, other):
        return ops.Maximum.apply(*_operands(self, other))

    def minimum(self, other):
        return ops.Minimum.apply(*_operands(self, other))

    def clip(self, min=None, max=None):
        if min is None and max is None:
            raise ValueError("clip: at least one of min and max must be given")
        return ops.Clip.apply(self, lo=min, hi=max)

    clamp = clip

    def relu(self):
        return ops.ReLU.apply(self)

    def leaky_relu(self, negative_slope: float = 0.01):
        return ops.LeakyReLU.apply(self, negative_slope=negative_slope)

    def sigmoid(self):
        return ops.Sigmoid.apply(self)

    def tanh(self):
        return ops.Tanh.apply(self)

    def gelu(self):
        return ops.GELU.apply(self)

    def softplus(self, beta: float = 1.0, threshold: float = 20.0):
        return ops.Softplus.apply(self, beta=beta, threshold=threshold)

    # ------------------------------------------------------------ reductions
    def sum(self, dim=None, keepdim: bool = False, axis=None):
        axes = _axes(dim if axis is None else axis, self.ndim)
        return ops.Sum.apply(self, axis=axes, keepdims=keepdim)

    def mean(self, dim=None, keepdim: bool = False, axis=None):
        axes = _axes(dim if axis is None else axis, self.ndim)
        return ops.Mean.apply(self, axis=axes, keepdims=keepdim)

    def var(self, dim=None, keepdim: bool = False, correction: int = 1, unbiased=None, axis=None):
        """Variance with Bessel's correction by default, like `torch.var`."""
        if unbiased is not None:
            correction = int(unbiased)
        axes = _axes(dim if axis is None else axis, self.ndim)
        n = self.array.size if axes is None else math.prod(self.shape[a] for a in axes)
        centered = self - self.mean(axes, keepdim=True)
        return (centered * centered).sum(axes, keepdim=keepdim) / max(n - correction, 0)

    def std(self, dim=None, keepdim: bool = False, correction: int = 1, unbiased=None, axis=None):
        return self.var(dim, keepdim, correction, unbiased, axis).sqrt()

    def _extremum(self, dim, keepdim, reduce, arg):
        if dim is None:
            return ops.Amax.apply(self, axis=None, keepdims=False, reduce=reduce)
        dim = dim % self.ndim
        indices = arg(self.array, axis=dim)
        values = ops.MaxDim.apply(self, idx=indices, dim=dim, keepdim=keepdim)
        return ValuesIndices(values, Tensor._wrap(np.expand_dims(indices, dim) if keepdim
                                                  else indices))

    def max(self, dim: int | None = None, keepdim: bool = False):
        """Largest value; with `dim`, a (values, indices) pair like `torch.max`."""
        return self._extremum(dim, keepdim, np.max, np.argmax)

    def min(self, dim: int | None = None, keepdim: bool = False):
        return self._extremum(dim, keepdim, np.min, np.argmin)

    def amax(self, dim=None, keepdim: bool = False):
        return ops.Amax.apply(self, axis=_axes(dim, self.ndim), keepdims=keepdim, reduce=np.max)

    def amin(self, dim=None, keepdim: bool = False):
        return ops.Amax.apply(self, axis=_axes(dim, self.ndim), keepdims=keepdim, reduce=np.min)

    def argmax(self, dim: int | None = None, keepdim: bool = False):
        return _arg(self.array, np.argmax, dim, keepdim)

    def argmin(self, dim: int | None = None, keepdim: bool = False):
        return _arg(self.array, np.argmin, dim, keepdim)

    def softmax(self, dim: int = -1):
        return ops.Softmax.apply(self, axis=dim)

    def log_softmax(self, dim: int = -1):
        return ops.LogSoftmax.apply(self, axis=dim)

    def logsumexp(self, dim, keepdim: bool = False):
        m = Tensor._wrap(self.array.max(axis=dim, keepdims=True))
        out = (self - m).exp().sum(dim, keepdim=True).log() + m
        return out if keepdim else out.squeeze(dim)

    # ------------------------------------------------------------ movement
    def reshape(self, *shape):
        shape = _shape_arg(shape)
        if -1 not in shape and math.prod(shape) != self.array.size:
            raise RuntimeError(f"reshape: shape {tuple(shape)} is invalid for a tensor of "
                               f"{self.array.size} elements (shape {self.shape})")
        out = ops.Reshape.apply(self, shape=shape)
        if inplace.same_memory(out.array, self.array):  # numpy copies only when it must, as torch
            inplace.as_view(out, self, lambda t, s=out.shape: t.reshape(s))
        return out

    def view(self, *shape):
        """The same memory with another shape; refused (as in torch) when the strides do not
        allow it without a copy, e.g. `x.T.view(-1)`: use reshape there."""
        shape = _shape_arg(shape)
        try:
            np.reshape(self.array, shape, copy=False)
        except ValueError:
            if _reshapes(self.array, shape):  # the size fits: only the strides refuse
                raise RuntimeError(f"view: view size is not compatible with input tensor's size "
                                   f"and stride (at least one dimension spans across two "
                                   f"contiguous subspaces): shape {self.shape} to "
                                   f"{tuple(shape)}. Use .reshape(...) instead.") from None
        return self.reshape(shape)

    def view_as(self, other: Tensor):
        return self.view(other.shape)

    def reshape_as(self, other: Tensor):
        return self.reshape(other.shape)

    def flatten(self, start_dim: int = 0, end_dim: int = -1):
        if self.ndim == 0:
            return self.reshape(1)
        start, end = start_dim % self.ndim, end_dim % self.ndim
        shape = self.shape[:start] + (-1,) + self.shape[end + 1:]
        return self.reshape(shape)

    def unflatten(self, dim: int, sizes):
        dim = dim % self.ndim
        return self.reshape(self.shape[:dim] + tuple(sizes) + self.shape[dim + 1:])

    def permute(self, *order):
        order = tuple(d % self.ndim for d in _shape_arg(order))
        if sorted(order) != list(range(self.ndim)):
            raise RuntimeError(f"permute: {order} is not a permutation of the {self.ndim} dims "
                               f"of a tensor of shape {self.shape}")
        out = ops.Permute.apply(self, order=order)
        return inplace.as_view(out, self, lambda t: t.permute(order))

    def transpose(self, dim0: int = 0, dim1: int = 1):
        order = list(range(self.ndim))
        order[dim0], order[dim1] = order[dim1], order[dim0]
        return self.permute(order)

    def t(self):
        return self.transpose(0, 1) if self.ndim == 2 else self

    def squeeze(self, dim=None):
        if dim is None:
            return self.reshape(tuple(n for n in self.shape if n != 1))
        dims = {d % self.ndim for d in ((dim,) if isinstance(dim, (int, np.integer)) else dim)}
        return self.reshape(tuple(n for i, n in enumerate(self.shape)
                                  if not (i in dims and n == 1)))

    def unsqueeze(self, dim: int):
        dim = dim % (self.ndim + 1)
        return self.reshape(self.shape[:dim] + (1,) + self.shape[dim:])

    def expand(self, *shape):
        shape = _shape_arg(shape)
        lead = len(shape) - self.ndim
        shape = tuple(self.shape[i - lead] if n == -1 else n for i, n in enumerate(shape))
        try:
            ok = np.broadcast_shapes(self.shape, shape) == shape
        except ValueError:
            ok = False
        if not ok:
            raise RuntimeError(f"expand: cannot expand shape {self.shape} to {shape}; only "
                               f"dims of size 1 can grow")
        out = ops.Expand.apply(self, shape=shape)
        return inplace.as_view(out, self, lambda t: t.expand(shape))

    def expand_as(self, other: Tensor):
        return self.expand(other.shape)

    def repeat(self, *sizes):
        sizes = _shape_arg(sizes)
        x = self.reshape((1,) * (len(sizes) - self.ndim) + self.shape)
        inter = tuple(d for n in x.shape for d in (1, n))
        big = tuple(d for r, n in zip(sizes, x.shape) for d in (r, n))
        return x.reshape(inter).expand(big).reshape(tuple(r * n for r, n in zip(sizes, x.shape)))

    def __getitem__(self, index):
        """Basic indexing (ints, slices, None, ...) returns a view, advanced indexing (int or
        bool arrays) a copy, as in torch."""
        index = _index(index)
        advanced = _is_advanced(index)
        out = ops.GetItem.apply(self, index=index, advanced=advanced)
        if advanced:
            return out
        return inplace.as_view(out, self, lambda t: t[index])

    def narrow(self, dim: int, start: int, length: int):
        """A view of `length` entries of `dim` from `start`, like `torch.narrow`."""
        dim = dim % self.ndim
        start = start % self.shape[dim] if start < 0 else start
        if start + length > self.shape[dim] or length < 0:
            raise RuntimeError(f"narrow: start ({start}) + length ({length}) exceeds dimension "
                               f"size ({self.shape[dim]})")
        return self[(slice(None),) * dim + (slice(start, start + length),)]

    def select(self, dim: int, index: int):
        return self[(slice(None),) * (dim % self.ndim) + (index,)]

    def unbind(self, dim: int = 0):
        return inplace.mark_multi(tuple(self.select(dim, i) for i in range(self.shape[dim])),
                                  "unbind")

    def gather(self, dim: int, index: Tensor):
        """out[i][j] = self[i][index[i][j]] along `dim`, like `torch.gather`."""
        idx = np.asarray(index.array if isinstance(index, Tensor) else index)
        grids = np.ix_(*[np.arange(n) for n in idx.shape])
        full = tuple(idx if d == dim % self.ndim else grids[d] for d in range(self.ndim))
        return self[full]

    def pad(self, pad: Sequence[int], value: float = 0.0):
        """Pad the last dims: (left, right, top, bottom, ...) as in `torch.nn.functional.pad`."""
        if len(pad) % 2 or len(pad) // 2 > self.ndim:
            raise ValueError(f"pad: expected an even number of at most {2 * self.ndim} sizes, "
                             f"got {tuple(pad)}")
        width = [(0, 0)] * self.ndim
        for i in range(len(pad) // 2):
            width[self.ndim - 1 - i] = (pad[2 * i], pad[2 * i + 1])
        return ops.Pad.apply(self, width=tuple(width), value=value)

    def split(self, split_size, dim: int = 0):
        """Pieces of `split_size` along dim (the last may be smaller), or of the given sizes."""
        n = self.shape[dim]
        if isinstance(split_size, int):
            sizes = [min(split_size, n - s) for s in range(0, n, split_size)]
        else:
            sizes = list(split_size)
            if sum(sizes) != n:
                raise RuntimeError(f"split: sizes {sizes} do not add up to {n} (dim {dim} of "
                                   f"shape {self.shape})")
        out, start = [], 0
        for size in sizes:
            index = [slice(None)] * self.ndim
            index[dim] = slice(start, start + size)
            out.append(self[tuple(index)])
            start += size
        return inplace.mark_multi(tuple(out), "split")

    def chunk(self, chunks: int, dim: int = 0):
        return self.split(math.ceil(self.shape[dim] / chunks), dim)

    # ------------------------------------------------------------ nn helpers as methods
    def dropout(self, p: float = 0.5, training: bool = True):
        from .nn import functional as F
        return F.dropout(self, p, training)

    def where(self, condition, other):
        return where(condition, self, other)

    # ------------------------------------------------------------ PyTorch surface (issue 14)
    # Devices (only the CPU exists), constructors like self, and methods over
    # tinygrad_edu.functions, where the composite ops live (imported in each method: that
    # module imports this one).
    @property
    def device(self):
        from .device import CPU
        return CPU

    @property
    def is_cuda(self) -> bool:
        return False

    def cpu(self) -> Tensor:
        return self

    def cuda(self, device=None, non_blocking: bool = False) -> Tensor:
        raise RuntimeError("tinygrad_edu runs on the CPU; drop the .cuda()")

    def contiguous(self, memory_format=None) -> Tensor:
        """Self when its array is C-contiguous, else a contiguous copy (in the graph)."""
        return self if self.array.flags.c_contiguous else self.clone()

    def is_floating_point(self) -> bool:
        return self.array.dtype.kind == "f"

    def element_size(self) -> int:
        return self.array.itemsize

    def nelement(self) -> int:
        return self.array.size

    def half(self) -> Tensor:
        return self.to(np.float16)

    def short(self) -> Tensor:
        return self.to(np.int16)

    def byte(self) -> Tensor:
        return self.to(np.uint8)

    def type_as(self, other: Tensor) -> Tensor:
        return self.to(other.dtype)

    def new_zeros(self, *size, dtype=None, requires_grad: bool = False) -> Tensor:
        """zeros of `size` in self's dtype (or `dtype`)."""
        return zeros(*size, dtype=self.dtype if dtype is None else dtype,
                     requires_grad=requires_grad)

    def new_ones(self, *size, dtype=None, requires_grad: bool = False) -> Tensor:
        return ones(*size, dtype=self.dtype if dtype is None else dtype,
                    requires_grad=requires_grad)

    def new_empty(self, *size, dtype=None, requires_grad: bool = False) -> Tensor:
        return empty(*size, dtype=self.dtype if dtype is None else dtype,
                     requires_grad=requires_grad)

    def new_full(self, size, fill_value, dtype=None, requires_grad: bool = False) -> Tensor:
        return full(size, fill_value, dtype=self.dtype if dtype is None else dtype,
                    requires_grad=requires_grad)

    def new_tensor(self, data, dtype=None, requires_grad: bool = False) -> Tensor:
        return tensor(data, dtype=self.dtype if dtype is None else dtype,
                      requires_grad=requires_grad)

    def norm(self, p="fro", dim=None, keepdim: bool = False) -> Tensor:
        from . import functions
        return functions.norm(self, p, dim, keepdim)

    def prod(self, dim: int | None = None, keepdim: bool = False) -> Tensor:
        from . import functions
        return functions.prod(self, dim, keepdim)

    def cumsum(self, dim: int) -> Tensor:
        from . import functions
        return functions.cumsum(self, dim)

    def sort(self, dim: int = -1, descending: bool = False, stable: bool = False):
        from . import functions
        return functions.sort(self, dim, descending, stable)

    def argsort(self, dim: int = -1, descending: bool = False, stable: bool = False) -> Tensor:
        from . import functions
        return functions.argsort(self, dim, descending, stable)

    def topk(self, k: int, dim: int = -1, largest: bool = True, sorted: bool = True):
        from . import functions
        return functions.topk(self, k, dim, largest, sorted)

    def flip(self, *dims) -> Tensor:
        from . import functions
        return functions.flip(self, _shape_arg(dims))

    def roll(self, shifts, dims=None) -> Tensor:
        from . import functions
        return functions.roll(self, shifts, dims)

    def index_select(self, dim: int, index) -> Tensor:
        from . import functions
        return functions.index_select(self, dim, index)

    def masked_select(self, mask) -> Tensor:
        from . import functions
        return functions.masked_select(self, mask)

    def scatter(self, dim: int, index, src=None, value=None, reduce: str | None = None):
        from . import functions
        return functions.scatter(self, dim, index, src, value, reduce)

    def scatter_add(self, dim: int, index, src: Tensor) -> Tensor:
        from . import functions
        return functions.scatter_add(self, dim, index, src)

    def nonzero(self, as_tuple: bool = False):
        from . import functions
        return functions.nonzero(self, as_tuple)

    def count_nonzero(self, dim=None) -> Tensor:
        from . import functions
        return functions.count_nonzero(self, dim)

    def bincount(self, weights=None, minlength: int = 0) -> Tensor:
        from . import functions
        return functions.bincount(self, weights, minlength)

    def tril(self, diagonal: int = 0) -> Tensor:
        from . import functions
        return functions.tril(self, diagonal)

    def triu(self, diagonal: int = 0) -> Tensor:
        from . import functions
        return functions.triu(self, diagonal)

    def log1p(self) -> Tensor:
        from . import functions
        return functions.log1p(self)

    def expm1(self) -> Tensor:
        from . import functions
        return functions.expm1(self)

    def sin(self) -> Tensor:
        from . import functions
        return functions.sin(self)

    def cos(self) -> Tensor:
        from . import functions
        return functions.cos(self)

    def floor(self) -> Tensor:
        from . import functions
        return functions.floor(self)

    def ceil(self) -> Tensor:
        from . import functions
        return functions.ceil(self)

    def round(self) -> Tensor:
        from . import functions
        return functions.round(self)

    def trunc(self) -> Tensor:
        from . import functions
        return functions.trunc(self)

    def isinf(self) -> Tensor:
        from . import functions
        return functions.isinf(self)

    def lerp(self, end: Tensor, weight) -> Tensor:
        from . import functions
        return functions.lerp(self, end, weight)

    def outer(self, other: Tensor) -> Tensor:
        from . import functions
        return functions.outer(self, other)

    def mm(self, other: Tensor) -> Tensor:
        from . import functions
        return functions.mm(self, other)

    def bmm(self, other: Tensor) -> Tensor:
        from . import functions
        return functions.bmm(self, other)

    def equal(self, other: Tensor) -> bool:
        from . import functions
        return functions.equal(self, other)

    def scatter_(self, dim: int, index, src=None, value=None, reduce: str | None = None):
        """In place `scatter`, recorded by autograd as the other in-place ops."""
        return self._inplace("scatter_", lambda s: s.scatter(dim, index, src, value, reduce))

    def scatter_add_(self, dim: int, index, src: Tensor) -> Tensor:
        return self._inplace("scatter_add_", lambda s: s.scatter_add(dim, index, src))


# ---------------------------------------------------------------- helpers used by methods


class ValuesIndices(NamedTuple):
    """What `max(dim)` / `min(dim)` return, like torch's (values, indices) named tuple."""
    values: Tensor
    indices: Tensor


def _const(value, like: Tensor, floating: bool = False) -> Tensor:
    """A constant operand for a binary op: Tensors pass through, scalars take `like`'s dtype."""
    if isinstance(value, Tensor):
        return value
    dtype = like.array.dtype
    if dtype.kind != "f" and (floating or isinstance(value, float)):
        dtype = _default_dtype
    elif dtype.kind == "b":
        dtype = np.dtype(np.int64)
    if isinstance(value, np.ndarray):
        return Tensor._wrap(value)
    return Tensor._wrap(np.asarray(value, dtype=dtype))


def _operands(a: Tensor, other, floating: bool = False, reverse: bool = False) -> tuple:
    """(a, other) as Tensors, or (other, a) when reverse, promoted as PyTorch does: a number takes
    a's dtype, and an integer (or bool) operand meeting a floating one takes its float dtype, so
    `int_tensor * 0.5` is float32, not numpy's float64."""
    b = _const(other, a, floating)
    kind_a, kind_b = a.array.dtype.kind, b.array.dtype.kind
    if kind_a != kind_b and "f" in (kind_a, kind_b):
        if kind_a == "f":
            b = b.to(a.array.dtype)
        else:
            a = a.to(b.array.dtype)
    return (b, a) if reverse else (a, b)


def _shape_arg(shape) -> tuple:
    """Accept both `f(2, 3)` and `f((2, 3))`."""
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        return tuple(shape[0])
    return tuple(int(n) for n in shape)


def _index(index):
    """Replace Tensors inside an index with their arrays."""
    if isinstance(index, Tensor):
        return index.array
    if isinstance(index, tuple):
        return tuple(i.array if isinstance(i, Tensor) else i for i in index)
    if isinstance(index, list):
        return np.asarray(index)
    return index


def _along(dim: int, index) -> tuple:
    """The setitem index selecting entries `index` of axis `dim`."""
    idx = np.asarray(index.array if isinstance(index, Tensor) else index)
    return (slice(None),) * dim + (idx,)


def _reshapes(arr: np.ndarray, shape) -> bool:
    try:
        np.reshape(arr, shape)
    except ValueError:
        return False
    return True


def _is_advanced(index) -> bool:
    items = index if isinstance(index, tuple) else (index,)
    return any(isinstance(i, (np.ndarray, list)) for i in items)


def _arg(data: np.ndarray, fn, dim, keepdim) -> Tensor:
    if dim is None:
        return Tensor._wrap(np.asarray(fn(data), dtype=np.int64))
    out = fn(data, axis=dim)
    return Tensor._wrap(np.expand_dims(out, dim) if keepdim else out)


def ops_reshape(x: Tensor, shape, copy: bool = False) -> Tensor:
    """Reshape, optionally into a fresh copy (clone keeps the graph)."""
    out = ops.Reshape.apply(x, shape=shape)
    if copy:
        out.array = out.array.copy()
    return out


# ---------------------------------------------------------------- functions over several tensors


def cat(tensors: Sequence[Tensor], dim: int = 0) -> Tensor:
    """Concatenate along an existing dim, like `torch.cat`."""
    tensors = list(tensors)
    if not tensors:
        raise ValueError("cat: expected a non-empty list of tensors")
    ref = tensors[0].shape
    for i, t in enumerate(tensors):
        if t.ndim != len(ref) or any(a != b for d, (a, b) in enumerate(zip(t.shape, ref))
                                     if d != dim % len(ref)):
            raise RuntimeError(f"cat: tensor {i} has shape {t.shape}, expected {ref} except in "
                               f"dim {dim}")
    return ops.Cat.apply(*tensors, axis=dim % len(ref))


def stack(tensors: Sequence[Tensor], dim: int = 0) -> Tensor:
    """Join along a new dim, like `torch.stack`."""
    tensors = list(tensors)
    shapes = {t.shape for t in tensors}
    if len(shapes) != 1:
        raise RuntimeError(f"stack: all tensors must have the same shape, got {sorted(shapes)}")
    dim = dim % (tensors[0].ndim + 1)
    return cat([t.unsqueeze(dim) for t in tensors], dim)


def where(condition, x, y) -> Tensor:
    """Elements of x where condition holds, else of y; no gradient flows to the condition."""
    cond = np.asarray(condition.array if isinstance(condition, Tensor) else condition, bool)
    like = x if isinstance(x, Tensor) else y
    return ops.Where.apply(_const(x, like), _const(y, like), cond=cond)


def maximum(x: Tensor, y) -> Tensor:
    return x.maximum(y)


def minimum(x: Tensor, y) -> Tensor:
    return x.minimum(y)


# ---------------------------------------------------------------- creation


def tensor(data, dtype=None, requires_grad: bool = False) -> Tensor:
    """A new tensor (a copy) of a list, scalar, array or tensor, like `torch.tensor`: Python
    floats become the default dtype, numpy arrays and scalars and tensors keep theirs."""
    src = data.array if isinstance(data, Tensor) else data
    if dtype is None and isinstance(src, (np.ndarray, np.generic)):
        arr = np.array(src, copy=True)
        if arr.dtype.kind not in "biuf":
            _refuse_dtype(arr)
        return Tensor(arr, dtype=arr.dtype, requires_grad=requires_grad)
    return Tensor(np.array(src, copy=True) if dtype is None else np.array(src, dtype=dtype),
                  dtype=dtype, requires_grad=requires_grad)


def from_numpy(arr: np.ndarray) -> Tensor:
    """A tensor sharing memory with `arr`, keeping its dtype (like `torch.from_numpy`)."""
    return Tensor._wrap(arr)


def _make(fn, shape, dtype, requires_grad) -> Tensor:
    dtype = _default_dtype if dtype is None else np.dtype(dtype)
    return Tensor(fn(_shape_arg(shape)).astype(dtype, copy=False), dtype=dtype,
                  requires_grad=requires_grad)


def zeros(*shape, dtype=None, requires_grad: bool = False) -> Tensor:
    return _make(np.zeros, shape, dtype, requires_grad)


def ones(*shape, dtype=None, requires_grad: bool = False) -> Tensor:
    return _make(np.ones, shape, dtype, requires_grad)


def empty(*shape, dtype=None, requires_grad: bool = False) -> Tensor:
    return _make(np.empty, shape, dtype, requires_grad)


def full(shape, fill_value, dtype=None, requires_grad: bool = False) -> Tensor:
    """Filled with `fill_value`, whose type sets the dtype (bool, int64 or float) as in torch."""
    if dtype is None and isinstance(fill_value, (bool, int, np.integer, np.bool_)):
        dtype = np.asarray(fill_value).dtype
    return _make(lambda s: np.full(s, fill_value), (shape,), dtype, requires_grad)


def rand(*shape, dtype=None, requires_grad: bool = False) -> Tensor:
    """Uniform on [0, 1), drawn from the global generator (`tg.manual_seed`)."""
    return _make(lambda s: get_rng().random(s), shape, dtype, requires_grad)


def randn(*shape, dtype=None, requires_grad: bool = False) -> Tensor:
    """Standard normal, drawn from the global generator (`tg.manual_seed`)."""
    return _make(lambda s: get_rng().standard_normal(s), shape, dtype, requires_grad)


def randint(low: int, high: int, size: Iterable[int], dtype=np.int64) -> Tensor:
    return Tensor._wrap(get_rng().integers(low, high, tuple(size)).astype(dtype))


def randperm(n: int) -> Tensor:
    return Tensor._wrap(get_rng().permutation(n))


def arange(start, end=None, step=1, dtype=None, requires_grad: bool = False) -> Tensor:
    """Like `torch.arange`: integers stay int64, any float argument gives the default dtype."""
    if end is None:
        start, end = 0, start
    if dtype is None and all(isinstance(v, (int, np.integer)) for v in (start, end, step)):
        dtype = np.int64
    return Tensor(np.arange(start, end, step), dtype=dtype, requires_grad=requires_grad)


def linspace(start: float, end: float, steps: int, dtype=None) -> Tensor:
    return Tensor(np.linspace(start, end, steps), dtype=dtype)


def eye(n: int, m: int | None = None, dtype=None, requires_grad: bool = False) -> Tensor:
    return Tensor(np.eye(n, m), dtype=dtype, requires_grad=requires_grad)


def _like(fn):
    def make(t: Tensor, dtype=None, requires_grad: bool = False) -> Tensor:
        return fn(t.shape, dtype=t.dtype if dtype is None else dtype, requires_grad=requires_grad)
    make.__name__ = fn.__name__ + "_like"
    make.__doc__ = f"`{fn.__name__}` with the shape (and dtype) of a given tensor."
    return make


zeros_like, ones_like, rand_like, randn_like, empty_like = (
    _like(zeros), _like(ones), _like(rand), _like(randn), _like(empty))


def full_like(t: Tensor, fill_value, dtype=None, requires_grad: bool = False) -> Tensor:
    return full(t.shape, fill_value, dtype=t.dtype if dtype is None else dtype,
                requires_grad=requires_grad)


Function._out_type = Tensor  # the class Function.apply builds outputs with
