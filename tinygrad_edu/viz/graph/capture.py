"""Recording one backward pass: hooks on every op node of the graph note the gradient that
reaches it, the gradient it sends to each input and what each leaf's `.grad` has become.

The hooks are the engine's `Function.register_prehook(fn(grad_outputs))` and
`Function.register_hook(fn(grad_inputs, grad_outputs))` (PyTorch's Node hooks).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ...autograd import unbroadcast
from .nodes import OpNode, TensorNode
from .stats import Stats


@dataclass
class Step:
    """One op of the backward pass: its incoming gradient, the gradient it sent to each input
    (None where none was needed) and, per leaf input, (leaf key, contribution, total so far)."""

    node: str
    incoming: Stats
    outgoing: list = field(default_factory=list)
    accumulated: list = field(default_factory=list)


class Recorder:
    """Holds the steps of the last backward pass through the graph's op nodes."""

    def __init__(self, nodes: dict):
        self.nodes = nodes
        self.steps: list[Step] = []
        self.totals: dict = {}  # leaf key -> its .grad as accumulated so far in this pass
        for node in nodes.values():
            if isinstance(node, OpNode):
                _hook(node.function, self._pre(node), self._post(node))

    def _pre(self, node: OpNode):
        def pre(grad_outputs):
            if self.steps and any(s.node == node.key for s in self.steps):
                self.steps, self.totals = [], {}  # a second backward pass: show the new one
            if not self.steps:
                self.totals = {k: _array(n.tensor.grad).copy() for k, n in self.nodes.items()
                               if isinstance(n, TensorNode) and n.kind != "output"
                               and n.tensor is not None and n.tensor.grad is not None}
            self.steps.append(Step(node.key, Stats.of(_array(grad_outputs[0]))))
        return pre

    def _post(self, node: OpNode):
        def post(grad_inputs, grad_outputs):
            step = next(s for s in reversed(self.steps) if s.node == node.key)
            for key, g in zip(node.inputs, grad_inputs):
                parent = self.nodes[key]
                g = None if g is None else unbroadcast(
                    _array(g), _shape(parent), f"graph: {node.op}")
                step.outgoing.append(None if g is None else Stats.of(g))
                if g is not None and isinstance(parent, TensorNode) and parent.kind != "cut" \
                        and parent.tensor.requires_grad:
                    prev = self.totals.get(key)
                    self.totals[key] = g.copy() if prev is None else prev + g
                    step.accumulated.append((key, Stats.of(g), Stats.of(self.totals[key])))
        return post


def _shape(node) -> tuple:
    return node.out_shape if isinstance(node, OpNode) else node.shape


def _array(g) -> np.ndarray:
    """The numpy array of a gradient given as a Tensor or an array."""
    return np.asarray(getattr(g, "data", g))


def _hook(fn, pre, post) -> None:
    """Register pre(grad_outputs) and post(grad_inputs, grad_outputs) on a Function node."""
    if hasattr(fn, "register_prehook"):
        fn.register_prehook(pre)
        fn.register_hook(post)
        return
    # Until the engine has Node hooks: the same two calls around this node's own backward.
    inner = fn.backward

    def backward(grad):
        pre((grad,))
        gs = inner(grad)
        post(gs if isinstance(gs, tuple) else (gs,), (grad,))
        return gs
    fn.backward = backward
