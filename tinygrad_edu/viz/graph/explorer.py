"""`graph(*outputs)`: the autograd graph behind some tensors, as a Graph you can draw, save,
step through backward in a browser, or hand to TensorBoard."""
from __future__ import annotations

import inspect
import os
from collections.abc import Mapping

from ...tensor import Tensor
from . import modules as mod
from .capture import Recorder, Step
from .nodes import OpNode, tensors_in, walk
from .render import svg, to_dot
from .stats import Stats
from .trace import ModuleTrace

FORMATS = (".svg", ".dot", ".html")


class Graph:
    """Op and tensor nodes (`nodes`, keyed 'op3', 't5', 'out0'), the modules they belong to, and
    the steps of the last backward pass through them (recorded by hooks on the op nodes)."""

    def __init__(self, nodes: dict, classes: dict, modules: bool, folded: set):
        self.nodes, self.classes, self.modules = nodes, classes, modules
        self.folded = set(folded)
        self._recorder = Recorder(nodes)

    def __repr__(self) -> str:
        n_ops = sum(isinstance(n, OpNode) for n in self.nodes.values())
        folded = f", {len(self.folded)} modules folded" if self.folded else ""
        return (f"Graph({n_ops} ops, {len(self.nodes) - n_ops} tensors, {len(self.steps)} "
                f"backward steps recorded{folded})")

    @property
    def steps(self) -> list[Step]:
        """The ops in the order the last backward pass ran them (empty before backward)."""
        return self._recorder.steps

    def gradient(self, key: str) -> Stats | None:
        """Statistics of the gradient that reached op `key` in the last backward pass."""
        return next((s.incoming for s in reversed(self.steps) if s.node == key), None)

    def sent_gradients(self) -> dict:
        """(op key, input index) -> Stats of the gradient the op sent to that input."""
        return {(s.node, i): g for s in self.steps for i, g in enumerate(s.outgoing)
                if g is not None}

    def shape(self, key: str) -> tuple:
        """The shape of node `key`'s tensor (an op's output)."""
        n = self.nodes[key]
        return n.out_shape if isinstance(n, OpNode) else n.shape

    def expand(self, *paths: str) -> Graph:
        """Draw these folded modules' nodes (their sub-modules stay open); returns self."""
        self.folded -= set(paths)
        return self

    def fold(self, *paths: str) -> Graph:
        """Draw each of these modules as one box; returns self."""
        self.folded |= set(paths)
        return self

    def to_dot(self):
        """The graphviz.Digraph (`.source` is the dot text)."""
        return to_dot(self, self.folded)

    def _repr_svg_(self) -> str:
        return svg(self.to_dot())

    def save(self, path: str) -> str:
        """Write 'g.svg', 'g.dot' or 'g.html' (the page that steps through backward); returns
        the path. Written to a temporary file first, so a failure leaves no half file."""
        ext = os.path.splitext(path)[1].lower()
        if ext not in FORMATS:
            raise ValueError(f"Graph.save: cannot write {path!r}; use a name ending in "
                             f"{', '.join(FORMATS)}")
        if ext == ".dot":
            text = self.to_dot().source
        elif ext == ".svg":
            text = self._repr_svg_()
        else:
            from .page import html
            text = html(self)
        tmp = f"{path}.tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
        return path

    def to_graphdef(self):
        """The graph as TensorBoard's GraphDef (tensorboardX's proto), for add_graph."""
        from .graphdef import graphdef
        return graphdef(self)


def graph(*outputs, params=None, modules: bool | ModuleTrace = True, depth: int | None = None,
          fold=None) -> Graph:
    """The autograd graph that produced `outputs` (tensors, or lists / dicts of them, such as a
    multi-head model's output).

    Build it after the forward pass and before backward: backward frees the graph, and the
    Graph's hooks record each op's gradients as it runs. `params` is a model or its
    `named_parameters()` (or any {name: tensor}) to name the leaves; other tensors take the name
    of the caller's variable holding them. `modules` groups the nodes in one cluster per module:
    True estimates each op's module from the parameters around it (needs `params`); a
    `trace_modules(model)` recorded around the forward pass knows it. `depth` keeps only the
    ops at most that many steps from an output; `fold` is the set of modules drawn as single
    boxes (default: enough to keep about 60 boxes).

        g = graph(loss, params=model)
        loss.backward()
        g.save("g.html")                # open it and press the right arrow key
    """
    tensors = tensors_in(outputs)
    if not tensors:
        raise ValueError("graph: give at least one output tensor, e.g. graph(loss)")
    names = _caller_names(inspect.currentframe().f_back)
    traced = modules if isinstance(modules, ModuleTrace) else None
    model = params if params is not None else getattr(traced, "model", None)
    named = _param_names(model)
    names.update(named)
    nodes = walk(tuple(tensors), names, depth)
    if traced is not None:
        mod.assign_traced(nodes, traced)
    elif modules and named:
        mod.assign(nodes)
    clustered = traced is not None or bool(modules and named)
    folded = (mod.auto_fold(nodes) if clustered else set()) if fold is None else set(fold)
    return Graph(nodes, _classes(model), clustered, folded)


def _classes(model) -> dict:
    """Module path -> class name ('' for the model itself), for the cluster labels."""
    if not hasattr(model, "named_modules"):
        return {}
    return {path: type(m).__name__ for path, m in model.named_modules()}


def _param_names(params) -> dict:
    """id(tensor) -> name from a model, a {name: tensor} mapping or (name, tensor) pairs."""
    if params is None:
        return {}
    if hasattr(params, "named_parameters"):
        params = params.named_parameters()
    items = params.items() if isinstance(params, Mapping) else params
    return {id(t): name for name, t in items}


def _caller_names(frame) -> dict:
    """id(tensor) and id(its op node) -> the caller's variable name, for unnamed nodes."""
    names = {}
    for var, value in frame.f_locals.items():
        if isinstance(value, Tensor) and not var.startswith("_"):
            names.setdefault(id(value), var)
            if value._ctx is not None:
                names.setdefault(id(value._ctx), var)
    return names
