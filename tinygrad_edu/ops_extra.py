"""Primitive Functions behind the PyTorch surface (issue 14), forward and backward side by side.

Everything else of that surface (flip, roll, topk, sort, index_select, masked_fill, norm...) is
composed from the engine's ops in `functions.py`; these three need a backward of their own.
"""
from __future__ import annotations

import numpy as np

from . import ops
from .autograd import Function


class Cumsum(Function):
    """Running sum along `axis`; the gradient is the running sum of `grad` taken backwards."""

    def forward(self, x, axis):
        self.save_for_backward(axis)
        return np.cumsum(x, axis=axis)

    def backward(self, grad):
        axis, = self.saved
        return np.flip(np.cumsum(np.flip(grad, axis), axis=axis), axis)

    def backward_graph(self, grad):
        axis, = self.saved
        flip = (slice(None),) * axis + (slice(None, None, -1),)
        return Cumsum.apply(grad[flip], axis=axis)[flip]


class Prod(Function):
    """Product over `axis` (None: all). d prod / d x_i is the product of the other elements,
    computed without dividing so that zeros in x give PyTorch's exact gradients."""

    def forward(self, x, axis=None, keepdims=False):
        self.save_for_backward(x, axis, keepdims)
        return np.prod(x, axis=axis, keepdims=keepdims)

    def backward(self, grad):
        x, axis, keepdims = self.saved
        if axis is None:
            flat = x.reshape(-1, 1)                                  # (n, 1)
            others = _prod_of_others(flat, 0).reshape(x.shape)
            return others * grad
        others = _prod_of_others(x, axis)
        return others * (grad if keepdims else np.expand_dims(grad, axis))


def _prod_of_others(x: np.ndarray, axis: int) -> np.ndarray:
    """For each element, the product of all the others along `axis` (prefix * suffix products)."""
    ones = np.ones_like(np.take(x, [0], axis=axis))
    before = np.cumprod(np.concatenate([ones, np.take(x, range(x.shape[axis] - 1), axis=axis)],
                                       axis=axis), axis=axis)
    rev = np.flip(x, axis)
    after = np.flip(np.cumprod(np.concatenate(
        [ones, np.take(rev, range(x.shape[axis] - 1), axis=axis)], axis=axis), axis=axis), axis)
    return before * after


class Scatter(Function):
    """Out-of-place `x.scatter(dim, index, src)`: out = x, then out[index[i]][j] = src[i][j] along
    `dim` (`reduce='add'`: out[...] += src[i][j]). Gradients: x gets grad where nothing was
    written (all of it for 'add'), src gets grad gathered at the written places."""

    def forward(self, x, src, index, axis, add=False):
        full = _full_index(index, axis)
        self.save_for_backward(full, add, src.shape)
        values = src[tuple(slice(0, n) for n in index.shape)]    # src may be larger than index
        out = x.copy()
        if add:
            np.add.at(out, full, values)
        else:
            out[full] = values
        return out

    def backward(self, grad):
        full, add, src_shape = self.saved
        gx = grad.copy()
        if not add:
            gx[full] = 0
        return gx, _pad_to(grad[full], src_shape)

    def backward_graph(self, grad):
        full, add, src_shape = self.saved
        keep = np.ones(grad.shape, grad.dtype)
        if not add:
            keep[full] = 0
        gsrc = grad[full]
        if gsrc.shape != src_shape:
            gsrc = ops.Pad.apply(gsrc, width=tuple((0, s - n) for s, n in zip(src_shape,
                                                                                gsrc.shape)))
        return grad * keep, gsrc


def _pad_to(a: np.ndarray, shape: tuple) -> np.ndarray:
    """`a` in the top-left corner of a zero array of `shape` (src may be larger than index)."""
    if a.shape == shape:
        return a
    out = np.zeros(shape, a.dtype)
    out[tuple(slice(0, n) for n in a.shape)] = a
    return out


