"""In-place ops and views in the graph: how `y.mul_(3)`, `x += y`, `b[0] = 0` and a write through
`x.T` or `x[0]` keep every gradient right (PyTorch's rules, docs/autograd.md).

- An in-place op runs the out-of-place Function on the tensor's current value and writes the
  result into its memory; the tensor then stands for the new node (`y.grad_fn` is the Mul).
- A view (`x[0]`, `x.T`, `x.view(...)`, `x.expand(...)`) shares its base's memory and version
  counter and remembers how to rebuild itself from the base (`view_fn`). A write through a view is
  recorded on the base as a `CopyView` node; other views of the base rebuild their node from the
  base the next time they are used (`sync_view`).
- Every in-place op moves the shared version counter on; a Function that saved the old array
  refuses to run backward (`Function.check_versions`).
"""
from __future__ import annotations

import numpy as np

from . import autograd, ops
from .autograd import Function, no_grad


def check_allowed(t, op: str) -> None:
    """PyTorch's refusals, before anything is written."""
    if not autograd.is_grad_enabled():
        return
    base = t if t._view is None else t._view[0]
    if base._ctx is None and base.requires_grad:
        what = "a leaf Variable" if base is t else "a view of a leaf Variable"
        raise RuntimeError(f"{op}: {what} that requires grad is being used in an in-place "
                           f"operation (outside no_grad); clone it first, or do the update "
                           f"inside `with tg.no_grad():`")


def apply(t, op: str, compute):
    """`t` becomes `compute(t)` in place; `compute` applies one Function to t (and constants).

    Returns t. Refuses, like PyTorch, a result of another shape or of a dtype t cannot hold, and
    a tensor whose memory is shared by several elements (an expanded view).
    """
    check_allowed(t, op)
    if not t.array.flags.writeable:
        raise RuntimeError(f"{op}: unsupported operation: more than one element of the written-to "
                           f"tensor refers to a single memory location (an expanded tensor). "
                           f"Please clone() the tensor before performing the operation.")
    sync_view(t)
    prev, autograd._new_nodes = autograd._new_nodes, []
    try:
        out = compute(t)
        created = autograd._new_nodes
    finally:
        autograd._new_nodes = prev
    _check_result(t, out, op)
    if t._view is not None and t._view[3]:
        _check_ambiguous_view(t, out, op)
    if out._ctx is None and t.requires_grad and autograd.is_grad_enabled():
        # the new value does not depend on the graph (sign_, a constant): gradient 0 to t
        out = ops.IndexPut.apply(t, out.to(t.dtype), index=Ellipsis)
    node = out._ctx
    if node is not None:
        _copy_saved_aliases(created, node, t.array)
    if node is not None and t._view is not None:
        base, view_fn = t._view[0], t._view[1]
        merged = ops.CopyView.apply(base, out, view=numpy_view(view_fn), view_fn=view_fn)
        base._ctx, base.requires_grad = merged._ctx, True
    elif out.array is not t.array:
        t.array[...] = out.array
    t._vc.value += 1
    t._vc.op = op
    if node is not None:
        _output_is(node, out.array, t)
        if t._view is None:
            if t._ctx is not None and t._ctx.retained is t:
                t._ctx.retained = None
                node.retained = t
            t._ctx, t.requires_grad = node, True
        else:
            sync_view(t)
    return t


_AMBIGUOUS_VIEW = {
    "no_grad": "{op}: a view was created in no_grad mode and is being modified in place with "
               "grad mode enabled; torch forbids this ambiguous case. Move both the view and the "
               "in-place op inside the no_grad block (not tracked) or both outside (tracked)",
    "split": "{op}: this tensor is one of the views returned by split/chunk, which returns "
             "several views of one tensor; torch does not allow them to be modified in place "
             "when that is recorded by autograd. Use an out-of-place op, or clone() the piece",
    "unbind": "{op}: this tensor is one of the views returned by unbind, which returns several "
              "views of one tensor; torch does not allow them to be modified in place when that "
              "is recorded by autograd. Use an out-of-place op, or clone() the piece",
}


def _check_ambiguous_view(t, out, op: str) -> None:
    """torch's refusals of recorded writes to a view made under no_grad or by split/unbind."""
    why = t._view[3]
    recorded = out._ctx is not None
    if why == "no_grad":
        recorded = autograd.is_grad_enabled() and (recorded or t._view[0].requires_grad)
    if recorded:
        raise RuntimeError(_AMBIGUOUS_VIEW[why].format(op=op))


