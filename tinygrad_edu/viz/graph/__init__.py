"""The autograd graph explorer: see each op and tensor with its values and gradients, and step
through backward one node at a time.

    from tinygrad_edu.viz import graph
    g = graph(loss, params=model)           # before backward
    loss.backward()
    g                                       # in a notebook: the SVG, with gradients
    g.save("g.html")                        # a self-contained page that steps through backward

`python -m tinygrad_edu.viz.graph mlp3 --input-shape 1 1 28 28 --out g.html` draws one training
step of a model in models/. See docs/graph.md.
"""
from .explorer import Graph, graph
from .stats import Stats
from .trace import ModuleTrace, trace_modules

__all__ = ["Graph", "ModuleTrace", "Stats", "graph", "trace_modules"]
