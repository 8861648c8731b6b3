"""Primitive Functions on numpy arrays: each op's forward and backward side by side.

Notation: `x, y` forward inputs, `grad` the incoming gradient, `gx, gy` what goes out.
Gradients may be broadcast-shaped: the engine (`autograd.unbroadcast`) sums them back.
Convolution and pooling live in `ops_cnn.py`, on top of the Numba kernels.
"""
from __future__ import annotations

import itertools
import math

import numba
import numpy as np

from . import gemm, kernels
from .autograd import Function, may_overwrite


def _const(arr):
    """An array as a constant of the double-backward graph (a Tensor with no history)."""
    return Function._out_type._wrap(np.asarray(arr))


class GraphRule(Function):
    """For the ops that exist as gradients of other ops (GELUGrad, GetItemBackward, the
    convolution and pooling gradients in ops_cnn): the rule is written once, with Tensor ops,
    in `backward_graph`, and the first-order `backward` runs it on wrapped arrays (the engine's
    pass has grad mode off then, so no graph is built)."""

    def backward(self, grad):
        gs = self.backward_graph(_const(grad))
        if not isinstance(gs, tuple):
            return gs.array
        return tuple(None if g is None else g.array for g in gs)


class SharedRule(Function):
    """An op whose gradient formula reads the same on numpy arrays and on Tensors (arithmetic,
    `@`, `.T`, `reshape`, `sum(axis=...)`, `_mT`): `rule(grad, *saved)` is written once and
    serves `backward` (on the saved arrays) and `backward_graph` (on `saved_tensors()`, so the
    gradient is differentiable again)."""

    def backward(self, grad):
        return self.rule(grad, *self.saved)

    def backward_graph(self, grad):
        return self.rule(grad, *self.saved_tensors())


def _mT(a):
    """Swap the last two axes of an array or a Tensor."""
    return np.swapaxes(a, -1, -2) if isinstance(a, np.ndarray) else a.transpose(-1, -2)

# ---------------------------------------------------------------- binary elementwise


class Add(Function):
    def forward(self, x, y):
        return x + y

    def backward(self, grad):
        return grad, grad

    backward_graph = backward  # the same rule on Tensors


class Sub(Function):
    def forward(self, x, y):
        return x - y

    def backward(self, grad):
        return grad, -grad if self.needs_input_grad[1] else None

    backward_graph = backward


class Mul(SharedRule):
    def forward(self, x, y):
        # each input only where the other's gradient needs it, as torch: `y * 2` saves no y,
        # so writing to y in place afterwards stays allowed
        need_x, need_y = self.needs_input_grad
        self.save_for_backward(x if need_y else None, y if need_x else None)
        return x * y

    def rule(self, grad, x, y):
        gx = grad * y if self.needs_input_grad[0] else None
        gy = grad * x if self.needs_input_grad[1] else None
        return gx, gy


class Div(SharedRule):
    def forward(self, x, y):
        self.save_for_backward(x if self.needs_input_grad[1] else None, y)
        return x / y

    def rule(self, grad, x, y):
        gx = grad / y if self.needs_input_grad[0] else None
        gy = -grad * x / (y * y) if self.needs_input_grad[1] else None
        return gx, gy


class Pow(Function):
    def forward(self, x, y):
        out = np.asarray(x ** y)  # an array even when 0-d: saved as the output itself
        self.save_for_backward(x, y, out if self.needs_input_grad[1] else None)
        return out

    def backward(self, grad):
        x, y, out = self.saved
        gx = gy = None
        if self.needs_input_grad[0]:
            with np.errstate(divide="ignore", invalid="ignore"):  # 0 ** (y - 1) for y < 1
                gx = grad * np.where(y == 0, 0, y * x ** (y - 1))  # d(x ** 0)/dx = 0, even at 0
        if self.needs_input_grad[1]:
            with np.errstate(divide="ignore", invalid="ignore"):
                gy = grad * out * np.where(x > 0, np.log(np.where(x > 0, x, 1)), 0)
        return gx, gy

    def backward_graph(self, grad):
        x, y, out = self.saved_tensors()
        x_arr, y_arr = self.saved[:2]
        one, zero = _const(np.ones((), grad.dtype)), _const(np.zeros((), grad.dtype))
        gx = gy = None
        if self.needs_input_grad[0]:
            # y x^(y-1), 0 where y == 0 (as torch); the exponent 1 there keeps 0^-1 out of it
            nonzero = y_arr != 0
            slope = y * x ** Where.apply(y - 1, one, cond=nonzero)
            gx = grad * Where.apply(slope, zero, cond=nonzero)
        if self.needs_input_grad[1]:
            positive = x_arr > 0
            log_x = Where.apply(Where.apply(x, one, cond=positive).log(), zero, cond=positive)
            gy = grad * out * log_x
        return gx, gy