def _check_result(t, out, op: str) -> None:
    if out.shape != t.shape:
        raise RuntimeError(f"{op}: output with shape {list(t.shape)} doesn't match the broadcast "
                           f"shape {list(out.shape)}; an in-place op keeps the tensor's shape, so "
                           f"use the out-of-place op (x = x + y) to get the larger one")
    if out.dtype != t.dtype and not np.can_cast(out.dtype, t.dtype, "same_kind"):
        raise RuntimeError(f"{op}: result type {out.dtype} can't be cast to the desired output "
                           f"type {t.dtype}; convert the tensor first (x = x.float()) or use the "
                           f"out-of-place op")


def _copy_saved_aliases(nodes: list, top: Function, arr: np.ndarray) -> None:
    """Nodes made by this in-place op that saved (a view of) the memory about to be overwritten
    keep a copy of the old value instead, so the op's own write does not corrupt them (torch
    saves the original self of `y.mul_(o)` the same way). Except where the op's other operand IS
    that memory (`y.mul_(y)`): torch keeps that one by reference, so backward refuses."""
    root = autograd.memory_root(arr)
    for node in nodes:
        saved = getattr(node, "saved", None)
        if not saved:
            continue
        hit = {j for j, a in enumerate(saved)
               if type(a) is np.ndarray and autograd.memory_root(a) is root}
        if node is top:
            hit -= {j for j, i in node.sources if i > 0 and i < len(node.parents)}
        if hit:
            node.saved = tuple(a.copy() if j in hit else a for j, a in enumerate(saved))
            node.versions = tuple(v for v in node.versions if v[0] not in hit)
            node.sources = tuple(s for s in node.sources if s[0] not in hit)


def _output_is(node: Function, fresh: np.ndarray, t) -> None:
    """The node's output is now t's memory: what it saved of its output is t's array, checked
    against t's version counter from here on (so a later write to t refuses backward)."""
    saved = getattr(node, "saved", None)
    if not saved:
        return
    hit = {j for j, a in enumerate(saved) if a is fresh}
    if not hit:
        return
    node.saved = tuple(t.array if j in hit else a for j, a in enumerate(saved))
    out_index = len(node.parents)
    node.versions = tuple(v for v in node.versions if v[0] not in hit) + tuple(
        (j, out_index, t._vc, t._vc.value) for j in hit)


# ---------------------------------------------------------------- views


def as_view(out, of, view_fn):
    """Mark `out` (whose array is a view of `of`'s) as a view: it shares the version counter, and
    `view_fn(base)` rebuilds it from the root base. Returns out."""
    if of._view is None:
        base, full = of, view_fn
    else:
        base, parent = of._view[0], of._view[1]

        def full(b):
            return view_fn(parent(b))
    # base, view_fn, the version its node was built at, why a recorded write is refused
    out._view = [base, full, of._vc.value, None if autograd.is_grad_enabled() else "no_grad"]
    out._vc = of._vc
    return out


def mark_multi(views: tuple, op: str) -> tuple:
    """The pieces of split / chunk / unbind: torch refuses recorded in-place writes to them."""
    for v in views:
        if v._view is not None:
            v._view[3] = op
    return views


def sync_view(t) -> None:
    """After the base (or another view of it) was written in place, rebuild this view's node
    from the base's current one, so gradients flow through the write."""
    v = t._view
    if v is None or v[2] == t._vc.value:
        return
    base, view_fn = v[0], v[1]
    if base.requires_grad:
        if not autograd.is_grad_enabled():
            return  # rebuilt the next time it is used with grad on
        fresh = view_fn(base)
        t._ctx, t.requires_grad = fresh._ctx, True
        if t._retain:
            fresh._ctx.retained = t
    v[2] = t._vc.value


def numpy_view(view_fn):
    """The same view on a plain array (writable where the view op allows it)."""
    T = Function._out_type

    def view(arr: np.ndarray) -> np.ndarray:
        with no_grad():
            return view_fn(T._wrap(arr)).array
    return view


def same_memory(a: np.ndarray, b: np.ndarray) -> bool:
    """True if array a is a view into b's buffer (numpy keeps the owner as `base`)."""
    return autograd.memory_root(a) is autograd.memory_root(b)
