"""The autograd engine: Function (one node of the graph), grad modes, anomaly mode, and the
backward pass, first order on numpy arrays or, with `create_graph`, on Tensors (higher order).

This module never imports Tensor: a Function builds its output with the class of its first input,
and the backward pass only needs each tensor's `data`, `grad`, `_ctx` and `requires_grad`.
How the graph, views, version counters and double backward work: docs/autograd.md.
"""
from __future__ import annotations

import functools
import itertools
import os
import sys

import numpy as np

_grad_enabled = True
_anomaly_enabled = False
_new_nodes: list | None = None  # while an in-place op runs: the nodes it creates (tensor.py)


def is_grad_enabled() -> bool:
    """True unless inside `no_grad()`."""
    return _grad_enabled


class no_grad:
    """Context manager and decorator that turns graph building off, like `torch.no_grad()`.

        with tg.no_grad():
            y = model(x)        # y.requires_grad is False, no graph is kept
    """

    mode = False

    def __enter__(self):
        global _grad_enabled
        self.prev, _grad_enabled = _grad_enabled, self.mode
        return self

    def __exit__(self, *exc):
        global _grad_enabled
        _grad_enabled = self.prev
        return False

    def __call__(self, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with type(self)():
                return fn(*args, **kwargs)
        return wrapper


class enable_grad(no_grad):
    """Turn graph building back on inside a `no_grad()` block."""

    mode = True


class inference_mode(no_grad):
    """`torch.inference_mode(mode=True)`: here the same as no_grad (mode=False: grad on)."""

    def __init__(self, mode: bool = True):
        self.mode = not mode


class set_grad_enabled(no_grad):
    """Graph building on or off, like `torch.set_grad_enabled`: as a call it takes effect at
    once; as a context manager it is undone on exit.

        tg.set_grad_enabled(False)            # off from here on
        with tg.set_grad_enabled(is_train):   # on or off for the block
            loss = model(x).sum()
    """

    def __init__(self, mode: bool):
        global _grad_enabled
        self.mode, self.prev = bool(mode), _grad_enabled
        _grad_enabled = self.mode

    def __enter__(self):
        return self

    def __call__(self, fn):
        mode, prev = self.mode, self.prev
        set_grad_enabled(prev)

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with set_grad_enabled(mode):
                return fn(*args, **kwargs)
        return wrapper


# ---------------------------------------------------------------- anomaly mode


def set_detect_anomaly(mode: bool) -> None:
    """Anomaly mode on or off, like `torch.autograd.set_detect_anomaly`: forward records the
    user's source line of every Function (`node.trace`), and a backward that produces NaN or inf
    raises naming the Function and that line."""
    global _anomaly_enabled
    _anomaly_enabled = bool(mode)


def is_anomaly_enabled() -> bool:
    return _anomaly_enabled


class detect_anomaly:
    """Context manager (and decorator) for anomaly mode, like `torch.autograd.detect_anomaly()`.

        with tg.autograd.detect_anomaly():
            loss = model(x).log().sum()     # a NaN gradient now names this line
            loss.backward()
    """

    def __enter__(self):
        self.prev = _anomaly_enabled
        set_detect_anomaly(True)
        return self

    def __exit__(self, *exc):
        set_detect_anomaly(self.prev)
        return False

    def __call__(self, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with detect_anomaly():
                return fn(*args, **kwargs)
        return wrapper


_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


def user_frame() -> str:
    """'File "f.py", line 12, in fn\\n    code': the innermost caller outside tinygrad_edu/."""
    frame = sys._getframe(1)
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(
            _PACKAGE_DIR + os.sep):
        frame = frame.f_back
    if frame is None:
        return "(created inside tinygrad_edu)"
    import linecache
    line = linecache.getline(frame.f_code.co_filename, frame.f_lineno).strip()
    return (f'File "{frame.f_code.co_filename}", line {frame.f_lineno}, in '
            f'{frame.f_code.co_name}\n    {line}')


# ---------------------------------------------------------------- hooks


class RemovableHandle:
    """What `register_hook` (and Module's `register_forward_hook`) return: `remove()` unregisters
    the hook, like `torch.utils.hooks.RemovableHandle`."""

    _ids = itertools.count()

    def __init__(self, hooks: dict):
        self.hooks, self.id = hooks, next(RemovableHandle._ids)

    def remove(self) -> None:
        self.hooks.pop(self.id, None)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.remove()
        return False


def add_hook(hooks: dict | None, fn) -> tuple[dict, RemovableHandle]:
    """Register `fn` in `hooks` (created when None); returns the dict and the handle."""
    hooks = {} if hooks is None else hooks
    handle = RemovableHandle(hooks)
    hooks[handle.id] = fn
    return hooks, handle


# ---------------------------------------------------------------- Function


class Version:
    """The version counter that a tensor shares with its views: every in-place op adds one, and
    backward compares it with the value each Function saw when it saved the array."""

    __slots__ = ("op", "value")

    def __init__(self):
        self.value, self.op = 0, None


class Function:
    """One primitive op: `forward` maps numpy arrays to an array, `backward` maps the output's
    gradient to one gradient per tensor input (or None where none is needed).

    `backward_graph(grad)` is the same rule written with Tensor ops, on `self.saved_tensors()`:
    the engine calls it for `create_graph=True`, so the gradient is itself differentiable.
    Gradients may come back with a broadcast shape: the engine sums them to each parent's shape.
    """

    __slots__ = ("hooks", "needs_input_grad", "out_shape", "parents", "posthooks",
                 "prehooks", "retained", "saved", "scratch", "sources", "trace", "versions")
    _out_type: type = None  # the Tensor class; set by tensor.py, so this module never imports it
    overwrites_grad = False  # True: backward asks may_overwrite(self, grad) (the engine checks)

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
        for t in tensors:
            if t._view is not None:  # a view whose base was written: rebuild its node first
                t._sync_view()
        needs = tuple(t.requires_grad for t in tensors)
        record = _grad_enabled and True in needs
        ctx.needs_input_grad = needs if record else (False,) * len(tensors)
        out = object.__new__(Function._out_type)
        data = ctx.forward(*[t.array for t in tensors], **kwargs)
        # numpy ufuncs turn 0-d results into numpy scalars, which in-place methods cannot write
        out.array = data if type(data) is np.ndarray else np.asarray(data)
        out.grad = out._view = out._hooks = None
        out._retain = False
        out._vc = Version()
        if record:
            # The graph links nodes, not tensors: an input made by another op is recorded as
            # that op, so an intermediate array is freed as soon as nothing but the graph
            # would hold it (PyTorch's rule); only what forward saved stays.
            ctx.parents = tuple(t if t._ctx is None else t._ctx for t in tensors)
            ctx.out_shape = out.array.shape
            ctx.retained = ctx.hooks = ctx.prehooks = ctx.posthooks = None
            if getattr(ctx, "saved", None):
                ctx._note_saved(tensors, out)
            else:
                ctx.versions = ctx.sources = ()
            if _anomaly_enabled:
                ctx.trace = user_frame()
            if _new_nodes is not None:
                _new_nodes.append(ctx)
            out.requires_grad = True
            out._ctx = ctx
            return out
        out.requires_grad = False
        out._ctx = None
        return out

    def _note_saved(self, tensors, out) -> None:
        """For each saved array that is (a view of) an input's or the output's array, note the
        tensor's version now, so backward can refuse if it was modified in place since; and note
        the arrays that ARE an input or the output, the graph-connected values for double
        backward (`saved_tensors`)."""
        everyone = tensors + (out,)
        roots = [memory_root(t.array) for t in everyone]
        versions, sources = [], []
        for j, a in enumerate(self.saved):
            if type(a) is not np.ndarray:
                continue
            r = memory_root(a)
            for i, t in enumerate(everyone):
                if roots[i] is r:
                    versions.append((j, i, t._vc, t._vc.value))
                if a is t.array:
                    sources.append((j, i))
        self.versions, self.sources = tuple(versions), tuple(sources)

    def check_versions(self) -> None:
        """Raise PyTorch's error if an array this node saved was modified in place since."""
        for j, i, box, seen in self.versions:
            if box.value != seen:
                name = type(self).__name__
                what = f"input {i}" if i < len(self.parents) else "its output"
                raise RuntimeError(
                    f"one of the variables needed for gradient computation has been modified by "
                    f"an inplace operation: {name} saved {what} (shape {self.saved[j].shape}) "
                    f"for backward, and it was then modified by {box.op}: it is at version "
                    f"{box.value}; expected version {seen} instead. Make a copy before modifying "
                    f"it (y = y.clone()) or use the out-of-place op ({_out_of_place(box.op)}).")

    def saved_tensors(self) -> tuple:
        """`self.saved` with each array that is an input or the output turned into a Tensor
        connected to the graph (an input's parent node, a leaf itself, or this node for the
        output); other saved values stay as they are (constants for double backward)."""
        saved = list(self.saved)
        T = Function._out_type
        for j, i in self.sources:
            if i == len(self.parents):  # the output: a tensor made by this node
                saved[j] = T._from_node(self.saved[j], self)
                continue
            p = self.parents[i]
            saved[j] = T._from_node(self.saved[j], p) if isinstance(p, Function) else p
        return tuple(saved)

    def backward_graph(self, grad):
        """Double backward is not written for this op: the gradient it returns is correct, but
        differentiating it again raises (see `NotTwiceDifferentiable`)."""

    # -------------------------------------------- hooks on the node, like torch's Node
    def register_prehook(self, fn) -> RemovableHandle:
        """`fn(grad_outputs) -> None | tuple`: called with this node's output gradient (a tuple
        of one Tensor) before its backward; a returned tuple replaces it."""
        self.prehooks, handle = add_hook(self.prehooks, fn)
        return handle

    def register_hook(self, fn) -> RemovableHandle:
        """`fn(grad_inputs, grad_outputs) -> None | tuple`: called after this node's backward
        with its input gradients (Tensors or None) and output gradient; a returned tuple
        replaces the input gradients."""
        self.posthooks, handle = add_hook(self.posthooks, fn)
        return handle

    def name(self) -> str:
        return type(self).__name__

    @property
    def next_functions(self) -> tuple:
        """(parent node or leaf, 0) per input, like torch's `grad_fn.next_functions`."""
        return tuple((p, 0) for p in self.parents)


def memory_root(a):
    """The object owning an array's memory: views of one buffer share it."""
    base = a.base
    return a if base is None else base


def _out_of_place(op: str | None) -> str:
    if not op:
        return "the op without the trailing underscore"
    return op[:-1] if op.endswith("_") else op.replace("__i", "__", 1)


class NotTwiceDifferentiable(Function):
    """Stands for a gradient computed by an op without `backward_graph` when create_graph=True:
    its value is right, and backpropagating through it raises, naming the op."""

    def __init__(self, op: str = "?"):
        self.op = op

    def backward(self, grad):
        raise RuntimeError(f"{self.op}: double backward is not implemented for this op, so its "
                           f"gradient cannot be differentiated again (create_graph=True); give "
                           f"{self.op} a backward_graph (ops.py shows how), or keep it out of "
                           f"what is differentiated twice")


# ---------------------------------------------------------------- the backward pass


def unbroadcast(grad: np.ndarray, shape: tuple, op: str) -> np.ndarray:
    """Sum a gradient back to `shape`, undoing numpy broadcasting; the one place this happens
    (for arrays and, in a create_graph pass, for Tensors: both have sum and reshape)."""
    if shape is None or grad.shape == shape:  # None: a NotTwiceDifferentiable stand-in
        return grad
    extra = grad.ndim - len(shape)
    if extra < 0:
        raise RuntimeError(f"{op}.backward: gradient of shape {grad.shape} is smaller than its "
                           f"input's shape {shape}")
    axes = tuple(range(extra)) + tuple(
        i + extra for i, n in enumerate(shape) if n == 1 and grad.shape[i + extra] != 1)
    if axes:
        grad = _sum(grad, axes)
    if extra:
        grad = grad.reshape(grad.shape[extra:])
    if grad.shape != shape:
        raise RuntimeError(f"{op}.backward returned a gradient of shape {grad.shape} for an input "
                           f"of shape {shape}")
    return grad


def _sum(grad, axes):
    if isinstance(grad, np.ndarray):
        return grad.sum(axis=axes, keepdims=True)
    return grad.sum(axes, keepdim=True)


def toposort(roots) -> list:
    """Function nodes reachable from `roots` (a node or a list), parents before children (leaf
    tensors excluded). Iterative (an explicit stack), so chains of any length stay within
    Python's recursion limit."""
    order, visited = [], set()
    stack = [(r, False) for r in (roots if isinstance(roots, list) else [roots])]
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


def backward(tensors, grad_tensors=None, retain_graph: bool | None = None,
             create_graph: bool = False, inputs=None) -> None:
    """Accumulate the gradients of several outputs into the leaves' `.grad` in one pass, like
    `torch.autograd.backward` (`t.backward()` is the one-output case)."""
    T = Function._out_type
    tensors = [tensors] if isinstance(tensors, T) else list(tensors)
    if grad_tensors is None or isinstance(grad_tensors, (T, np.ndarray)):
        grad_tensors = [grad_tensors] * len(tensors)
    seeds = [_seed(t, g, create_graph) for t, g in zip(tensors, grad_tensors)]
    retain = create_graph if retain_graph is None else retain_graph
    if inputs is None:
        run_backward(tensors, seeds, retain, create_graph)
        return
    inputs = [inputs] if isinstance(inputs, T) else list(inputs)
    found = grad(tensors, inputs, [s if isinstance(s, T) else T._wrap(s) for s in seeds], retain,
                 create_graph, allow_unused=True)
    for t, g in zip(inputs, found):
        if g is not None:
            t.grad = g if t.grad is None else t.grad + g


def run_backward(roots: list, grads: list, retain_graph: bool, create_graph: bool,
                 capture: dict | None = None) -> None:
    """The one backward pass. `grads` are arrays (first order) or Tensors (`create_graph`).

    Without `capture`, leaf gradients are accumulated into `.grad`. With it (autograd.grad),
    `capture` maps id(leaf tensor or node) to a list that receives its gradient instead, and no
    `.grad` is touched.
    """
    leaf_grads: dict = {}  # id(leaf) -> [leaf, gradient, owned]: summed, then hooks, then .grad
    node_grads: dict = {}  # id(node) -> gradient of its output, for this pass only
    starts = []
    for t, g in zip(roots, grads):
        if t._ctx is None:
            _add_leaf(leaf_grads, t, g, owned=False, create_graph=create_graph)
        else:
            prev = node_grads.get(id(t._ctx))
            node_grads[id(t._ctx)] = g if prev is None else prev + g
            starts.append(t._ctx)
    global _grad_enabled
    prev_mode, _grad_enabled = _grad_enabled, create_graph
    try:
        for ctx in reversed(toposort(starts)):
            if node_grads.get(id(ctx)) is not None:  # popped into the call: no local holds it
                _node_step(ctx, node_grads.pop(id(ctx)), retain_graph, create_graph, capture,
                           leaf_grads, node_grads)
        for leaf, g, owned in leaf_grads.values():
            if leaf._hooks:
                g = _run_tensor_hooks(leaf._hooks, g, create_graph)
            if capture is not None:
                if id(leaf) in capture:
                    capture[id(leaf)].append(g)
            elif create_graph:
                leaf.grad = g if leaf.grad is None else leaf.grad + g
            else:
                _accumulate(leaf, g, owned)
    finally:
        _grad_enabled = prev_mode


def _node_step(ctx, g, retain_graph, create_graph, capture, leaf_grads, node_grads):
    """Backward through one node: hooks, version check, its rule, then hand the gradients on."""
    name = type(ctx).__name__
    if ctx.hooks:  # tensor hooks of the node's output (Tensor.register_hook on a non-leaf)
        g = _run_tensor_hooks(ctx.hooks, g, create_graph)
    if ctx.retained is not None and capture is None:  # its tensor called retain_grad()
        _accumulate_retained(ctx.retained, g, create_graph)
    if capture is not None and id(ctx) in capture:
        capture[id(ctx)].append(g)
    if getattr(ctx, "saved", None) is _FREED:
        raise RuntimeError(
            f"{name}: trying to backward through the graph a second time; its saved values were "
            "freed. Call backward(retain_graph=True) the first time.")
    if ctx.prehooks:
        g = _run_node_prehooks(ctx, g, create_graph)
    ctx.check_versions()
    if ctx.overwrites_grad:  # ctx.scratch: the id of g when the rule may write into it
        ctx.scratch = 0
        if not (create_graph or ctx.posthooks) and type(g) is np.ndarray:
            counts = _reference_counts(g)  # a statement of its own: no reference on the stack
            ctx.scratch = id(g) if _unshared(g, counts) else 0
    gs = _apply_rule(ctx, g, create_graph)
    if ctx.overwrites_grad:
        ctx.scratch = 0  # no stale id for a later, direct call of backward
    if ctx.posthooks:
        gs = _run_node_posthooks(ctx, gs, g, create_graph)
    if _anomaly_enabled:
        _check_finite(ctx, gs)
    parents = ctx.parents
    if not retain_graph:  # drop saved arrays and parents: activations can be freed now
        ctx.saved, ctx.parents, ctx.retained = _FREED, (), None
    handed_out = {id(g)}  # arrays a leaf may not keep: passed through, or given twice
    for p, gp, need in zip(parents, gs, ctx.needs_input_grad):
        if not need or gp is None:
            continue
        if isinstance(p, Function):
            gp = unbroadcast(gp, p.out_shape, name)
            prev = node_grads.get(id(p))
            node_grads[id(p)] = gp if prev is None else prev + gp
        else:
            gp = unbroadcast(gp, p.array.shape, name)
            _add_leaf(leaf_grads, p, gp, owned=id(gp) not in handed_out,
                      create_graph=create_graph)
            handed_out.add(id(gp))


def may_overwrite(ctx: Function, grad: np.ndarray) -> bool:
    """Whether `ctx.backward` may write its result into `grad`, the incoming gradient: only the
    engine holds it and the memory it views (no hook, retained grad, capture, post-hook, other
    parent or caller kept it), so nobody could see the change. ReLU's backward then zeroes
    entries in place instead of making a second activation-sized array (LeNet-5's peak).
    Only for Functions whose class sets `overwrites_grad = True`: the engine checks the
    reference counts for those alone."""
    return getattr(ctx, "scratch", 0) == id(grad)


def _reference_counts(g) -> tuple[int, int]:
    """sys.getrefcount of g and of the array whose memory it views (0 when it owns its own)."""
    base = g.base
    return sys.getrefcount(g), 0 if base is None else sys.getrefcount(base)


def _held_by_one_variable(g) -> tuple[int, int]:
    return _reference_counts(g)  # g: this frame's variable only, as in _node_step


# the counts of a fresh view that one variable holds, measured (not assumed: the interpreter's
# own references differ between Python versions)
_UNSHARED = _held_by_one_variable(np.empty(2)[1:])


def _unshared(g, counts: tuple[int, int]) -> bool:
    """Whether g, with `counts` from _reference_counts in the caller's frame, is held by the
    caller's variable alone, and its base array (numpy points every view at the array that
    owns the memory) by g alone. A base that is not a plain array (Numba's allocation record)
    or a read-only array (a broadcast) counts as shared."""
    if not g.flags.writeable:
        return False
    if g.base is not None and (type(g.base) is not np.ndarray or g.base.base is not None):
        return False
    return counts[0] <= _UNSHARED[0] and counts[1] <= _UNSHARED[1]


def _apply_rule(ctx, g, create_graph: bool) -> tuple:
    """The node's gradients as a tuple: numpy rule, or Tensor rule when create_graph."""
    if not create_graph:
        gs = ctx.backward(g)
        return gs if isinstance(gs, tuple) else (gs,)
    gs = ctx.backward_graph(g)
    if gs is None:  # no Tensor rule: right values, but a node that refuses a second backward
        gs = ctx.backward(g.array)
        gs = gs if isinstance(gs, tuple) else (gs,)
        stand_in = NotTwiceDifferentiable(type(ctx).__name__)
        stand_in.parents = ctx.parents + ((g._ctx or g),)
        stand_in.needs_input_grad = ctx.needs_input_grad + (g.requires_grad,)
        stand_in.out_shape = None
        stand_in.retained = stand_in.hooks = stand_in.prehooks = stand_in.posthooks = None
        stand_in.versions = stand_in.sources = ()
        Tcls = Function._out_type
        return tuple(None if a is None else Tcls._from_node(np.asarray(a), stand_in)
                     for a in gs)
    return gs if isinstance(gs, tuple) else (gs,)


def _check_finite(ctx, gs) -> None:
    for i, gp in enumerate(gs):
        if gp is None:
            continue
        arr = gp if isinstance(gp, np.ndarray) else gp.array
        if arr.dtype.kind == "f" and not np.isfinite(arr).all():
            bad = "nan" if np.isnan(arr).any() else "inf"
            trace = getattr(ctx, "trace", None) or "(forward ran before anomaly mode was on)"
            raise RuntimeError(f"Function '{type(ctx).__name__}Backward' returned {bad} values "
                               f"in its {i}th output (the gradient of its input {i}). The "
                               f"forward call that created it:\n  {trace}")


def _as_tensor(g, create_graph: bool):
    return g if create_graph else Function._out_type._wrap(g)


def _as_grad(r, like, create_graph: bool):
    """A hook's returned Tensor back in the pass's currency (array or Tensor)."""
    if create_graph:
        return r
    arr = r.array if hasattr(r, "data") else np.asarray(r)
    if arr.shape != like.shape:
        raise RuntimeError(f"hook: returned a gradient of shape {arr.shape}, expected "
                           f"{like.shape}")
    return arr


def _run_tensor_hooks(hooks: dict, g, create_graph: bool):
    for fn in list(hooks.values()):
        r = fn(_as_tensor(g, create_graph))
        if r is not None:
            g = _as_grad(r, g, create_graph)
    return g


def _run_node_prehooks(ctx, g, create_graph: bool):
    for fn in list(ctx.prehooks.values()):
        r = fn((_as_tensor(g, create_graph),))
        if r is not None:
            g = _as_grad(r[0], g, create_graph)
    return g


def _run_node_posthooks(ctx, gs: tuple, g, create_graph: bool) -> tuple:
    for fn in list(ctx.posthooks.values()):
        wrapped = tuple(None if x is None else _as_tensor(x, create_graph) for x in gs)
        r = fn(wrapped, (_as_tensor(g, create_graph),))
        if r is not None:
            gs = tuple(None if x is None else _as_grad(x, old, create_graph)
                       for x, old in zip(r, gs))
    return gs


def _add_leaf(leaf_grads: dict, t, g, owned: bool, create_graph: bool) -> None:
    """Sum this pass's contributions to one leaf; hooks and `.grad` see the total once."""
    entry = leaf_grads.get(id(t))
    if entry is None:
        leaf_grads[id(t)] = [t, g, owned]
    else:
        entry[1], entry[2] = entry[1] + g, True


def _accumulate_retained(t, g, create_graph: bool) -> None:
    if create_graph:
        t.grad = g if t.grad is None else t.grad + g
    else:
        _accumulate(t, g, owned=False)


def _accumulate(t, g: np.ndarray, owned: bool) -> None:
    """`t.grad += g`, creating the gradient tensor on first use (in t's dtype and layout).

    A fresh array that owns its memory and that nothing else was handed (`owned`, as a weight
    gradient computed by a GEMM) becomes the gradient as is; anything else is copied, so that
    `.grad` never shares memory with another gradient, a saved array or the caller's input.
    """
    if g.dtype != t.array.dtype:
        g, owned = g.astype(t.array.dtype), True
    if t.grad is None:
        if not (owned and g.base is None):
            copy = np.empty_like(t.array)  # the parameter's layout, which the optimizer loops over
            copy[...] = g
            g = copy
        t.grad = Function._out_type._wrap(g)
    else:
        t.grad.array = np.asarray(t.grad.array + g)  # asarray: 0-d sums come back as scalars


# ---------------------------------------------------------------- torch.autograd.grad


def grad(outputs, inputs, grad_outputs=None, retain_graph: bool | None = None,
         create_graph: bool = False, allow_unused: bool = False,
         materialize_grads: bool = False) -> tuple:
    """d(outputs)/d(inputs) without touching any `.grad`, like `torch.autograd.grad`.

        x = tg.tensor(2.0, requires_grad=True)
        (dy,) = tg.autograd.grad(x ** 3, x, create_graph=True)   # 12, with a graph
        (d2y,) = tg.autograd.grad(dy, x)                          # 12 = 6 x
    """
    T = Function._out_type
    outputs = [outputs] if isinstance(outputs, T) else list(outputs)
    single = isinstance(inputs, T)
    inputs = [inputs] if single else list(inputs)
    if grad_outputs is None or isinstance(grad_outputs, T):
        grad_outputs = [grad_outputs] * len(outputs)
    if len(grad_outputs) != len(outputs):
        raise RuntimeError(f"grad: {len(grad_outputs)} grad_outputs for {len(outputs)} outputs")
    for i, t in enumerate(inputs):
        if not t.requires_grad:
            raise RuntimeError(f"grad: input {i} does not require grad (one of the differentiated "
                               f"Tensors does not require grad)")
    seeds = [_seed(o, g, create_graph) for o, g in zip(outputs, grad_outputs)]
    capture = {id(t._ctx if t._ctx is not None else t): [] for t in inputs}
    run_backward(outputs, seeds, create_graph if retain_graph is None else retain_graph,
                 create_graph, capture)
    result = []
    for i, t in enumerate(inputs):
        got = capture[id(t._ctx if t._ctx is not None else t)]
        if not got:
            if not (allow_unused or materialize_grads):
                raise RuntimeError(f"grad: input {i} was not used in the graph of the outputs; "
                                   f"pass allow_unused=True if this is intended")
            result.append(T._wrap(np.zeros_like(t.array)) if materialize_grads else None)
            continue
        g = functools.reduce(lambda a, b: a + b, got)
        result.append(g if create_graph else T._wrap(np.array(g, dtype=t.array.dtype)))
    return tuple(result)


def _seed(out, g, create_graph: bool):
    """The starting gradient of one output, checked: ones for a scalar, else the given one (an
    array, or with create_graph a Tensor, which keeps its own graph)."""
    T = Function._out_type
    if not out.requires_grad:
        raise RuntimeError("backward: this tensor does not require grad and has no grad_fn (was "
                           "it computed under no_grad(), or from tensors without "
                           "requires_grad=True?)")
    if g is None:
        if out.array.size != 1:
            raise RuntimeError(f"backward: grad can be implicitly created only for scalar "
                               f"outputs, got shape {out.shape}; pass a gradient of that shape")
        g = np.ones(out.shape, out.array.dtype)
    elif isinstance(g, T) and create_graph:
        pass
    else:
        g = np.asarray(g.array if isinstance(g, T) else g, out.array.dtype)
    if g.shape != out.shape:
        raise RuntimeError(f"backward: gradient has shape {tuple(g.shape)}, expected the "
                           f"output's shape {out.shape}")
    if isinstance(g, T):
        return g
    return T._wrap(g) if create_graph else g


# torch.autograd.functional (jacobian, hessian, vjp, jvp, hvp): it builds on grad above
from . import autograd_functional as functional  # noqa: F401