class Maximum(Function):
    """Elementwise max; at ties the gradient is split in half, as in PyTorch."""

    def forward(self, x, y):
        self.save_for_backward(x, y)
        return np.maximum(x, y)

    def backward(self, grad):
        x, y = self.saved
        share = (x > y) + (x == y) * grad.dtype.type(0.5)  # in grad's dtype, not float64
        return grad * share, grad * (1 - share)

    backward_graph = backward  # the same rule on Tensors: grad times a constant share


class Minimum(Function):
    def forward(self, x, y):
        self.save_for_backward(x, y)
        return np.minimum(x, y)

    def backward(self, grad):
        x, y = self.saved
        share = (x < y) + (x == y) * grad.dtype.type(0.5)
        return grad * share, grad * (1 - share)

    backward_graph = backward


class Where(Function):
    """`where(cond, x, y)`; the condition is a constant boolean array (keyword)."""

    def forward(self, x, y, cond):
        self.save_for_backward(cond)
        return np.where(cond, x, y)

    def backward(self, grad):
        (cond,) = self.saved
        zero = np.zeros((), grad.dtype)
        return np.where(cond, grad, zero), np.where(cond, zero, grad)

    def backward_graph(self, grad):
        (cond,) = self.saved
        zero = _const(np.zeros((), grad.dtype))
        return Where.apply(grad, zero, cond=cond), Where.apply(zero, grad, cond=cond)


# ---------------------------------------------------------------- unary elementwise


class Neg(Function):
    def forward(self, x):
        return -x

    def backward(self, grad):
        return -grad

    backward_graph = backward


class Exp(SharedRule):
    def forward(self, x):
        out = np.asarray(np.exp(x))  # an array even when 0-d: saved as the output itself
        self.save_for_backward(out)
        return out

    def rule(self, grad, out):
        return grad * out  # in backward_graph `out` is a Tensor made by this node


class Log(SharedRule):
    def forward(self, x):
        self.save_for_backward(x)
        return np.log(x)

    def rule(self, grad, x):
        return grad / x


class Sqrt(SharedRule):
    def forward(self, x):
        out = np.asarray(np.sqrt(x))  # an array even when 0-d: saved as the output itself
        self.save_for_backward(out)
        return out

    def rule(self, grad, out):
        return grad / (2 * out)


class Abs(Function):
    def forward(self, x):
        self.save_for_backward(x)
        return np.abs(x)

    def backward(self, grad):
        return grad * np.sign(self.saved[0])

    backward_graph = backward  # grad times a constant sign


class Clip(Function):
    """clamp(x, min, max): the gradient passes where min <= x <= max, as in PyTorch."""

    def forward(self, x, lo=None, hi=None):
        self.save_for_backward(x, lo, hi)
        return np.clip(x, lo, hi)

    def backward(self, grad):
        x, lo, hi = self.saved
        inside = np.ones(x.shape, bool)
        if lo is not None:
            inside &= x >= lo
        if hi is not None:
            inside &= x <= hi
        return grad * inside

    backward_graph = backward  # grad times a constant mask


class ReLU(Function):
    overwrites_grad = True

    def forward(self, x):
        out = kernels.relu(x)
        self.save_for_backward(out)
        return out

    def backward(self, grad):
        """0 where the output is <= 0, else grad (so a NaN output passes it, as in PyTorch):
        in grad itself when only the engine holds it."""
        out = self.saved[0]
        if grad.dtype.char not in "fd":  # _relu_backward has float32 and float64 loops
            return grad * ~(out <= 0)
        if may_overwrite(self, grad) and kernels.relu_backward_in_place(grad, out):
            return grad
        return kernels.elementwise(_relu_backward, grad, out)

    def backward_graph(self, grad):
        return grad * (~(self.saved[0] <= 0)).astype(grad.dtype)


@numba.vectorize(["float32(float32, float32)", "float64(float64, float64)"], cache=True)
def _relu_backward(grad, out):
    """0 where the ReLU's output is <= 0, else grad: one pass, where grad * (out > 0) makes
    a boolean array first (10% of a CNN2 step went to ReLU's backward)."""
    return 0 if out <= 0 else grad


class LeakyReLU(Function):
    def forward(self, x, negative_slope=0.01):
        self.save_for_backward(x, negative_slope)
        return np.where(x > 0, x, x * x.dtype.type(negative_slope))

    def backward(self, grad):
        x, slope = self.saved
        return np.where(x > 0, grad, grad * grad.dtype.type(slope))

    def backward_graph(self, grad):
        x, slope = self.saved
        return grad * np.where(x > 0, 1, slope).astype(grad.dtype)


class Sigmoid(SharedRule):
    def forward(self, x):
        out = _sigmoid(x)
        self.save_for_backward(out)
        return out

    def rule(self, grad, s):
        return grad * s * (1 - s)


class Tanh(SharedRule):
    def forward(self, x):
        out = np.asarray(np.tanh(x))  # an array even when 0-d: saved as the output itself
        self.save_for_backward(out)
        return out

    def rule(self, grad, t):
        return grad * (1 - t * t)


