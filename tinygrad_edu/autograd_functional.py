"""`tg.autograd.functional`: Jacobians, Hessians and their products of a Python function, like
`torch.autograd.functional`, built on `autograd.grad` (create_graph where a second derivative is
taken). Inputs and outputs are a Tensor or a tuple of Tensors, as in torch.

    f = lambda x: (x ** 3).sum()
    tg.autograd.functional.hessian(f, tg.tensor([1.0, 2.0]))   # diag(6 x)
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .autograd import Function, enable_grad, grad


def _tuple(x) -> tuple:
    return tuple(x) if isinstance(x, (tuple, list)) else (x,)


def _prepare(inputs) -> tuple:
    """Fresh leaves that require grad, sharing nothing with the caller's graph."""
    return tuple(t.detach().requires_grad_(True) for t in _tuple(inputs))


def _zeros_for(grads, inputs) -> tuple:
    T = Function._out_type
    return tuple(T._wrap(np.zeros_like(x.array)) if g is None else g
                 for g, x in zip(grads, inputs))


def _finish(values, create_graph: bool):
    return tuple(v if create_graph else v.detach() for v in values)


def _call(func: Callable, xs: tuple):
    """func(*xs) as a tuple, and whether it returned one tensor."""
    out = func(*xs)
    return _tuple(out), not isinstance(out, (tuple, list))


def _shape_like(values: tuple, single: bool):
    return values[0] if single else values


def _dot(gs: tuple, vs: tuple):
    """sum_i <g_i, v_i> as a 0-d tensor."""
    total = None
    for g, w in zip(gs, vs):
        term = (g * w).sum()
        total = term if total is None else total + term
    return total


def vjp(func: Callable, inputs, v=None, create_graph: bool = False, strict: bool = False):
    """(func(inputs), v^T J): the vector-Jacobian product."""
    xs, single_in = _prepare(inputs), not isinstance(inputs, (tuple, list))
    with enable_grad():
        outs, single_out = _call(func, xs)
        gs = grad(outs, xs, None if v is None else _tuple(v), create_graph=create_graph,
                  allow_unused=True)
    return (_shape_like(_finish(outs, create_graph), single_out),
            _shape_like(_finish(_zeros_for(gs, xs), create_graph), single_in))


def jvp(func: Callable, inputs, v=None, create_graph: bool = False, strict: bool = False):
    """(func(inputs), J v), by the double-vjp trick: J v = d/du (u^T J) v."""
    T = Function._out_type
    xs = _prepare(inputs)
    vs = _tuple(v) if v is not None else tuple(T._wrap(np.ones_like(x.array)) for x in xs)
    with enable_grad():
        outs, single_out = _call(func, xs)
        us = tuple(T._wrap(np.zeros_like(o.array)).requires_grad_(True) for o in outs)
        gs = _zeros_for(grad(outs, xs, us, create_graph=True, allow_unused=True), xs)
        jv = _zeros_for(grad(_dot(gs, vs), us, create_graph=create_graph, allow_unused=True), us)
    return (_shape_like(_finish(outs, create_graph), single_out),
            _shape_like(_finish(jv, create_graph), single_out))


def jacobian(func: Callable, inputs, create_graph: bool = False, strict: bool = False,
             vectorize: bool = False):
    """d func / d inputs, one vjp per output element: each block has shape output.shape +
    input.shape (nested tuples for several outputs and inputs, as torch)."""
    xs, single_in = _prepare(inputs), not isinstance(inputs, (tuple, list))
    with enable_grad():
        outs, single_out = _call(func, xs)
        table = []
        for o in outs:
            rows = [[] for _ in xs]
            flat = o.reshape(-1)
            for k in range(flat.shape[0]):
                gs = _zeros_for(grad(flat[k], xs, retain_graph=True, create_graph=create_graph,
                                     allow_unused=True), xs)
                for i, g in enumerate(gs):
                    rows[i].append(g if create_graph else g.detach())
            table.append(tuple(_stack(r, o.shape, x.shape) for r, x in zip(rows, xs)))
    per_output = [_shape_like(row, single_in) for row in table]
    return _shape_like(tuple(per_output), single_out)


def _stack(rows: list, out_shape: tuple, in_shape: tuple):
    from .tensor import stack
    if not rows:
        return Function._out_type._wrap(np.zeros(tuple(out_shape) + tuple(in_shape)))
    return stack(rows).reshape(tuple(out_shape) + tuple(in_shape))


def hessian(func: Callable, inputs, create_graph: bool = False, strict: bool = False,
            vectorize: bool = False):
    """The Jacobian of the gradient of a scalar function: shape input.shape * 2."""
    single = not isinstance(inputs, (tuple, list))

    def gradient(*xs):
        out = func(*xs)
        if out.array.size != 1:
            raise RuntimeError(f"hessian: the function must return a single-element tensor, got "
                               f"shape {out.shape}")
        gs = _zeros_for(grad(out, xs, create_graph=True, allow_unused=True), xs)
        return gs[0] if single else gs
    return jacobian(gradient, inputs, create_graph=create_graph)


def hvp(func: Callable, inputs, v, create_graph: bool = False, strict: bool = False):
    """(func(inputs), H v) of a scalar function: one double backward, no Hessian built."""
    xs, single_in = _prepare(inputs), not isinstance(inputs, (tuple, list))
    with enable_grad():
        out = func(*xs)
        gs = _zeros_for(grad(out, xs, create_graph=True, allow_unused=True), xs)
        hv = _zeros_for(grad(_dot(gs, _tuple(v)), xs, create_graph=create_graph,
                             allow_unused=True), xs)
    return (out if create_graph else out.detach()), _shape_like(_finish(hv, create_graph),
                                                                single_in)


vhp = hvp  # H is symmetric for a twice continuously differentiable function
