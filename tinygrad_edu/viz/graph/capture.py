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
        self._seen: set = set()  # op keys this pass has run
        for node in nodes.values():
            if isinstance(node, OpNode):
                node.function.register_prehook(self._pre(node))
                node.function.register_hook(self._post(node))

    def _pre(self, node: OpNode):
        def pre(grad_outputs):
            if node.key in self._seen:  # a second backward pass: show the new one
                self.steps, self.totals, self._seen = [], {}, set()
            if not self.steps:  # the pass starts: leaves' .grad from before it
                self.totals = {k: _array(n.tensor.grad).copy() for k, n in self.nodes.items()
                               if isinstance(n, TensorNode) and n.kind != "output"
                               and n.tensor is not None and n.tensor.grad is not None}
            self._seen.add(node.key)
            self.steps.append(Step(node.key, Stats.of(_array(grad_outputs[0]))))
        return pre

    def _post(self, node: OpNode):
        def post(grad_inputs, grad_outputs):
            step = self.steps[-1]  # the engine runs pre, the rule, then post for each node
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