@numba.vectorize(["float32(float32)", "float64(float64)"], cache=True)
def _erf(x):
    return math.erf(x)


class GELU(Function):
    """x * Phi(x) with the exact normal CDF (PyTorch's default `approximate='none'`)."""

    def forward(self, x):
        self.save_for_backward(x)
        return x * 0.5 * (1 + _erf(x / math.sqrt(2)))

    def backward(self, grad):
        return grad * _gelu_slope(self.saved[0])

    def backward_graph(self, grad):
        return grad * GELUGrad.apply(self.saved_tensors()[0])


def _gelu_slope(x: np.ndarray) -> np.ndarray:
    """d gelu / dx = Phi(x) + x phi(x)."""
    cdf = 0.5 * (1 + _erf(x / math.sqrt(2)))
    pdf = np.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)
    return cdf + x * pdf


class GELUGrad(GraphRule):
    """GELU's slope Phi(x) + x phi(x) as an op, so that GELU's gradient is differentiable
    again: d/dx of it is phi(x) (2 - x^2), plain Tensor ops from there on."""

    def forward(self, x):
        self.save_for_backward(x)
        return _gelu_slope(x)

    def backward_graph(self, grad):
        (x,) = self.saved_tensors()
        pdf = (x * x * -0.5).exp() * (1 / math.sqrt(2 * math.pi))
        return grad * pdf * (2 - x * x)


class Softplus(Function):
    """log(1 + exp(beta x)) / beta, linear above `threshold` like PyTorch."""

    def forward(self, x, beta=1.0, threshold=20.0):
        bx = x * beta
        self.save_for_backward(bx, threshold, x, beta)  # x for double backward
        soft = (np.maximum(bx, 0) + np.log1p(np.exp(-np.abs(bx)))) / beta
        return np.where(bx > threshold, x, soft).astype(x.dtype, copy=False)

    def backward(self, grad):
        bx, threshold = self.saved[:2]
        return np.where(bx > threshold, grad, grad * _sigmoid(bx))

    def backward_graph(self, grad):
        bx, threshold, x, beta = self.saved_tensors()
        one = _const(np.ones((), grad.dtype))
        return grad * Where.apply(one, (x * beta).sigmoid(), cond=bx > threshold)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    """Numerically stable logistic function (no overflow warning for large |x|)."""
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype, copy=False)


# ---------------------------------------------------------------- matmul


class MatMul(SharedRule):
    """`x @ y` with numpy's rules: batched, broadcasting, and the 1-D cases."""

    def forward(self, x, y):
        need_x, need_y = self.needs_input_grad
        self.save_for_backward(x if need_y else None, y if need_x else None)
        self.ndims = (x.ndim, y.ndim)
        return x @ y

    def rule(self, grad, x, y):
        x_ndim, y_ndim = self.ndims
        g = grad[..., None] if y_ndim == 1 else grad  # y's P first: 1-D @ 1-D gives a 0-d grad
        g = g[..., None, :] if x_ndim == 1 else g  # (..., M, P)
        gx = gy = None
        if self.needs_input_grad[0]:
            y2 = y[:, None] if y_ndim == 1 else y  # (..., K, P)
            gx = g @ _mT(y2)  # (..., M, K)
            gx = gx[..., 0, :] if x_ndim == 1 else gx
        if self.needs_input_grad[1]:
            x2 = x[None, :] if x_ndim == 1 else x  # (..., M, K)
            gy = _mT(x2) @ g  # (..., K, P)
            gy = gy[..., 0] if y_ndim == 1 else gy
        return gx, gy


def _mm(a, b):
    """a @ b of 2-D operands: by gemm.matmul for arrays (our float32 GEMM where it runs: MLP3's
    step at batch 128 1.32 -> 0.93 ms), by Tensor's @ for Tensors (backward_graph)."""
    if not isinstance(a, np.ndarray):
        return a @ b
    return gemm.matmul(a, b, out=np.empty((a.shape[0], b.shape[1]), np.result_type(a, b)))


class Linear(SharedRule):
    """x @ w.T + b, PyTorch's `addmm`: one GEMM with the bias added in place, and the weight
    gradient computed directly in w's (out, in) layout, so nothing is transposed or copied.
    x (..., in), w (out, in), b (out,) or none."""

    def forward(self, x, w, b=None):
        x2 = x.reshape(-1, x.shape[-1])  # (M, in)
        y = _mm(x2, w.T)  # (M, out)
        if b is not None:
            y += b
        need_x, need_w = self.needs_input_grad[:2]
        self.save_for_backward(x if need_w else None, w if need_x else None)  # as torch's addmm
        self.shapes = (x.shape, w.shape)
        return y.reshape(x.shape[:-1] + w.shape[:1])

    def rule(self, grad, x, w):
        x_shape, w_shape = self.shapes
        g = grad.reshape(-1, w_shape[0])  # (M, out)
        gx = _mm(g, w).reshape(x_shape) if self.needs_input_grad[0] else None  # (M, in)
        gw = _mm(g.T, x.reshape(-1, x_shape[-1])) if self.needs_input_grad[1] else None
        if len(self.needs_input_grad) == 2:
            return gx, gw
        return gx, gw, g.sum(axis=0) if self.needs_input_grad[2] else None


