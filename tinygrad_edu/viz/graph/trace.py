"""Which module's forward created each op node, recorded by forward hooks: the exact answer
that parameter ownership (modules.py) can only estimate at the border of two modules.

    with trace_modules(model) as modules:
        loss = F.cross_entropy(model(x), y)
    g = graph(loss, params=model, modules=modules)
"""
from __future__ import annotations

from ...autograd import Function
from .nodes import tensors_in


class ModuleTrace:
    """Context manager: while open, every sub-module's forward hook notes the op nodes created
    between its inputs and its output. Hooks of inner modules run first, so each node is
    credited to the deepest module that created it."""

    def __init__(self, model):
        self.model = model
        self.of: dict = {}  # id(Function) -> module path
        self._nodes: list = []  # keeps the recorded nodes alive, so that their ids stay theirs
        self._handles: list = []

    def __enter__(self):
        for path, module in self.model.named_modules():
            if path:
                self._handles.append(module.register_forward_hook(self._hook(path)))
        return self

    def __exit__(self, *exc) -> bool:
        for handle in self._handles:
            handle.remove()
        self._handles = []
        return False

    def module_of(self, fn: Function) -> str:
        """The path of the module whose forward created `fn` ('' for the model's own code)."""
        return self.of.get(id(fn), "")

    def _hook(self, path: str):
        def hook(module, inputs, output):
            boundary = {id(t._ctx) for t in tensors_in(inputs) if t._ctx is not None}
            stack = [t._ctx for t in tensors_in(output) if t._ctx is not None]
            seen = set()
            while stack:  # back from the output, up to the nodes that made the inputs
                fn = stack.pop()
                if id(fn) in seen or id(fn) in boundary:
                    continue
                seen.add(id(fn))
                if id(fn) not in self.of:
                    self.of[id(fn)] = path
                    self._nodes.append(fn)
                stack += [p for p in fn.parents if isinstance(p, Function)]
        return hook


def trace_modules(model) -> ModuleTrace:
    """Record which of `model`'s modules creates each op during the forward passes in a `with`
    block; pass the result to `graph(..., modules=...)`."""
    return ModuleTrace(model)
