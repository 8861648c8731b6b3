"""Which Module each node belongs to, and which modules to fold into one box.

Recorded during the forward pass (trace.py, `graph(..., modules=trace)`), an op belongs to the
module whose forward created it. Found after the fact (`modules=True`), from parameter
ownership:

An op that reads a parameter belongs to the module holding that parameter (`features.fc1` for
`features.fc1.weight`). An op without parameters belongs to the deepest module that has
parameters both upstream and downstream of it (a ReLU between `layer1.0.bn1` and
`layer1.0.conv2` is in `layer1.0`); one with parameters only downstream is a first step of those
modules' parent (a Flatten before `features.fc1` is in `features`), and one with parameters only
upstream, such as the loss, is outside every module. An op at the border of two sibling modules
(a block's final ReLU) therefore sits in their common parent: the graph records no forward call.
"""
from __future__ import annotations

from .nodes import OpNode, TensorNode

MAX_BOXES = 60  # more visible nodes than this and the modules are folded


def parent(path: str) -> str:
    """'features.fc1' -> 'features'; '' (the model itself) for a top-level name."""
    return path.rpartition(".")[0]


def common(paths) -> str:
    """The deepest module containing every path: common(['a.b.c', 'a.b.d']) == 'a.b'."""
    parts = [p.split(".") if p else [] for p in paths]
    out = []
    for names in zip(*parts):
        if len(set(names)) > 1:
            break
        out.append(names[0])
    return ".".join(out)


def assign(nodes: dict) -> None:
    """Set `module` on every op and parameter node (parameters are named 'module.path.name');
    inputs, constants and outputs stay outside every module."""
    params = {n.key: parent(n.name) for n in nodes.values()
              if isinstance(n, TensorNode) and n.kind == "parameter"}
    ops = [n for n in nodes.values() if isinstance(n, OpNode)]
    owned, consumers = {}, {}
    for n in ops:
        found = {params[k] for k in n.inputs if k in params}
        if found:
            owned[n.key] = common(found)
        for k in n.inputs:
            consumers.setdefault(k, []).append(n.key)
    up = _frontier(ops, owned, lambda n: n.inputs)
    down = _frontier(ops[::-1], owned, lambda n: consumers.get(n.key, ()))
    for n in ops:
        n.module = owned[n.key] if n.key in owned else _between(up[n.key], down[n.key])
    for key, module in params.items():
        nodes[key].module = module


def assign_traced(nodes: dict, trace) -> None:
    """Set `module` from a ModuleTrace: each op's module is the one whose forward created it,
    each parameter's the one holding it."""
    for n in nodes.values():
        if isinstance(n, OpNode):
            n.module = trace.module_of(n.function)
        elif n.kind == "parameter":
            n.module = parent(n.name)


def _between(up: set, down: set) -> str:
    """The module of an op without parameters, from the modules of the nearest parameter-owning
    ops upstream and downstream of it (see the module docstring)."""
    if up and down:
        return max((common((u, d)) for u in up for d in down), key=depth)
    return common(parent(d) for d in down) if down else ""


def depth(path: str) -> int:
    """How deep a module sits: 0 for the model, 1 for 'features', 2 for 'features.fc1'."""
    return path.count(".") + 1 if path else 0


def _frontier(ops: list, owned: dict, neighbours) -> dict:
    """For each op, the modules of the nearest parameter-owning ops in one direction (`ops`
    ordered so that each op's neighbours come before it)."""
    out = {}
    for n in ops:
        found = set()
        for k in neighbours(n):
            found |= {owned[k]} if k in owned else out.get(k, set())
        out[n.key] = found
    return out


def box_of(module: str, folded: set) -> str | None:
    """The folded module whose box hides a node of `module`, or None if the node is visible."""
    parts = module.split(".") if module else []
    for i in range(1, len(parts) + 1):
        path = ".".join(parts[:i])
        if path in folded:
            return path
    return None


def fold_at(nodes: dict, level: int) -> set:
    """The modules `level` deep (1 for 'features', 2 for 'features.layer1', ...)."""
    return {".".join(n.module.split(".")[:level]) for n in nodes.values()
            if depth(n.module) >= level}


def visible_count(nodes: dict, folded: set) -> int:
    """Nodes drawn when `folded` modules are boxes: the nodes outside them plus one per box."""
    boxes = {box_of(n.module, folded) for n in nodes.values()}
    return len(boxes - {None}) + sum(box_of(n.module, folded) is None for n in nodes.values())


def auto_fold(nodes: dict, limit: int = MAX_BOXES) -> set:
    """No folding when at most `limit` nodes; else the deepest level of modules whose folding
    brings the picture down to `limit` boxes (the top level if none does)."""
    if len(nodes) <= limit:
        return set()
    deepest = max((depth(n.module) for n in nodes.values()), default=0)
    for level in range(deepest, 0, -1):
        folded = fold_at(nodes, level)
        if visible_count(nodes, folded) <= limit:
            return folded
    return fold_at(nodes, 1)