# ---------------------------------------------------------------- reductions


class Sum(Function):
    def forward(self, x, axis=None, keepdims=False):
        self.save_for_backward(x.shape, axis, keepdims, x.strides)
        return np.asarray(x.sum(axis=axis, keepdims=keepdims))

    def backward(self, grad):
        shape, axis, keepdims, strides = self.saved
        if not keepdims and axis is not None:
            grad = np.expand_dims(grad, axis)
        return _spread(grad, shape, strides)

    def backward_graph(self, grad):
        shape, axis = self.saved[:2]
        return Expand.apply(Reshape.apply(grad, shape=_kept_shape(shape, axis)), shape=shape)


class Mean(Function):
    def forward(self, x, axis=None, keepdims=False):
        self.save_for_backward(x.shape, axis, keepdims, x.strides)
        return np.asarray(x.mean(axis=axis, keepdims=keepdims))

    def backward(self, grad):
        shape, axis, keepdims, strides = self.saved
        n = math.prod(shape) if axis is None else math.prod(shape[a] for a in axis)
        if not keepdims and axis is not None:
            grad = np.expand_dims(grad, axis)
        return _spread(grad / grad.dtype.type(n), shape, strides)

    def backward_graph(self, grad):
        shape, axis = self.saved[:2]
        kept = _kept_shape(shape, axis)
        n = math.prod(size for size, k in zip(shape, kept) if size != k)
        return Expand.apply(Reshape.apply(grad / n, shape=kept), shape=shape)


def _spread(grad: np.ndarray, shape: tuple, strides: tuple) -> np.ndarray:
    """grad (the reduction's kept shape) broadcast to `shape`, as a view laid out in the memory
    order of the reduced input (its `strides`), so that the elementwise ops after it meet
    arrays of one layout: a conv activation's global average pool is batch-minor, and its
    gradient broadcast in (N, C, H, W) order made the VGG block's ReLU backward 1.43 ms (a
    gathering ufunc, then batch norm's transposing copy) where this takes 0.19."""
    order = sorted(range(len(shape)), key=lambda a: -strides[a])  # outermost axis first
    if grad.ndim != len(shape) or order == sorted(order):
        return np.broadcast_to(grad, shape)
    core = np.ascontiguousarray(grad.transpose(order))
    return np.broadcast_to(core, tuple(shape[a] for a in order)).transpose(np.argsort(order))


def _kept_shape(shape: tuple, axis) -> tuple:
    """The shape of a reduction of `shape` over `axis` (int, tuple, or None: all) with keepdims."""
    if axis is None:
        return (1,) * len(shape)
    axes = {a % len(shape) for a in ((axis,) if isinstance(axis, (int, np.integer)) else axis)}
    return tuple(1 if i in axes else n for i, n in enumerate(shape))


class Amax(Function):
    """max over `axis` (a tuple or None); ties share the gradient evenly, like torch.amax."""

    def forward(self, x, axis=None, keepdims=False, reduce=np.max):
        out = reduce(x, axis=axis, keepdims=True)
        self.save_for_backward(x, out, axis, keepdims)
        return np.asarray(out if keepdims else out.squeeze(axis))

    def backward(self, grad):
        x, out, axis, keepdims = self.saved
        if not keepdims:
            grad = np.expand_dims(grad, axis) if axis is not None else grad.reshape(out.shape)
        mask = x == out
        return mask * (grad / mask.sum(axis=axis, keepdims=True))

    def backward_graph(self, grad):
        x, out, axis, _ = self.saved
        mask = x == out
        share = (mask / mask.sum(axis=axis, keepdims=True)).astype(grad.dtype)
        return Reshape.apply(grad, shape=out.shape) * share  # linear in grad, constant share


class MaxDim(Function):
    """max (or min) along one dim, given the arg-max indices; the gradient goes to them."""

    def forward(self, x, idx, dim, keepdim=False):
        idx = np.expand_dims(idx, dim)
        self.save_for_backward(x.shape, idx, dim, keepdim)
        out = np.take_along_axis(x, idx, axis=dim)
        return out if keepdim else out.squeeze(dim)

    def backward(self, grad):
        shape, idx, dim, keepdim = self.saved
        gx = np.zeros(shape, grad.dtype)
        np.put_along_axis(gx, idx, grad if keepdim else np.expand_dims(grad, dim), axis=dim)
        return gx

    def backward_graph(self, grad):
        shape, idx, dim, _ = self.saved
        one_hot = np.zeros(shape, grad.dtype)
        np.put_along_axis(one_hot, idx, 1, axis=dim)
        return Reshape.apply(grad, shape=idx.shape) * one_hot


