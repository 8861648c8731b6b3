"""The autograd engine: Function (one node of the graph), no_grad, and the backward pass.

This module never imports Tensor: a Function builds its output with the class of its first input,
and the backward pass only needs each tensor's `data`, `grad`, `_ctx` and `requires_grad`.
"""
from __future__ import annotations

import functools

import numpy as np

_grad_enabled = True


def is_grad_enabled() -> bool:
    """True unless inside `no_grad()`."""
    return _grad_enabled


class no_grad:
    """Context manager and decorator that turns graph building off, like `torch.no_grad()`.

        with tg.no_grad():
            y = model(x)        # y.requires_grad is False, no graph is kept
    """

    def __enter__(self):
        global _grad_enabled
        self.prev, _grad_enabled = _grad_enabled, False
        return self

    def __exit__(self, *exc):
        global _grad_enabled
        _grad_enabled = self.prev
        return False

    def __call__(self, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with no_grad():
                return fn(*args, **kwargs)
        return wrapper


class enable_grad(no_grad):
    """Turn graph building back on inside a `no_grad()` block."""

    def __enter__(self):
        global _grad_enabled
        self.prev, _grad_enabled = _grad_enabled, True
        return self


class Function:
    """One primitive op: `forward` maps numpy arrays to an array, `backward` maps the output's
    gradient to one gradient per tensor input (or None where none is needed).

    Gradients may come back with a broadcast shape: the engine sums them to each parent's shape.
    """

    __slots__ = ("needs_input_grad", "out_shape", "parents", "retained", "saved")
    _out_type: type = None  # the Tensor class; set by tensor.py, so this module never imports it

    def save_for_backward(self, *arrays) -> None:
        self.saved = arrays

    def forward(self, *args, **kwargs) -> np.ndarray:
        raise NotImplementedError

    def backward(self, grad: np.ndarray):
        raise NotImplementedError

    @classmethod
    def apply(cls, *tensors, **kwargs):
        """Run forward on the tensors' arrays; record the node when an input needs a gradient."""
        ctx = cls()
        out = object.__new__(Function._out_type)
        data = ctx.forward(*[t.data for t in tensors], **kwargs)
        # numpy ufuncs turn 0-d results into numpy scalars, which in-place methods cannot write
        out.data = data if type(data) is np.ndarray else np.asarray(data)
        out.grad = None
        out._retain = False
        if _grad_enabled:
            needs = tuple(t.requires_grad for t in tensors)
            if True in needs:
                # The graph links nodes, not tensors: an input made by another op is recorded as
                # that op, so an intermediate array is freed as soon as nothing but the graph
                # would hold it (PyTorch's rule); only what forward saved stays.
                ctx.parents = tuple(t if t._ctx is None else t._ctx for t in tensors)
                ctx.needs_input_grad = needs
                ctx.out_shape = out.data.shape
                out.requires_grad = True
                out._ctx = ctx
                return out
        out.requires_grad = False
        out._ctx = None
        return out


def unbroadcast(grad: np.ndarray, shape: tuple, op: str) -> np.ndarray:
    """Sum a gradient back to `shape`, undoing numpy broadcasting; the one place this happens."""
    if grad.shape == shape:
        return grad
    extra = grad.ndim - len(shape)
    if extra < 0:
        raise RuntimeError(f"{op}.backward: gradient of shape {grad.shape} is smaller than its "
                           f"input's shape {shape}")
    axes = tuple(range(extra)) + tuple(
        i + extra for i, n in enumerate(shape) if n == 1 and grad.shape[i + extra] != 1)
    if axes:
        grad = grad.sum(axis=axes, keepdims=True)
    if extra:
        grad = grad.reshape(grad.shape[extra:])
    if grad.shape != shape:
        raise RuntimeError(f"{op}.backward returned a gradient of shape {grad.shape} for an input "
                           f"of shape {shape}")
    return grad


def toposort(root: Function) -> list:
    """Function nodes reachable from `root`, parents before children (leaf tensors excluded).

    Iterative (an explicit stack), so chains of any length stay within Python's recursion limit.
    """
    order, visited = [], set()
    stack = [(root, False)]
    while stack:
        node, done = stack.pop()
        if done:
            order.append(node)
            continue
        if id(node) in visited:
            continue
        visited.add(id(node))
        stack.append((node, True))
        for p in node.parents:
            if isinstance(p, Function) and id(p) not in visited:
                stack.append((p, False))
    return order


_FREED = "graph freed"


def backward(root, grad: np.ndarray, retain_graph: bool = False) -> None:
    """Reverse-mode pass from `root`: accumulate d(root)/d(leaf) into every leaf's `.grad`.

    Gradients of intermediate tensors live in a dict for the pass only (unless `retain_grad()`).
    Without `retain_graph`, each node's saved arrays and parents are released after use, as
    PyTorch does, so a kept output (say, a loss in a list) does not keep the activations alive.
    """
    if root._ctx is None:  # a leaf: the seed is its gradient
        _accumulate(root, grad, owned=False)
        return
    grads = {id(root._ctx): grad}  # gradient of each node's output, for this pass only
    for ctx in reversed(toposort(root._ctx)):
        g = grads.pop(id(ctx), None)
        if g is None:
            continue
        if getattr(ctx, "retained", None) is not None:  # its tensor called retain_grad()
            _accumulate(ctx.retained, g, owned=False)
        if getattr(ctx, "saved", None) is _FREED:
            raise RuntimeError(
                f"{type(ctx).__name__}: trying to backward through the graph a second time; its "
                "saved values were freed. Call backward(retain_graph=True) the first time.")
        gs = ctx.backward(g)
        if not isinstance(gs, tuple):
            gs = (gs,)
        parents = ctx.parents
        if not retain_graph:  # drop saved arrays and parents: activations can be freed now
            ctx.saved, ctx.parents, ctx.retained = _FREED, (), None
        handed_out = {id(g)}  # arrays a leaf may not keep: passed through, or given twice
        for p, gp, need in zip(parents, gs, ctx.needs_input_grad):
            if not need or gp is None:
                continue
            if isinstance(p, Function):
                gp = unbroadcast(gp, p.out_shape, type(ctx).__name__)
                prev = grads.get(id(p))
                grads[id(p)] = gp if prev is None else prev + gp
            else:
                gp = unbroadcast(gp, p.data.shape, type(ctx).__name__)
                _accumulate(p, gp, owned=id(gp) not in handed_out)
                handed_out.add(id(gp))


def _accumulate(t, g: np.ndarray, owned: bool) -> None:
    """`t.grad += g`, creating the gradient tensor on first use (in t's dtype and layout).

    A fresh array that owns its memory and that nothing else was handed (`owned`, as a weight
    gradient computed by a GEMM) becomes the gradient as is; anything else is copied, so that
    `.grad` never shares memory with another gradient, a saved array or the caller's input.
    """
    if g.dtype != t.data.dtype:
        g, owned = g.astype(t.data.dtype), True
    if t.grad is None:
        if not (owned and g.base is None):
            copy = np.empty_like(t.data)  # the parameter's layout, which the optimizer loops over
            copy[...] = g
            g = copy
        t.grad = Function._out_type._wrap(g)
    else:
        t.grad.data = np.asarray(t.grad.data + g)  # asarray: 0-d sums come back as scalars