def _full_index(index: np.ndarray, axis: int) -> tuple:
    """The advanced index that addresses, for each element of `index`, its target along `axis`
    and its own position along every other axis (torch.scatter / gather's rule)."""
    grids = np.ix_(*[np.arange(n) for n in index.shape])
    return tuple(index if d == axis else grids[d] for d in range(index.ndim))


class Log1p(Function):
    """log(1 + x), exact for small x."""

    def forward(self, x):
        self.save_for_backward(x)
        return np.log1p(x)

    def backward(self, grad):
        x, = self.saved
        return grad / (1 + x)

    def backward_graph(self, grad):
        x, = self.saved_tensors()
        return grad / (1 + x)


class Expm1(Function):
    """exp(x) - 1, exact for small x."""

    def forward(self, x):
        out = np.asarray(np.expm1(x))  # an array even when 0-d: saved as the output itself
        self.save_for_backward(out)
        return out

    def backward(self, grad):
        out, = self.saved
        return grad * (out + 1)

    def backward_graph(self, grad):
        out, = self.saved_tensors()
        return grad * (out + 1)


class Sin(Function):
    def forward(self, x):
        self.save_for_backward(x)
        return np.sin(x)

    def backward(self, grad):
        x, = self.saved
        return grad * np.cos(x)

    def backward_graph(self, grad):
        return grad * Cos.apply(self.saved_tensors()[0])


class Cos(Function):
    def forward(self, x):
        self.save_for_backward(x)
        return np.cos(x)

    def backward(self, grad):
        x, = self.saved
        return -grad * np.sin(x)

    def backward_graph(self, grad):
        return -grad * Sin.apply(self.saved_tensors()[0])


class Einsum(Function):
    """`np.einsum(spec, *operands)`; each operand's gradient is the einsum of the output's
    gradient with the other operands into that operand's labels (labels only that operand has
    are summed out in forward, so their gradient is broadcast back)."""

    def forward(self, *operands, inputs, output):
        self.save_for_backward(*operands)  # each operand itself, for double backward
        self.inputs, self.output = inputs, output
        return np.einsum(f"{','.join(inputs)}->{output}", *operands)

    def backward(self, grad):
        grads = []
        for k, x, spec, kept_shape in self._gradient_specs():
            others = [o for j, o in enumerate(self.saved) if j != k]
            g = np.einsum(spec, grad, *others).reshape(kept_shape)
            grads.append(np.broadcast_to(g, x.shape).copy())
        return tuple(grads)

    def backward_graph(self, grad):
        operands = self.saved_tensors()
        grads = []
        for k, x, spec, kept_shape in self._gradient_specs():
            others = [o for j, o in enumerate(operands) if j != k]
            into, _, out = spec.partition("->")
            g = Einsum.apply(grad, *others, inputs=tuple(into.split(",")), output=out)
            grads.append(ops.Expand.apply(g.reshape(kept_shape), shape=x.shape))
        return tuple(grads)

    def _gradient_specs(self):
        """(k, operand k, einsum spec of its gradient, that gradient's shape with 1 for the
        labels only operand k has, which are summed out in forward and broadcast back)."""
        for k, (x, labels) in enumerate(zip(self.saved, self.inputs)):
            others = [s for j, s in enumerate(self.inputs) if j != k]
            known = set(self.output).union(*[set(s) for s in others])
            kept = "".join(c for c in labels if c in known)
            spec = ",".join([self.output] + others) + "->" + kept
            yield k, x, spec, tuple(n if c in known else 1 for c, n in zip(labels, x.shape))


class Piecewise(Function):
    """A piecewise-constant function (floor, ceil, round, trunc, sign): its gradient is zero
    everywhere, but, as in torch, the output stays in the graph."""

    def forward(self, x, fn):
        return fn(x)

    def backward(self, grad):
        return np.zeros_like(grad)

    def backward_graph(self, grad):
        return grad * 0.0