# ---------------------------------------------------------------- movement


class Reshape(Function):
    def forward(self, x, shape):
        self.save_for_backward(x.shape)
        return x.reshape(shape)

    def backward(self, grad):
        return grad.reshape(self.saved[0])

    def backward_graph(self, grad):
        return Reshape.apply(grad, shape=self.saved[0])


class Permute(Function):
    def forward(self, x, order):
        self.save_for_backward(order)
        return x.transpose(order)

    def backward(self, grad):
        return grad.transpose(np.argsort(self.saved[0]))

    def backward_graph(self, grad):
        return Permute.apply(grad, order=tuple(np.argsort(self.saved[0])))


class Expand(Function):
    """Broadcast to a larger shape (a view); the engine sums the gradient back."""

    def forward(self, x, shape):
        return np.broadcast_to(x, shape)

    def backward(self, grad):
        return grad

    backward_graph = backward


class GetItem(Function):
    """`x[index]`; basic indices scatter by assignment, advanced ones with `np.add.at`."""

    def forward(self, x, index, advanced=False):
        self.save_for_backward(x.shape, index, advanced)
        return x[index]

    def backward(self, grad):
        return _scatter(grad, *self.saved)

    def backward_graph(self, grad):
        shape, index, advanced = self.saved
        return GetItemBackward.apply(grad, shape=shape, index=index, advanced=advanced)


def _scatter(grad: np.ndarray, shape: tuple, index, advanced: bool) -> np.ndarray:
    """The gradient of x[index]: grad written into zeros of x's shape (added up where advanced
    indices repeat)."""
    gx = np.zeros(shape, grad.dtype)
    if advanced:
        np.add.at(gx, index, grad)
    else:
        gx[index] = grad
    return gx


class GetItemBackward(GraphRule):
    """x[index]'s gradient as an op (`_scatter`): its own gradient is the indexing again."""

    def forward(self, grad, shape, index, advanced=False):
        self.index, self.advanced = index, advanced
        return _scatter(grad, shape, index, advanced)

    def backward_graph(self, grad):
        return GetItem.apply(grad, index=self.index, advanced=self.advanced)


class IndexPut(Function):
    """`x[index] = value`, written into x's own array (only `__setitem__` and the other
    in-place ops use it, through inplace.apply): overwritten entries get no gradient, and the
    value gets the gradient of the entries it was written to."""

    def forward(self, x, value, index=None):
        try:
            x[index] = value
        except (ValueError, IndexError) as e:
            raise RuntimeError(f"setitem: shape mismatch: value of shape {value.shape} cannot be "
                               f"broadcast to the indexed part of a tensor of shape {x.shape} "
                               f"({e})") from None
        self.index, self.value_shape = index, value.shape
        return x

    def backward(self, grad):
        gx = gv = None
        if self.needs_input_grad[0]:
            gx = grad.copy()
            gx[self.index] = 0
        if self.needs_input_grad[1]:
            gv = _lead_ones(grad[self.index], self.value_shape)
        return gx, gv

    def backward_graph(self, grad):
        keep = np.ones(grad.shape, grad.dtype)
        keep[self.index] = 0
        gx = grad * Function._out_type._wrap(keep) if self.needs_input_grad[0] else None
        gv = _lead_ones(grad[self.index], self.value_shape) if self.needs_input_grad[1] else None
        return gx, gv


def _lead_ones(g, shape: tuple):
    """g with leading 1-dims added where the value had more dims than what it was written to."""
    extra = len(shape) - g.ndim
    return g.reshape((1,) * extra + tuple(g.shape)) if extra > 0 else g


class CopyView(Function):
    """A write through a view, recorded on the view's base (PyTorch's CopySlices): the base's
    new value is the old one with the view's region replaced by `value`. `view` maps an array to
    the region's (writable) view of it; `view_fn` does the same on Tensors."""

    def forward(self, base, value, view=None, view_fn=None):
        view(base)[...] = value
        self.view, self.view_fn = view, view_fn
        return base

    def backward(self, grad):
        gb = gv = None
        if self.needs_input_grad[0]:
            gb = grad.copy()
            self.view(gb)[...] = 0
        if self.needs_input_grad[1]:
            gv = self.view(grad)
        return gb, gv

    def backward_graph(self, grad):
        keep = np.ones(grad.shape, grad.dtype)
        self.view(keep)[...] = 0
        gb = grad * Function._out_type._wrap(keep) if self.needs_input_grad[0] else None
        gv = self.view_fn(grad) if self.needs_input_grad[1] else None
        return gb, gv


