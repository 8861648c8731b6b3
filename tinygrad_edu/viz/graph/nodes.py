"""The explorer's picture of an autograd graph: one OpNode per Function, one TensorNode per
leaf tensor it read and per output, found by walking `node.parents` back from the outputs.

The engine keeps no intermediate tensors (only what each op saved for backward), so an op node
stands for its output: it shows the output's shape, the op's saved values and, after backward,
the gradient that reached it.
"""
from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field

from ...autograd import Function, toposort
from ...nn.module import Parameter
from ...tensor import Tensor
from .rules import saved_name
from .stats import Stats


@dataclass
class OpNode:
    """One Function node; `inputs` holds the key of each input's node, in argument order."""

    key: str
    op: str
    function: Function
    out_shape: tuple
    inputs: list
    trace: str | None = None
    name: str | None = None  # the caller's variable holding its output, if any
    saved: list = field(default_factory=list)  # (name, Stats) of each array saved for backward
    module: str = ""


@dataclass
class TensorNode:
    """A leaf tensor (kind 'parameter', 'input' or 'constant'), an output, or a 'cut' stub that
    stands for the graph beyond `depth`."""

    key: str
    name: str
    kind: str
    tensor: object
    shape: tuple
    inputs: list = field(default_factory=list)  # an output's producing op
    value: Stats | None = None
    module: str = ""

    @property
    def grad(self) -> Stats | None:
        """Statistics of the tensor's `.grad` now (None before backward, and for outputs)."""
        g = getattr(self.tensor, "grad", None)
        return None if g is None or self.kind in ("output", "cut") else Stats.of(g.array)


def tensors_in(x) -> list:
    """The tensors in `x`: a Tensor, or (nested) lists, tuples and dicts of them."""
    if isinstance(x, Tensor):
        return [x]
    if isinstance(x, Mapping):
        x = tuple(x.values())
    if isinstance(x, (list, tuple)):
        return [t for item in x for t in tensors_in(item)]
    raise TypeError(f"graph: outputs must be tensors (or lists / dicts of them), got "
                    f"{type(x).__name__}")


def walk(outputs: tuple, names: dict, depth: int | None) -> dict:
    """Nodes reachable from `outputs` within `depth` ops, parents before children, keyed 'op3',
    't5'; `names` maps id(tensor or Function) to a display name."""
    kept, cuts = _within(outputs, depth), {}
    leaves = {id(t): t for t in outputs if t._ctx is None}  # graph(x) of a leaf: x alone
    order = [fn for fn in _toposort(outputs) if id(fn) in kept]
    for fn in order:
        if not fn.parents:  # backward without retain_graph dropped them
            raise RuntimeError(f"graph: the {type(fn).__name__} node was already freed by "
                               "backward; call graph(...) before loss.backward(), or "
                               "backward(retain_graph=True)")
        for p in fn.parents:
            if not isinstance(p, Function):
                leaves.setdefault(id(p), p)
            elif id(p) not in kept:
                cuts.setdefault(id(p), p)
    nodes = {}
    for t in leaves.values():
        key = f"t{len(nodes)}"
        nodes[id(t)] = TensorNode(key, names.get(id(t)) or _leaf_name(t), _leaf_kind(t),
                                  t, tuple(t.array.shape), value=Stats.of(t.array))
    for fn in cuts.values():
        nodes[id(fn)] = TensorNode(f"t{len(nodes)}", "...", "cut", None, tuple(fn.out_shape))
    for i, fn in enumerate(order):
        op = type(fn).__name__
        saved = [(saved_name(op, j), Stats.of(a)) for j, a in enumerate(_saved(fn))
                 if hasattr(a, "dtype") and hasattr(a, "shape")]
        nodes[id(fn)] = OpNode(f"op{i}", op, fn, tuple(fn.out_shape), [],
                               getattr(fn, "trace", None), names.get(id(fn)), saved)
    for fn in order:
        nodes[id(fn)].inputs = [nodes[id(p)].key for p in fn.parents]
    return _add_outputs(nodes, outputs, names)


def _within(outputs: tuple, depth: int | None) -> tuple:
    """ids of the ops at most `depth` ops back from an output (breadth first)."""
    queue = deque((t._ctx, 1) for t in outputs if t._ctx is not None)
    kept = {id(fn) for fn, _ in queue}
    while queue:
        fn, dist = queue.popleft()
        if depth is not None and dist >= depth:
            continue
        for p in fn.parents:
            if isinstance(p, Function) and id(p) not in kept:
                kept.add(id(p))
                queue.append((p, dist + 1))
    return kept


def _toposort(outputs: tuple) -> list:
    """Function nodes behind all outputs, parents before children, each once."""
    order, seen = [], set()
    for t in outputs:
        if t._ctx is None:
            continue
        for fn in toposort(t._ctx):
            if id(fn) not in seen:
                seen.add(id(fn))
                order.append(fn)
    return order


def _add_outputs(nodes: dict, outputs: tuple, names: dict) -> dict:
    """Key -> node (leaves, then ops parents first, as `nodes` was filled), with a TensorNode
    per output after its op (a leaf output is its own node)."""
    by_key = {n.key: n for n in nodes.values()}
    for i, t in enumerate(outputs):
        if t._ctx is None:
            continue
        key = f"out{i}"
        by_key[key] = TensorNode(key, names.get(id(t)) or f"output {i}", "output", t,
                                 tuple(t.array.shape), [nodes[id(t._ctx)].key], Stats.of(t.array))
    return by_key


def _saved(fn: Function) -> tuple:
    saved = getattr(fn, "saved", ())
    return saved if isinstance(saved, tuple) else ()  # backward replaces freed ones by a string


def _leaf_kind(t) -> str:
    if isinstance(t, Parameter):
        return "parameter"
    return "input" if t.requires_grad else "constant"


def _leaf_name(t) -> str:
    return "input" if t.requires_grad else "tensor"