class Pad(Function):
    """Constant padding; `width` is numpy's ((before, after), ...) per axis."""

    def forward(self, x, width, value=0.0):
        self.save_for_backward(width)
        return np.pad(x, width, constant_values=value)

    def backward(self, grad):
        index = tuple(slice(lo, grad.shape[i] - hi) for i, (lo, hi) in enumerate(self.saved[0]))
        return grad[index]

    backward_graph = backward  # basic indexing of a Tensor is GetItem


class Cat(Function):
    def forward(self, *xs, axis=0):
        self.save_for_backward(axis, np.cumsum([x.shape[axis] for x in xs])[:-1])
        return np.concatenate(xs, axis=axis)

    def backward(self, grad):
        axis, splits = self.saved
        return tuple(np.split(grad, splits, axis=axis))

    def backward_graph(self, grad):
        axis, splits = self.saved
        bounds = [0, *splits.tolist(), grad.shape[axis]]
        lead = (slice(None),) * (axis % grad.ndim)
        return tuple(GetItem.apply(grad, index=lead + (slice(a, b),))
                     for a, b in itertools.pairwise(bounds))


class Cast(Function):
    def forward(self, x, dtype):
        self.save_for_backward(x.dtype)
        return x.astype(dtype)

    def backward(self, grad):
        return grad.astype(self.saved[0])

    def backward_graph(self, grad):
        return Cast.apply(grad, dtype=self.saved[0])


# ---------------------------------------------------------------- softmax and losses


class Softmax(Function):
    def forward(self, x, axis=-1):
        e = np.exp(x - x.max(axis=axis, keepdims=True))
        out = e / e.sum(axis=axis, keepdims=True)
        self.save_for_backward(out, axis)
        return out

    def backward(self, grad):
        out, axis = self.saved
        return out * (grad - (grad * out).sum(axis=axis, keepdims=True))

    def backward_graph(self, grad):
        out, axis = self.saved_tensors()
        return out * (grad - (grad * out).sum(axis, keepdim=True))


class LogSoftmax(Function):
    def forward(self, x, axis=-1):
        shifted = x - x.max(axis=axis, keepdims=True)
        out = shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))
        self.save_for_backward(out, axis)
        return out

    def backward(self, grad):
        out, axis = self.saved
        return grad - np.exp(out) * grad.sum(axis=axis, keepdims=True)

    def backward_graph(self, grad):
        out, axis = self.saved_tensors()
        return grad - out.exp() * grad.sum(axis, keepdim=True)


_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))  # the dtypes Numba's kernels take


class CrossEntropy(Function):
    """Fused log_softmax + negative log-likelihood over axis 1 of (N, C, ...) logits.

    `target` is an int array of class indices (N, ...) or a float array of class probabilities
    shaped like the logits. Forward and backward cost one softmax each.
    """

    def forward(self, x, target=None, reduction="mean", label_smoothing=0.0, ignore_index=-100):
        C = x.shape[1]
        z = x if x.ndim == 2 else np.moveaxis(x, 1, -1).reshape(-1, C)  # (M, C), M = N * d1...
        t = target.reshape(-1)
        if target.dtype.kind == "i" and not label_smoothing and C and x.dtype in _FLOATS:
            logp, losses, count = kernels.log_softmax_nll(z, t, ignore_index)  # one pass
            q = None  # the one-hot targets, made only for backward_graph
        else:
            z = z - z.max(axis=1, keepdims=True)
            logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))  # (M, C)
            q, count = self._targets(target, x.dtype, logp, label_smoothing, ignore_index)
            losses = -(q * logp).sum(axis=1)  # (M,)
        self.save_for_backward(logp, q, t, ignore_index, x.shape, reduction, count)
        if reduction == "none":
            return losses.reshape((x.shape[0],) + x.shape[2:])
        total = losses.sum()
        return np.asarray(total / max(count, 1) if reduction == "mean" else total, x.dtype)

    @staticmethod
    def _targets(target, dtype, logp, label_smoothing, ignore_index) -> tuple:
        """(q, count): the target distribution of each row (M, C) and the rows counted."""
        C = logp.shape[1]
        if target.dtype.kind in "iu":
            t = target.reshape(-1)
            keep = t != ignore_index
            q = np.zeros_like(logp)
            q[np.nonzero(keep)[0], t[keep]] = 1
            if label_smoothing:  # in x's dtype: a bool times a Python float would be float64
                q = q * (1 - label_smoothing) + keep[:, None] * dtype.type(label_smoothing / C)
            return q, int(keep.sum())  # a Python int: float32 / np.int64 would give float64
        q = np.moveaxis(target, 1, -1).reshape(-1, C).astype(dtype, copy=False)
        return q * (1 - label_smoothing) + label_smoothing / C, q.shape[0]

    def _row_scale(self, grad, count, reduction):
        """The upstream gradient of each row's loss: grad / count, grad, or grad per row."""
        if reduction == "none":
            return grad.reshape(-1)
        return grad / max(count, 1) if reduction == "mean" else grad

    def backward(self, grad):
        logp, q, t, ignore_index, shape, reduction, count = self.saved
        scale = self._row_scale(grad, count, reduction)
        if q is None:
            scale = np.broadcast_to(np.asarray(scale, logp.dtype), logp.shape[:1])
            g = kernels.softmax_minus_one_hot(logp, t, ignore_index, scale)
        else:  # d/dz of -sum(q log softmax z) = softmax(z) * sum(q) - q
            g = np.exp(logp) * q.sum(axis=1, keepdims=True) - q  # (M, C)
            g = g * (scale.reshape(-1, 1) if reduction == "none" else scale)
        if len(shape) > 2:
            g = np.moveaxis(g.reshape((shape[0],) + shape[2:] + (shape[1],)), -1, 1)
        return g.astype(logp.dtype, copy=False), None

    def backward_graph(self, grad):
        logp, q, t, ignore_index, shape, reduction, count = self.saved
        if q is None:
            q, _ = self._targets(t, logp.dtype, logp, 0.0, ignore_index)

        def like_x(a):  # (M, C) or (M, 1) -> x's (N, C, ...) layout
            return np.moveaxis(a.reshape((shape[0],) + shape[2:] + a.shape[1:]), -1, 1)

        # The logits are not saved (as torch's log_softmax saves only its output, so writing
        # to them in place afterwards stays allowed): the log-probabilities stand for them,
        # since softmax(logp) = softmax(x), and gradients reaching them flow to the logits.
        p = Softmax.apply(_input_as(self, 0, like_x(logp)), axis=1)
        g = p * like_x(q.sum(axis=1, keepdims=True)) - like_x(q)
        if reduction == "none":
            return g * grad.reshape((shape[0], 1) + shape[2:])
        return g * (grad / max(count, 1) if reduction == "mean" else grad)


class BCEWithLogits(Function):
    """Elementwise max(x, 0) - x y + log(1 + exp(-|x|)): stable for any logit."""

    def forward(self, x, y):
        self.save_for_backward(x, y)
        return np.maximum(x, 0) - x * y + np.log1p(np.exp(-np.abs(x)))

    def backward(self, grad):
        x, y = self.saved
        gx = grad * (_sigmoid(x) - y) if self.needs_input_grad[0] else None
        gy = -grad * x if self.needs_input_grad[1] else None
        return gx, gy

    def backward_graph(self, grad):
        x, y = self.saved_tensors()
        gx = grad * (x.sigmoid() - y) if self.needs_input_grad[0] else None
        gy = -grad * x if self.needs_input_grad[1] else None
        return gx, gy


class BinaryCrossEntropy(Function):
    """Elementwise -(y log p + (1 - y) log(1 - p)) of probabilities p, as PyTorch computes it:
    the logs are clamped at -100 and the gradient's denominator p (1 - p) at 1e-12, so p = 0 or 1
    gives finite values and gradients."""

    def forward(self, p, y):
        with np.errstate(divide="ignore"):
            log_p, log_q = np.maximum(np.log(p), -100), np.maximum(np.log1p(-p), -100)
        self.save_for_backward(p, y, log_p, log_q)
        return -(y * log_p + (1 - y) * log_q)

    def backward(self, grad):
        p, y, log_p, log_q = self.saved
        gp = gy = None
        if self.needs_input_grad[0]:
            gp = grad * (p - y) / np.maximum(p * (1 - p), p.dtype.type(1e-12))
        if self.needs_input_grad[1]:
            gy = grad * (log_q - log_p)
        return gp, gy

    def backward_graph(self, grad):
        p, y, log_p, log_q = self.saved_tensors()  # the logs are derived: they stay arrays
        gp = gy = None
        if self.needs_input_grad[0]:
            gp = grad * (p - y) / (p * (1 - p)).clip(min=1e-12)
        if self.needs_input_grad[1]:
            gy = grad * (_clamped_log(1 - p, log_q) - _clamped_log(p, log_p))
        return gp, gy


def _clamped_log(t, clamped: np.ndarray):
    """log(t) as a Tensor where the saved `clamped` = max(log(t), -100) is above -100, the
    constant -100 (gradient 0) elsewhere, without ever taking log(0)."""
    keep = clamped > -100
    one = _const(np.ones((), t.dtype))
    return Where.apply(Where.apply(t, one, cond=keep).log(), _const(clamped), cond=keep)


class Dropout(Function):
    def forward(self, x, mask):
        self.save_for_backward(mask)
        return x * mask

    def backward(self, grad):
        return grad * self.saved[0]

    backward_graph = backward  # grad times the constant mask


# ---------------------------------------------------------------- normalisation


class BatchNorm(Function):
    """Normalise over every axis but 1 with the batch statistics; affine weight and bias.

    Inputs x (N, C, ...), weight (C,), bias (C,). When running statistics (numpy arrays) are
    given, they are updated in place with the unbiased batch variance, as in PyTorch.
    """

    def forward(self, x, weight, bias, eps=1e-5, running_mean=None, running_var=None,
                momentum=0.1):
        # a conv's batch-minor output takes the Numba loops (kernels.py): 3 passes instead of ~10
        self.fused = kernels.channel_rows(x) is not None and weight.dtype == bias.dtype == x.dtype
        self.eps = eps
        if self.fused:
            y, mean, var, inv_std = kernels.batch_norm_forward(x, weight, bias, eps)
            self.save_for_backward(x, mean, inv_std, weight)
        else:
            axes = (0,) + tuple(range(2, x.ndim))
            bshape = (1, -1) + (1,) * (x.ndim - 2)
            mean = x.mean(axis=axes, keepdims=True)
            var = x.var(axis=axes, keepdims=True)
            inv_std = 1 / np.sqrt(var + eps)
            x_hat = (x - mean) * inv_std
            self.save_for_backward(x_hat, inv_std, weight, axes, bshape, x)  # x: double backward
            y = x_hat * weight.reshape(bshape) + bias.reshape(bshape)
        if running_mean is not None:
            n = x.size // x.shape[1]
            running_mean *= 1 - momentum
            running_mean += momentum * mean.reshape(-1)
            running_var *= 1 - momentum
            running_var += (momentum * n / max(n - 1, 1)) * var.reshape(-1)
        return y

    def backward(self, grad):
        if self.fused:
            return kernels.batch_norm_backward(grad, *self.saved)
        x_hat, inv_std, weight, axes, bshape = self.saved[:5]
        gb = grad.sum(axis=axes)
        gw = (grad * x_hat).sum(axis=axes)
        gx = None
        if self.needs_input_grad[0]:
            m = grad.size // grad.shape[1]
            g_hat = grad * weight.reshape(bshape)
            gx = inv_std / m * (m * g_hat - g_hat.sum(axis=axes, keepdims=True)
                                - x_hat * (g_hat * x_hat).sum(axis=axes, keepdims=True))
        return gx, gw, gb

    def backward_graph(self, grad):
        saved = self.saved_tensors()
        x, weight = (saved[0], saved[3]) if self.fused else (saved[5], saved[2])
        axes = (0,) + tuple(range(2, x.ndim))
        return _norm_grads(grad, x, weight.reshape((1, -1) + (1,) * (x.ndim - 2)), axes, axes,
                           self.eps)


class LayerNorm(Function):
    """Normalise over the last `ndim` axes; weight and bias shaped like those axes."""

    def forward(self, x, weight, bias, ndim=1, eps=1e-5):
        axes = tuple(range(x.ndim - ndim, x.ndim))
        mean = x.mean(axis=axes, keepdims=True)
        inv_std = 1 / np.sqrt(x.var(axis=axes, keepdims=True) + eps)
        x_hat = (x - mean) * inv_std
        self.save_for_backward(x_hat, inv_std, weight, axes, x)  # x for double backward
        self.eps = eps
        return x_hat * weight + bias

    def backward(self, grad):
        x_hat, inv_std, weight, axes = self.saved[:4]
        lead = tuple(range(grad.ndim - len(axes)))
        gw = (grad * x_hat).sum(axis=lead)
        gb = grad.sum(axis=lead)
        m = math.prod(grad.shape[a] for a in axes)
        g_hat = grad * weight
        gx = inv_std / m * (m * g_hat - g_hat.sum(axis=axes, keepdims=True)
                            - x_hat * (g_hat * x_hat).sum(axis=axes, keepdims=True))
        return gx, gw, gb

    def backward_graph(self, grad):
        _, _, weight, axes, x = self.saved_tensors()
        return _norm_grads(grad, x, weight, axes, tuple(range(x.ndim - len(axes))), self.eps)


def _norm_grads(grad, x, weight, axes: tuple, lead: tuple, eps: float) -> tuple:
    """(gx, gweight, gbias) of y = x_hat * weight + bias, x_hat = x normalised over `axes`
    (biased variance), in Tensor ops on x and weight (broadcast to x), so that they can be
    differentiated again; `lead` are the axes that weight and bias are shared over."""
    m = math.prod(x.shape[a] for a in axes)
    centered = x - x.mean(axes, keepdim=True)
    inv_std = ((centered * centered).mean(axes, keepdim=True) + eps) ** -0.5
    x_hat = centered * inv_std
    g_hat = grad * weight
    gx = inv_std / m * (m * g_hat - g_hat.sum(axes, keepdim=True)
                        - x_hat * (g_hat * x_hat).sum(axes, keepdim=True))
    return gx, (grad * x_hat).sum(lead), grad.sum(lead)


def _input_as(node: Function, i: int, value: np.ndarray):
    """A Tensor of `value` standing in the graph for input i of `node` (what reaches it flows
    to that input's node), or the input itself when it is a leaf: for an op that saved a
    function of an input rather than the input (CrossEntropy)."""
    parent = node.parents[i]
    return Function._out_type._from_node(value, parent) if isinstance(parent, Function) else parent
